//! A SAS `modelUri` as a copy source: where it may come from, and what its answers mean.
//!
//! Its provenance ([`Provenance`]): the backup container is the trusted source, so a SAS
//! source is considered only when the iteration has no backup there. With the Training API
//! configured, GetExports must list that very download URL (host and path) for the iteration;
//! without it nobody vouches for the URL, and it is only ever a *first* copy
//! (`docs/model-store-trust.md`).
//!
//! Its answers ([`permanent`]): one that no retry can change (a redirect, an expired SAS, a
//! blob gone…) rejects the message on its first delivery, with the SAS redacted, instead of
//! walking it into `-poison` with the live SAS in it.

use std::collections::HashMap;

use azure_storage_blob::models::BlobClientGetPropertiesResultHeaders;
use url::Url;

use super::{ExportError, SourceState};
use crate::domain::{ExportPlatform, IterationId, ProjectId};
use crate::naming::ExportedModel;
use crate::storage::decide::quoted_etag;
use crate::storage::{error_code, StorageAccount, StorageActionError};
use crate::training::TrainingClient;

/// Who vouches for a SAS source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// GetExports lists this download URL for the iteration, as this platform.
    Listed(ExportPlatform),
    /// Nobody (no Training API): a first copy only. It replaces no blob of another source,
    /// neither the copy nor the `latest` alias.
    Unvouched,
}

impl Provenance {
    /// Whether a copy from this source may replace one from another source.
    pub fn replaces_other(self) -> bool {
        matches!(self, Self::Listed(_))
    }
}

/// The URL as it may be shown: no query (the SAS), no fragment.
pub fn plain(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// Asks GetExports whether `url` (host and path) is one of the iteration's exports. A
/// failure that may pass is retried; an export the service does not list is a rejection.
pub async fn vouch(
    training: Option<&TrainingClient>,
    url: &Url,
    model: &ExportedModel,
    project_id: ProjectId,
    iteration_id: IterationId,
) -> Result<Provenance, ExportError> {
    let Some(client) = training else {
        return Ok(Provenance::Unvouched);
    };
    let exports = match client.get_exports(project_id, iteration_id).await {
        Ok(exports) => exports,
        Err(e) if e.retry_later() => return Err(e.into()),
        Err(e) => {
            return Err(ExportError::Rejected {
                reason: format!(
                    "the SAS modelUri {} cannot be vouched for: GetExports of iteration {iteration_id} answered {e}; a SAS source is copied only when GetExports lists it",
                    model.source()
                ),
            })
        }
    };
    let listed = exports.into_iter().find_map(|e| {
        let download = Url::parse(e.download_uri.as_deref()?).ok()?;
        let same = download.host_str() == url.host_str() && download.path() == url.path();
        same.then_some(e.platform)
    });
    match listed {
        Some(platform) => Ok(Provenance::Listed(platform)),
        None => Err(ExportError::Rejected {
            reason: format!(
                "the SAS modelUri {} is not among the exports GetExports lists for iteration {iteration_id}: not copied (a SAS source is copied only when GetExports lists it)",
                model.source()
            ),
        }),
    }
}

/// Whether an answer of a SAS source is one no retry can change. Redirects are never followed
/// (a blob endpoint does not redirect; following one would send the SAS elsewhere); client
/// errors stand, except those that name a passing state: 408 (timeout), 409 (a blob being
/// rehydrated or leased), 425 and 429 (throttling). Server errors pass, except 501 and 505,
/// which say what the server cannot do at all.
pub fn permanent(status: u16) -> bool {
    match status {
        300..=399 => true,
        408 | 409 | 425 | 429 => false,
        400..=499 => true,
        501 | 505 => true,
        _ => false,
    }
}

/// One request to the SAS URL: its ETag, creation time, size and MD5. An answer no retry can
/// change ([`permanent`]) rejects the message now.
pub(super) async fn read(
    account: &StorageAccount,
    url: &Url,
    model: &ExportedModel,
) -> Result<SourceState, ExportError> {
    let blob = account.foreign_blob(url)?;
    let props = match blob.get_properties(None).await {
        Ok(p) => p,
        Err(e) => {
            let status = e.http_status().map(u16::from);
            return Err(match status.filter(|s| permanent(*s)) {
                Some(status) => ExportError::Rejected {
                    reason: rejection(model, status, error_code(&e)),
                },
                None => StorageActionError::of("read the SAS source")(e).into(),
            });
        }
    };
    let read = StorageActionError::of("read the SAS source");
    Ok(SourceState {
        url: url.clone(),
        etag: props
            .etag()
            .map_err(&read)?
            .map(|e| quoted_etag(e.as_ref()))
            .unwrap_or_default(),
        tags: HashMap::new(),
        metadata: HashMap::new(),
        created: props
            .creation_time()
            .ok()
            .flatten()
            .or_else(|| props.last_modified().ok().flatten()),
        size: props.content_length().ok().flatten(),
        content_md5: props.content_md5().ok().flatten(),
    })
}

/// The reason of a rejected SAS source: the URL without its query, the status, what to do.
fn rejection(model: &ExportedModel, status: u16, code: Option<&str>) -> String {
    let code = code.map(|c| format!(" ({c})")).unwrap_or_default();
    let source = model.source();
    match status {
        300..=399 => format!(
            "the SAS modelUri {source} answered {status}{code}, a redirect: never followed (a blob endpoint does not redirect, and following one would hand the SAS to another host). Re-export the iteration if the URL is Custom Vision's"
        ),
        403 | 404 | 410 => format!(
            "the SAS modelUri {source} answered {status}{code}: its SAS has expired, does not allow reading, or the blob is gone. \
             Re-export the iteration (ExportIteration, or Export in the Custom Vision portal); the new notification brings a fresh SAS"
        ),
        _ => format!(
            "the SAS modelUri {source} answered {status}{code}, which no retry can change; not copied. Re-export the iteration for a fresh SAS"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_a_retry_cannot_change() {
        for status in [
            300, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 410, 412, 414, 416, 431,
            501, 505,
        ] {
            assert!(permanent(status), "{status}");
        }
        for status in [200, 206, 408, 409, 425, 429, 500, 502, 503, 504] {
            assert!(!permanent(status), "{status}");
        }
    }
}
