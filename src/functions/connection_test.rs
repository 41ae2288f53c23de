//! The record of a handled ConnectionTest: what `Notifications` writes to its
//! [`CONNECTION_TEST_OUTPUT`](super::CONNECTION_TEST_OUTPUT) blob output
//! (`%CV_STATUS_CONTAINER%/connection-tests/{Id}.json`), and the one reader of those blobs,
//! [`find_connection_test`], with which `cvctl verify` tells that the project is wired and the
//! app is reading its queue; and, when there is none, [`connection_test_waiting`]: whether
//! the test is still in the notification queue.

use std::collections::HashSet;

use azure_storage_blob::BlobContainerClient;
use azure_storage_queue::models::QueueClientPeekMessagesOptions;
use azure_storage_queue::QueueClient;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::ProjectId;
use crate::naming::stored::CONNECTION_TESTS_PREFIX;
use crate::notification::Notification;
use crate::storage::{list_blobs, StorageActionError};

/// The blob output's path in `Notifications/function.json`: the host writes the blob, so
/// only the consistency test (`devhost::config`) reads this.
#[cfg(test)]
pub(crate) fn blob_path_template() -> String {
    format!("%CV_STATUS_CONTAINER%/{CONNECTION_TESTS_PREFIX}/{{Id}}.json")
}

/// One handled ConnectionTest. The fields are in the order the JSON has always had its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionTestRecord {
    /// The queue message's id (`null` when the host sent none), which names the blob too.
    pub message_id: Option<String>,
    /// The project that sent it, hyphenated.
    pub project_id: String,
    /// RFC 3339: when the app handled it.
    pub received_at: String,
}

impl ConnectionTestRecord {
    /// The record of a ConnectionTest from `project`, handled now.
    pub fn new(project: ProjectId, message_id: Option<String>) -> Self {
        Self {
            message_id,
            project_id: project.to_string(),
            received_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }

    /// The blob output's value.
    pub fn to_output(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

/// A record found: its blob's name (in the status container) and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundConnectionTest {
    pub blob: String,
    pub record: ConnectionTestRecord,
}

/// The newest record of a ConnectionTest from `project` in the status container, if any.
/// `others` holds the blobs already found to be other projects' records: they are skipped, and
/// those found now are added, so a caller that looks again reads only new ones. A blob that
/// cannot be read or is not a record is skipped (and looked at again next time).
pub async fn find_connection_test(
    status: &BlobContainerClient,
    project: ProjectId,
    others: &mut HashSet<String>,
) -> Result<Option<FoundConnectionTest>, StorageActionError> {
    let mut blobs = list_blobs(status, &format!("{CONNECTION_TESTS_PREFIX}/"))
        .await
        .map_err(StorageActionError::of("list the connection-test records"))?;
    // Newest first; ConnectionTests are rare, a hundred is far more than there will be.
    blobs.sort_by_key(|b| std::cmp::Reverse(b.created));
    let project = project.to_string();
    for blob in blobs.iter().take(100) {
        if others.contains(&blob.name) {
            continue;
        }
        let body = match status.blob_client(&blob.name).download(None).await {
            Ok(r) => r.body.collect().await.ok(),
            Err(_) => None,
        };
        let Some(body) = body else { continue };
        let Ok(record) = serde_json::from_slice::<ConnectionTestRecord>(&body) else {
            continue;
        };
        if record.project_id == project {
            return Ok(Some(FoundConnectionTest {
                blob: blob.name.clone(),
                record,
            }));
        }
        others.insert(blob.name.clone());
    }
    Ok(None)
}

/// Whether a ConnectionTest from `project` is among the first 32 messages of the notification
/// queue `queue`, peeked (left there): sent, and not yet read by the app. An answer that does
/// not decode counts as none waiting.
pub async fn connection_test_waiting(
    queue: &QueueClient,
    project: ProjectId,
) -> Result<bool, StorageActionError> {
    let options = QueueClientPeekMessagesOptions {
        number_of_messages: Some(32),
        ..Default::default()
    };
    let peeked = queue
        .peek_messages(Some(options))
        .await
        .map_err(StorageActionError::of("peek the notification queue"))?;
    Ok(peeked
        .into_model()
        .map(|m| m.items.unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.message_text)
        .any(|text| {
            matches!(
                Notification::parse(&text),
                Ok(Notification::ConnectionTest { project_id }) if project_id == project
            )
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::examples::PROJECT;

    /// The record's JSON is what every status container already holds, and reads back.
    #[test]
    fn the_record_keeps_its_keys_and_reads_back() {
        let project = ProjectId::parse(PROJECT).unwrap();
        let record = ConnectionTestRecord::new(project, Some("m1".into()));
        let output = record.to_output();
        assert_eq!(
            output.keys().map(String::as_str).collect::<Vec<_>>(),
            ["messageId", "projectId", "receivedAt"]
        );
        assert_eq!(output["projectId"], PROJECT);
        let back: ConnectionTestRecord =
            serde_json::from_value(Value::Object(output.clone())).unwrap();
        assert_eq!(back, record);
        let none = ConnectionTestRecord::new(project, None).to_output();
        assert_eq!(none["messageId"], Value::Null, "a message without an Id");
        assert_eq!(
            blob_path_template(),
            "%CV_STATUS_CONTAINER%/connection-tests/{Id}.json"
        );
    }
}
