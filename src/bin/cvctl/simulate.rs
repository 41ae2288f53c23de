//! `cvctl simulate`: notifications as Custom Vision writes them, in the seed's exact formats
//! (`shared/seeds/storage-integration.md`, its stray space included), to the notification
//! queue; for an export, optionally the backup blob too, of a given size, or a blob of
//! "Custom Vision's" storage handed out as a SAS `modelUri`.

use std::time::Duration;

use azure_core::http::RequestContent;
use azure_storage_blob::models::BlockLookupList;
use azure_storage_queue::models::QueueMessage;
use base64::Engine as _;
use indicatif::{ProgressBar, ProgressStyle};
use time::OffsetDateTime;

use customvision_events::domain::ExportPlatform;
use customvision_events::seed;
use customvision_events::settings::StorageAuth;
use customvision_events::storage::{sas, StorageAccount};

use crate::context::{storage_failure, CliError, Context};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub kind: Kind,
}

#[derive(Debug, clap::Subcommand)]
pub enum Kind {
    /// The `ConnectionTest` Custom Vision writes when a project is wired.
    ConnectionTest {
        /// The project (default: a new random id).
        #[arg(long, value_name = "ID")]
        project: Option<String>,
    },
    /// A finished training (`TrainingCompleted`, or `TrainingFailed` with --failed).
    Training {
        #[command(flatten)]
        ids: Ids,
        /// The failure status instead.
        #[arg(long)]
        failed: bool,
    },
    /// A finished export (`ExportCompleted`, or `ExportFailed` with --failed).
    Export {
        #[command(flatten)]
        ids: Ids,
        /// The failure status instead.
        #[arg(long)]
        failed: bool,
        /// The exported platform (the backup's suffix).
        #[arg(long, default_value = "ONNX")]
        platform: String,
        /// Also write the backup blob, this big (`64KiB`, `10MB`, `1GiB`, or bytes).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        backup_size: Option<u64>,
        /// A project with no backup container: the model goes to `cv-exports` (standing in for
        /// Custom Vision's own storage) and `modelUri` is a read SAS for it. Needs an account key.
        #[arg(long, requires = "backup_size")]
        sas: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct Ids {
    /// The project (default: a new random id).
    #[arg(long, value_name = "ID")]
    pub project: Option<String>,
    /// The iteration (default: a new random id).
    #[arg(long, value_name = "ID")]
    pub iteration: Option<String>,
}

/// Where a SAS source goes.
pub const SAS_SOURCE_CONTAINER: &str = "cv-exports";
const BLOCK: u64 = 4 * 1024 * 1024;

pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit '{other}' (B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("'{text}' is too big"))
}

fn id_or_new(given: &Option<String>, what: &str) -> Result<String, CliError> {
    match given {
        Some(id) => customvision_events::domain::ProjectId::parse(id)
            .map(|p| p.to_string())
            .map_err(|e| CliError::usage(format!("--{what}: {e}"), "a hyphenated GUID")),
        None => Ok(uuid::Uuid::new_v4().to_string()),
    }
}

/// The seed's text with its example ids replaced.
fn with_ids(template: &str, project: &str, iteration: Option<&str>) -> String {
    // The seed's examples use the zero GUID for both ids, projectId first.
    let mut text = template.replacen(seed::SEED_ID, project, 1);
    if let Some(i) = iteration {
        text = text.replacen(seed::SEED_ID, i, 1);
    }
    text
}

/// What was written, for the caller to show or to use.
pub struct Written {
    pub project: String,
    pub iteration: Option<String>,
    pub message: String,
    pub blob: Option<String>,
}

pub async fn run(ctx: &Context, args: &Args) -> Result<Written, CliError> {
    let account = ctx.account()?;
    let queue_name = ctx
        .value("CV_NOTIFICATION_QUEUE")
        .unwrap_or_else(|| "customvision-notifications".into());
    let written = match &args.kind {
        Kind::ConnectionTest { project } => {
            let project = id_or_new(project, "project")?;
            Written {
                message: with_ids(seed::CONNECTION_TEST, &project, None),
                project,
                iteration: None,
                blob: None,
            }
        }
        Kind::Training { ids, failed } => {
            let project = id_or_new(&ids.project, "project")?;
            let iteration = id_or_new(&ids.iteration, "iteration")?;
            let mut message = with_ids(seed::TRAINING, &project, Some(&iteration));
            if *failed {
                message = message.replace("TrainingCompleted", "TrainingFailed");
            }
            Written {
                project,
                iteration: Some(iteration),
                message,
                blob: None,
            }
        }
        Kind::Export {
            ids,
            failed,
            platform,
            backup_size,
            sas,
        } => {
            let project = id_or_new(&ids.project, "project")?;
            let iteration = id_or_new(&ids.iteration, "iteration")?;
            let platform = ExportPlatform::parse(platform)
                .map(|p| p.as_str().to_string())
                .or_else(|| {
                    platform
                        .eq_ignore_ascii_case("zip")
                        .then(|| "zip".to_string())
                })
                .ok_or_else(|| {
                    CliError::usage(
                        format!("--platform {platform}: not an export platform"),
                        "CoreML, TensorFlow, DockerFile, ONNX, VAIDK, OpenVino or zip",
                    )
                })?;
            let (model_uri, blob) = match backup_size {
                None => (
                    account
                        .plain_blob_url(
                            &ctx.settings.backup_container,
                            &format!("{project} - {iteration}.{platform}"),
                        )
                        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?
                        .to_string(),
                    None,
                ),
                Some(size) if !*sas => {
                    let name = format!("{project} - {iteration}.{platform}");
                    upload(&account, &ctx.settings.backup_container, &name, *size).await?;
                    let url = account
                        .plain_blob_url(&ctx.settings.backup_container, &name)
                        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
                    (
                        url.to_string(),
                        Some(format!("{}/{name}", ctx.settings.backup_container)),
                    )
                }
                Some(size) => {
                    // Custom Vision's own download names are hashes.
                    let name = format!(
                        "m-{}/{}.zip",
                        &project[..8],
                        &iteration.replace('-', "")[..16]
                    );
                    account
                        .ensure_container(SAS_SOURCE_CONTAINER)
                        .await
                        .map_err(|e| CliError::check(e.to_string()))?;
                    upload(&account, SAS_SOURCE_CONTAINER, &name, *size).await?;
                    (
                        read_sas(ctx, &account, &name)?,
                        Some(format!("{SAS_SOURCE_CONTAINER}/{name}")),
                    )
                }
            };
            let mut message = seed::export(&model_uri).replacen(seed::SEED_ID, &project, 1);
            message = message.replacen(seed::SEED_ID, &iteration, 1);
            if *failed {
                message = message.replace("ExportCompleted", "ExportFailed");
            }
            Written {
                project,
                iteration: Some(iteration),
                message,
                blob,
            }
        }
    };
    account
        .ensure_queue(&queue_name)
        .await
        .map_err(|e| CliError::check(e.to_string()))?;
    let queue = account
        .queue(&queue_name)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    let content = QueueMessage {
        message_text: Some(written.message.clone()),
    }
    .try_into()
    .map_err(|e: azure_core::Error| CliError::check(e.to_string()))?;
    queue
        .send_message(content, None)
        .await
        .map_err(|e| storage_failure(&format!("writing to queue {queue_name}"), &e))?;
    Ok(written)
}

/// A read SAS, valid for a day, signed with the account key (Azurite's, or a key connection
/// string's): what Custom Vision hands out.
fn read_sas(ctx: &Context, account: &StorageAccount, name: &str) -> Result<String, CliError> {
    let StorageAuth::SharedKey {
        account: account_name,
        key,
    } = &ctx.settings.storage.auth
    else {
        return Err(CliError::usage(
            "--sas needs an account key to sign with",
            "use Azurite or a connection string with AccountKey",
        ));
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(key.expose())
        .map_err(|_| CliError::usage("the account key is not base64", "check CV_STORAGE"))?;
    let mut url = account
        .plain_blob_url(SAS_SOURCE_CONTAINER, name)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    let now = OffsetDateTime::now_utc();
    url.set_query(Some(&sas::blob_read_sas(
        account_name,
        &key,
        &url,
        now - time::Duration::minutes(5),
        now + time::Duration::days(1),
    )));
    Ok(url.to_string())
}

/// `size` bytes of a repeating pattern, staged in 4 MiB blocks (never the whole blob in
/// memory), with a progress bar for anything bigger than one block.
async fn upload(
    account: &StorageAccount,
    container: &str,
    name: &str,
    size: u64,
) -> Result<(), CliError> {
    account
        .ensure_container(container)
        .await
        .map_err(|e| CliError::check(e.to_string()))?;
    let blob = account
        .container(container)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?
        .blob_client(name);
    let block: Vec<u8> = (0..BLOCK.min(size.max(1)) as usize)
        .map(|n| (n % 251) as u8)
        .collect();
    if size <= BLOCK {
        return blob
            .upload(RequestContent::from(block[..size as usize].to_vec()), None)
            .await
            .map(|_| ())
            .map_err(|e| storage_failure(&format!("uploading {container}/{name}"), &e));
    }
    let bar = ProgressBar::new(size).with_message(format!("{container}/{name}"));
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let block_blob = blob.block_blob_client();
    let mut ids = Vec::new();
    let mut sent = 0u64;
    while sent < size {
        let n = BLOCK.min(size - sent);
        let id = format!("{:08}", ids.len()).into_bytes();
        block_blob
            .stage_block(
                &id,
                n,
                RequestContent::from(block[..n as usize].to_vec()),
                None,
            )
            .await
            .map_err(|e| storage_failure(&format!("uploading {container}/{name}"), &e))?;
        ids.push(id);
        sent += n;
        bar.set_position(sent);
    }
    let list = BlockLookupList {
        latest: Some(ids),
        ..Default::default()
    };
    block_blob
        .commit_block_list(
            list.try_into()
                .map_err(|e: azure_core::Error| CliError::check(e.to_string()))?,
            None,
        )
        .await
        .map_err(|e| storage_failure(&format!("committing {container}/{name}"), &e))?;
    bar.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("1TiB").is_err());
    }

    #[test]
    fn the_seeds_text_with_real_ids() {
        let text = with_ids(seed::TRAINING, "p-1", Some("i-2"));
        assert!(text.contains("\"projectId\": \"p-1\""));
        assert!(text.contains("\"iterationId\": \"i-2\""));
        assert!(
            text.contains("\"version\": \"1.0\" ,"),
            "the stray space kept"
        );
    }
}
