//! An Event Grid custom topic with the CloudEvents 1.0 input schema
//! (<https://learn.microsoft.com/azure/event-grid/post-to-custom-topic>,
//! <https://learn.microsoft.com/azure/event-grid/cloud-event-schema>): `POST
//! {endpoint}?api-version=2018-01-01`, `Content-Type: application/cloudevents-batch+json;
//! charset=utf-8`, the body a JSON array of events. Auth: an Entra ID token for
//! `https://eventgrid.azure.net/.default` (the function's managed identity holds EventGrid
//! Data Sender on the topic), or, locally, the topic key as `aeg-sas-key`
//! (<https://learn.microsoft.com/azure/event-grid/authenticate-with-access-keys-shared-access-signatures>).
//!
//! In App Service / Functions the managed identity's token comes from `IDENTITY_ENDPOINT`
//! (`azure_identity` 1.0.0, `src/managed_identity_credential.rs` and
//! `src/imds_managed_identity_credential.rs`: `GET ?api-version=2019-08-01&resource=
//! https://eventgrid.azure.net&client_id=…` with `X-IDENTITY-HEADER`); the e2e test
//! `the_topic_gets_the_managed_identitys_token_…` runs this path against a fake of that
//! endpoint (tests/suite/support/identity.rs).

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::{answer_of, not_ready, SinkError};
use crate::events::delivery::Answer;
use crate::events::model::CloudEvent;
use crate::redact::redact;
use crate::settings::events::{EventGridAuth, EventGridSettings};
use crate::settings::{Secret, StorageAuth};
use crate::storage::StorageAccount;
use crate::SharedHttp;

pub const API_VERSION: &str = "2018-01-01";
pub const CONTENT_TYPE_BATCH: &str = "application/cloudevents-batch+json; charset=utf-8";
pub const SCOPE: &str = "https://eventgrid.azure.net/.default";
pub const KEY_HEADER: &str = "aeg-sas-key";

enum Auth {
    Key(Secret),
    Token(Arc<dyn TokenCredential>),
}

pub struct EventGridSink {
    url: url::Url,
    /// An unusable key or a credential that cannot be made: not ready.
    auth: Result<Auth, SinkError>,
    http: SharedHttp,
}

impl EventGridSink {
    /// The storage account's credential is reused when it is the same identity, so the
    /// process keeps one token cache per identity.
    pub fn new(
        settings: &EventGridSettings,
        http: &SharedHttp,
        storage: Option<&StorageAccount>,
    ) -> Self {
        let mut url = settings.topic_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION);
        let shared = storage
            .and_then(StorageAccount::entra_credential)
            .filter(|(identity, _)| same_identity(identity, &settings.auth))
            .map(|(_, c)| c);
        let auth = match (&settings.auth, shared) {
            (EventGridAuth::Key(key), _) => key.clone().map(Auth::Key).map_err(SinkError::from),
            (_, Some(credential)) => Ok(Auth::Token(credential)),
            (EventGridAuth::ManagedIdentity { client_id }, None) => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options: azure_core::http::ClientOptions {
                        transport: Some(azure_core::http::Transport::new(Arc::new(http.clone()))),
                        ..Default::default()
                    },
                };
                ManagedIdentityCredential::new(Some(options))
                    .map(|c| Auth::Token(c))
                    .map_err(SinkError::Credential)
            }
            (EventGridAuth::DeveloperTools, None) => DeveloperToolsCredential::new(None)
                .map(|c| Auth::Token(c))
                .map_err(SinkError::Credential),
        };
        Self {
            url,
            auth,
            http: http.clone(),
        }
    }

    pub fn uses_identity(&self) -> bool {
        matches!(self.auth, Ok(Auth::Token(_)))
    }

    pub fn not_ready(&self) -> Option<&SinkError> {
        self.auth.as_ref().err()
    }

    pub async fn send(&self, event: &CloudEvent) -> Answer {
        let auth = match &self.auth {
            Ok(auth) => auth,
            Err(e) => return not_ready(e),
        };
        let http = match self.http.client() {
            Ok(h) => h,
            Err(e) => {
                return Answer::NoAnswer {
                    reason: e.to_string(),
                }
            }
        };
        let (name, mut value) = match auth {
            Auth::Key(key) => match HeaderValue::from_str(key.expose()) {
                Ok(v) => (KEY_HEADER, v),
                Err(_) => {
                    return Answer::NoAnswer {
                        reason: "CV_EVENTGRID__key is not a header value".into(),
                    }
                }
            },
            Auth::Token(credential) => match credential.get_token(&[SCOPE], None).await {
                Ok(token) => {
                    match HeaderValue::from_str(&format!("Bearer {}", token.token.secret())) {
                        Ok(v) => (AUTHORIZATION.as_str(), v),
                        Err(_) => {
                            return Answer::NoAnswer {
                                reason: "the credential gave an unusable token".into(),
                            }
                        }
                    }
                }
                Err(e) => {
                    return Answer::NoAnswer {
                        reason: redact(&format!("cannot get an Entra ID token: {e}")),
                    }
                }
            },
        };
        value.set_sensitive(true);
        let body = format!("[{}]", event.to_json());
        answer_of(
            http.post(self.url.clone())
                .header(CONTENT_TYPE, CONTENT_TYPE_BATCH)
                .header(name, value)
                .body(body),
        )
        .await
    }
}

fn same_identity(storage: &StorageAuth, events: &EventGridAuth) -> bool {
    match (storage, events) {
        (
            StorageAuth::ManagedIdentity { client_id: a },
            EventGridAuth::ManagedIdentity { client_id: b },
        ) => a == b,
        (StorageAuth::DeveloperTools, EventGridAuth::DeveloperTools) => true,
        _ => false,
    }
}
