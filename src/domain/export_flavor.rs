//! The flavors that refine an export platform.

/// Export flavors of the Training API (`ExportFlavor`), beside the platforms they refine
/// (settings name them, the client sends them): Docker has Linux, Windows, ARM; TensorFlow has
/// TensorFlowNormal, TensorFlowLite; ONNX has ONNX10, ONNX12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ExportFlavor {
    Linux,
    Windows,
    #[serde(rename = "ONNX10")]
    Onnx10,
    #[serde(rename = "ONNX12")]
    Onnx12,
    #[serde(rename = "ARM")]
    Arm,
    TensorFlowNormal,
    TensorFlowLite,
}

impl ExportFlavor {
    pub const ALL: [ExportFlavor; 7] = [
        Self::Linux,
        Self::Windows,
        Self::Arm,
        Self::Onnx10,
        Self::Onnx12,
        Self::TensorFlowNormal,
        Self::TensorFlowLite,
    ];

    /// Case-insensitive, as settings are written by hand. `None` for a name that is no flavor.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(value))
    }

    /// The service's spelling: what serde writes too.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Linux => "Linux",
            Self::Windows => "Windows",
            Self::Onnx10 => "ONNX10",
            Self::Onnx12 => "ONNX12",
            Self::Arm => "ARM",
            Self::TensorFlowNormal => "TensorFlowNormal",
            Self::TensorFlowLite => "TensorFlowLite",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spelling_is_the_wire_spelling_and_parses_back() {
        for f in ExportFlavor::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), f.as_str());
            assert_eq!(ExportFlavor::parse(&f.as_str().to_lowercase()), Some(f));
        }
        assert_eq!(ExportFlavor::parse("ONNX11"), None);
    }
}
