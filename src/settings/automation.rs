//! The settings of what a finished training does. Every step but the report is off unless its
//! settings are given; thresholds are fractions in [0, 1], like the API's own figures.
//!
//! | setting | default | meaning |
//! |---|---|---|
//! | `REPORT_THRESHOLD` | `0.5` | probability threshold of the performance figures |
//! | `REPORT_OVERLAP_THRESHOLD` | the API's | bounding-box overlap threshold (object detection) |
//! | `AUTO_EXPORT_PLATFORMS` | off | `ONNX,TensorFlow:TensorFlowLite`: platform, optionally `:flavor` |
//! | `PUBLISH_NAME`, `PREDICTION_RESOURCE_ID` | off | both, to publish |
//! | `PUBLISH_MIN_PRECISION`, `PUBLISH_MIN_RECALL` | `0` | the bar to publish at |

use super::SettingsError;
use crate::domain::{ExportFlavor, ExportPlatform};

#[derive(Debug, Clone, PartialEq)]
pub struct AutomationSettings {
    pub report_threshold: f64,
    pub overlap_threshold: Option<f64>,
    pub auto_export: Vec<ExportTarget>,
    pub publish: Option<PublishSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportTarget {
    pub platform: ExportPlatform,
    pub flavor: Option<ExportFlavor>,
}

impl std::fmt::Display for ExportTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.flavor {
            Some(flavor) => write!(f, "{}:{}", self.platform, flavor.as_str()),
            None => write!(f, "{}", self.platform),
        }
    }
}

impl ExportTarget {
    /// `ONNX,TensorFlow:TensorFlowLite`: v3.3 platforms, each optionally `:flavor`; `name` is
    /// what an error calls the list (a setting, a flag).
    pub fn parse_list(name: &str, list: &str) -> Result<Vec<Self>, SettingsError> {
        let mut targets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (platform_text, flavor_text) = match item.split_once(':') {
                Some((p, f)) => (p.trim(), Some(f.trim())),
                None => (item, None),
            };
            let platform = ExportPlatform::parse(platform_text)
                    .filter(|p| *p != ExportPlatform::OpenVino)
                    .ok_or_else(|| {
                        invalid(
                            name,
                            format!("'{platform_text}' is not a v3.3 export platform (CoreML, TensorFlow, DockerFile, ONNX, VAIDK)"),
                        )
                    })?;
            let flavor = match flavor_text {
                None => None,
                Some(f) => Some(
                    ExportFlavor::parse(f)
                        .filter(|x| flavor_fits(platform, *x))
                        .ok_or_else(|| {
                            invalid(name, format!("'{f}' is not a flavor of {platform}"))
                        })?,
                ),
            };
            targets.push(ExportTarget { platform, flavor });
        }
        Ok(targets)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PublishSettings {
    pub name: String,
    pub prediction_resource_id: String,
    pub min_precision: f64,
    pub min_recall: f64,
}

/// The flavors the service offers per platform.
fn flavor_fits(platform: ExportPlatform, flavor: ExportFlavor) -> bool {
    use ExportFlavor::*;
    match platform {
        ExportPlatform::DockerFile => matches!(flavor, Linux | Windows | Arm),
        ExportPlatform::TensorFlow => matches!(flavor, TensorFlowNormal | TensorFlowLite),
        ExportPlatform::Onnx => matches!(flavor, Onnx10 | Onnx12),
        _ => false,
    }
}

impl AutomationSettings {
    /// `api` says whether the Training API is configured: a step asked for without it is a
    /// setting error, not a silent no-op.
    pub fn from_lookup(
        get: &dyn Fn(&str) -> Option<String>,
        api: bool,
    ) -> Result<Self, SettingsError> {
        let value = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let fraction = |name: &str| -> Result<Option<f64>, SettingsError> {
            let Some(text) = value(name) else {
                return Ok(None);
            };
            match text.parse::<f64>() {
                Ok(v) if (0.0..=1.0).contains(&v) => Ok(Some(v)),
                _ => Err(invalid(
                    name,
                    format!("'{text}' is not a fraction in [0, 1]"),
                )),
            }
        };
        let mut auto_export = Vec::new();
        if let Some(list) = value("AUTO_EXPORT_PLATFORMS") {
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (platform_text, flavor_text) = match item.split_once(':') {
                    Some((p, f)) => (p.trim(), Some(f.trim())),
                    None => (item, None),
                };
                let platform = ExportPlatform::parse(platform_text)
                    .filter(|p| *p != ExportPlatform::OpenVino)
                    .ok_or_else(|| {
                        invalid(
                            "AUTO_EXPORT_PLATFORMS",
                            format!("'{platform_text}' is not a v3.3 export platform (CoreML, TensorFlow, DockerFile, ONNX, VAIDK)"),
                        )
                    })?;
                let flavor = match flavor_text {
                    None => None,
                    Some(f) => Some(
                        ExportFlavor::parse(f)
                            .filter(|x| flavor_fits(platform, *x))
                            .ok_or_else(|| {
                                invalid(
                                    "AUTO_EXPORT_PLATFORMS",
                                    format!("'{f}' is not a flavor of {platform}"),
                                )
                            })?,
                    ),
                };
                auto_export.push(ExportTarget { platform, flavor });
            }
        }
        let publish = match (value("PUBLISH_NAME"), value("PREDICTION_RESOURCE_ID")) {
            (None, None) => None,
            (Some(name), Some(prediction_resource_id)) => Some(PublishSettings {
                name,
                prediction_resource_id,
                min_precision: fraction("PUBLISH_MIN_PRECISION")?.unwrap_or(0.0),
                min_recall: fraction("PUBLISH_MIN_RECALL")?.unwrap_or(0.0),
            }),
            (Some(_), None) => {
                return Err(SettingsError::Missing {
                    name: "PREDICTION_RESOURCE_ID".into(),
                    hint: " (PUBLISH_NAME is set: the resource id of the prediction resource to publish to)".into(),
                })
            }
            (None, Some(_)) => {
                return Err(SettingsError::Missing {
                    name: "PUBLISH_NAME".into(),
                    hint: " (PREDICTION_RESOURCE_ID is set: the name to publish under)".into(),
                })
            }
        };
        if !api && (!auto_export.is_empty() || publish.is_some()) {
            return Err(SettingsError::Missing {
                name: "CUSTOM_VISION_ENDPOINT".into(),
                hint: " (AUTO_EXPORT_PLATFORMS or PUBLISH_NAME need the Training API)".into(),
            });
        }
        Ok(Self {
            report_threshold: fraction("REPORT_THRESHOLD")?.unwrap_or(0.5),
            overlap_threshold: fraction("REPORT_OVERLAP_THRESHOLD")?,
            auto_export,
            publish,
        })
    }
}

fn invalid(name: &str, reason: String) -> SettingsError {
    SettingsError::Invalid {
        name: name.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)], api: bool) -> Result<AutomationSettings, SettingsError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AutomationSettings::from_lookup(&|k| map.get(k).cloned(), api)
    }

    #[test]
    fn off_by_default_and_parsed_when_given() {
        let s = parse(&[], false).unwrap();
        assert!(s.auto_export.is_empty() && s.publish.is_none());
        assert_eq!(s.report_threshold, 0.5);
        let s = parse(
            &[
                ("AUTO_EXPORT_PLATFORMS", "ONNX, tensorflow:TensorFlowLite,DockerFile:arm"),
                ("PUBLISH_NAME", "prod"),
                ("PREDICTION_RESOURCE_ID", "/subscriptions/x/resourceGroups/y/providers/Microsoft.CognitiveServices/accounts/z"),
                ("PUBLISH_MIN_PRECISION", "0.9"),
                ("REPORT_THRESHOLD", "0.6"),
            ],
            true,
        )
        .unwrap();
        let list: Vec<String> = s.auto_export.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            list,
            ["ONNX", "TensorFlow:TensorFlowLite", "DockerFile:ARM"]
        );
        let publish = s.publish.unwrap();
        assert_eq!((publish.min_precision, publish.min_recall), (0.9, 0.0));
        assert_eq!(s.report_threshold, 0.6);
    }

    #[test]
    fn bad_settings_name_the_setting() {
        for (pairs, api, name) in [
            (
                vec![("AUTO_EXPORT_PLATFORMS", "Exe")],
                true,
                "AUTO_EXPORT_PLATFORMS",
            ),
            (
                vec![("AUTO_EXPORT_PLATFORMS", "ONNX:TensorFlowLite")],
                true,
                "AUTO_EXPORT_PLATFORMS",
            ),
            (
                vec![("AUTO_EXPORT_PLATFORMS", "OpenVino")],
                true,
                "AUTO_EXPORT_PLATFORMS",
            ),
            (vec![("PUBLISH_NAME", "p")], true, "PREDICTION_RESOURCE_ID"),
            (vec![("PREDICTION_RESOURCE_ID", "r")], true, "PUBLISH_NAME"),
            (
                vec![
                    ("PUBLISH_NAME", "p"),
                    ("PREDICTION_RESOURCE_ID", "r"),
                    ("PUBLISH_MIN_RECALL", "90"),
                ],
                true,
                "PUBLISH_MIN_RECALL",
            ),
            (vec![("REPORT_THRESHOLD", "-0.1")], true, "REPORT_THRESHOLD"),
            (
                vec![("AUTO_EXPORT_PLATFORMS", "ONNX")],
                false,
                "CUSTOM_VISION_ENDPOINT",
            ),
        ] {
            let err = parse(&pairs, api).unwrap_err().to_string();
            assert!(err.contains(name), "{pairs:?}: {err}");
        }
    }
}
