//! The platforms a model is exported for.

use std::fmt;

/// Export platforms of the Training API (v3.3 enum plus OpenVino from later versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportPlatform {
    CoreMl,
    TensorFlow,
    DockerFile,
    Onnx,
    Vaidk,
    OpenVino,
}

impl ExportPlatform {
    pub const ALL: [ExportPlatform; 6] = [
        Self::CoreMl,
        Self::TensorFlow,
        Self::DockerFile,
        Self::Onnx,
        Self::Vaidk,
        Self::OpenVino,
    ];

    /// The service's spelling, used in tags and paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CoreMl => "CoreML",
            Self::TensorFlow => "TensorFlow",
            Self::DockerFile => "DockerFile",
            Self::Onnx => "ONNX",
            Self::Vaidk => "VAIDK",
            Self::OpenVino => "OpenVino",
        }
    }

    /// Case-insensitive: the backup blob's suffix casing is not documented. `None` for a name
    /// that is no platform: callers decide whether that is an error (a setting) or a fact (a
    /// blob of another kind).
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(value))
    }
}

impl fmt::Display for ExportPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_case_insensitively() {
        for p in ExportPlatform::ALL {
            assert_eq!(ExportPlatform::parse(&p.as_str().to_lowercase()), Some(p));
            assert_eq!(ExportPlatform::parse(p.as_str()), Some(p));
        }
        assert_eq!(ExportPlatform::parse("zip"), None);
        assert_eq!(ExportPlatform::parse("exe"), None);
    }
}
