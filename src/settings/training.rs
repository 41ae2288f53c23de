//! The Training API's app settings. Read like the rest ([`crate::settings`]): once, at start-up,
//! and a bad value is a [`SettingsError`] naming the setting.
//!
//! | setting | meaning |
//! |---|---|
//! | `CUSTOM_VISION_ENDPOINT` | the resource's endpoint, `https://<name>.cognitiveservices.azure.com/` (http for a local fixture); unset: no Training API |
//! | `CUSTOM_VISION_TRAINING_KEY` | a training key; unset: Entra ID |
//! | `CUSTOM_VISION__credential`, `CUSTOM_VISION__clientId` | with no key: `managedidentity` and the client id of a user-assigned identity; each falls back to `CV_STORAGE__credential` / `CV_STORAGE__clientId` (one identity per Function App), and with neither set the developer's `az`/`azd` login is used |

use url::Url;

use super::{Secret, SettingsError};

pub const ENDPOINT_SETTING: &str = "CUSTOM_VISION_ENDPOINT";
pub const KEY_SETTING: &str = "CUSTOM_VISION_TRAINING_KEY";
const CREDENTIAL_SETTINGS: [&str; 2] = ["CUSTOM_VISION__credential", "CV_STORAGE__credential"];
const CLIENT_ID_SETTINGS: [&str; 2] = ["CUSTOM_VISION__clientId", "CV_STORAGE__clientId"];

/// Where the Training API is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingSettings {
    pub endpoint: Url,
    pub auth: TrainingAuthSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrainingAuthSettings {
    /// `Training-Key` header (the spec's only scheme; the default).
    Key(Secret),
    /// Entra ID with the Function App's managed identity (system-assigned without a client id).
    ManagedIdentity { client_id: Option<String> },
    /// Entra ID with the developer's `az`/`azd` login.
    DeveloperTools,
}

impl TrainingSettings {
    pub fn from_env() -> Result<Option<Self>, SettingsError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// `Ok(None)` when `CUSTOM_VISION_ENDPOINT` is unset: the Training API is not configured.
    pub fn from_lookup(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, SettingsError> {
        let value = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let key = value(KEY_SETTING);
        let Some(endpoint) = value(ENDPOINT_SETTING) else {
            if key.is_some() {
                return Err(SettingsError::Missing {
                    name: ENDPOINT_SETTING.into(),
                    hint: format!(
                        " ({KEY_SETTING} is set, so the Training API is meant to be used)"
                    ),
                });
            }
            return Ok(None);
        };
        let endpoint = parse_endpoint(&endpoint)?;
        let first =
            |names: [&'static str; 2]| names.into_iter().find_map(|n| value(n).map(|v| (n, v)));
        let auth = match key {
            Some(key) => {
                // A training key never expires: it goes over plain http only to a local fixture.
                super::plain_http_only_to_loopback(
                    ENDPOINT_SETTING,
                    &endpoint,
                    "the training key",
                )?;
                TrainingAuthSettings::Key(Secret::new(key))
            }
            None => {
                let auth = match first(CREDENTIAL_SETTINGS) {
                    Some((_, c)) if c.eq_ignore_ascii_case("managedidentity") => {
                        TrainingAuthSettings::ManagedIdentity {
                            client_id: first(CLIENT_ID_SETTINGS).map(|(_, v)| v),
                        }
                    }
                    Some((name, other)) => {
                        return Err(invalid(
                            name,
                            format!("'{other}' is not supported (use managedidentity, or leave it unset for a developer login)"),
                        ))
                    }
                    None => TrainingAuthSettings::DeveloperTools,
                };
                // A bearer token is as good as a password for its hour: never over plain http.
                if endpoint.scheme() != "https" {
                    return Err(invalid(
                        ENDPOINT_SETTING,
                        format!("Entra ID (no {KEY_SETTING}) needs an https endpoint"),
                    ));
                }
                auth
            }
        };
        Ok(Some(Self { endpoint, auth }))
    }
}

fn invalid(name: &str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        name: name.to_string(),
        reason: reason.into(),
    }
}

fn parse_endpoint(value: &str) -> Result<Url, SettingsError> {
    let url = Url::parse(value).map_err(SettingsError::url(ENDPOINT_SETTING, Some(value)))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host().is_none() {
        return Err(invalid(
            ENDPOINT_SETTING,
            format!("'{value}' is not an http(s) URL"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            ENDPOINT_SETTING,
            "the endpoint takes no query or fragment",
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::tests::lookup;

    const ENDPOINT: &str = "https://cv-train.cognitiveservices.azure.com/";

    #[test]
    fn unconfigured_is_none() {
        assert_eq!(TrainingSettings::from_lookup(&lookup(&[])).unwrap(), None);
        assert_eq!(
            TrainingSettings::from_lookup(&lookup(&[(ENDPOINT_SETTING, "  ")])).unwrap(),
            None
        );
    }

    #[test]
    fn key_is_the_default_and_never_printed() {
        let s = TrainingSettings::from_lookup(&lookup(&[
            (ENDPOINT_SETTING, ENDPOINT),
            (KEY_SETTING, "0123456789abcdef0123456789abcdef"),
            ("CV_STORAGE__credential", "managedidentity"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoint.as_str(), ENDPOINT);
        assert!(
            matches!(s.auth, TrainingAuthSettings::Key(ref k) if k.expose().starts_with("0123"))
        );
        assert!(!format!("{s:?}").contains("0123456789"));
    }

    #[test]
    fn plain_http_with_a_key_for_a_local_fixture() {
        let s = TrainingSettings::from_lookup(&lookup(&[
            (ENDPOINT_SETTING, "http://127.0.0.1:4010"),
            (KEY_SETTING, "k"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoint.scheme(), "http");
        for local in [
            "http://localhost:4010/",
            "http://127.9.0.1/",
            "http://[::1]:4010/",
        ] {
            assert!(
                TrainingSettings::from_lookup(&lookup(&[
                    (ENDPOINT_SETTING, local),
                    (KEY_SETTING, "k")
                ]))
                .is_ok(),
                "{local}"
            );
        }
    }

    #[test]
    fn a_training_key_never_goes_over_plain_http_to_another_host() {
        for remote in [
            "http://cv-train.cognitiveservices.azure.com/",
            "http://10.0.0.4:4010/",
            "http://[::2]/",
            "http://localhost.example.com/",
            "http://128.0.0.1/",
        ] {
            let err = TrainingSettings::from_lookup(&lookup(&[
                (ENDPOINT_SETTING, remote),
                (KEY_SETTING, "0123456789abcdef"),
            ]))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(ENDPOINT_SETTING) && err.contains("loopback"),
                "{remote} -> {err}"
            );
            assert!(!err.contains("0123456789abcdef"), "{err}");
        }
    }

    #[test]
    fn entra_id_reuses_the_storage_identity_unless_told_otherwise() {
        let s = TrainingSettings::from_lookup(&lookup(&[
            (ENDPOINT_SETTING, ENDPOINT),
            ("CV_STORAGE__credential", "ManagedIdentity"),
            ("CV_STORAGE__clientId", "storage-id"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            s.auth,
            TrainingAuthSettings::ManagedIdentity {
                client_id: Some("storage-id".into())
            }
        );
        let s = TrainingSettings::from_lookup(&lookup(&[
            (ENDPOINT_SETTING, ENDPOINT),
            ("CV_STORAGE__credential", "managedidentity"),
            ("CUSTOM_VISION__clientId", "cv-id"),
            ("CV_STORAGE__clientId", "storage-id"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            s.auth,
            TrainingAuthSettings::ManagedIdentity {
                client_id: Some("cv-id".into())
            }
        );
        let s = TrainingSettings::from_lookup(&lookup(&[(ENDPOINT_SETTING, ENDPOINT)]))
            .unwrap()
            .unwrap();
        assert_eq!(s.auth, TrainingAuthSettings::DeveloperTools);
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![(KEY_SETTING, "k")], ENDPOINT_SETTING),
            (vec![(ENDPOINT_SETTING, "not a url")], ENDPOINT_SETTING),
            (vec![(ENDPOINT_SETTING, "ftp://host")], ENDPOINT_SETTING),
            (vec![(ENDPOINT_SETTING, "https://h/?a=b")], ENDPOINT_SETTING),
            (vec![(ENDPOINT_SETTING, "http://h")], ENDPOINT_SETTING),
            (
                vec![
                    (ENDPOINT_SETTING, ENDPOINT),
                    ("CUSTOM_VISION__credential", "password"),
                ],
                "CUSTOM_VISION__credential",
            ),
            (
                vec![
                    (ENDPOINT_SETTING, ENDPOINT),
                    ("CV_STORAGE__credential", "password"),
                ],
                "CV_STORAGE__credential",
            ),
        ];
        for (pairs, name) in cases {
            let err = TrainingSettings::from_lookup(&lookup(&pairs))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{pairs:?} -> {err}");
        }
    }
}
