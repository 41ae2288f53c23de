//! `cvctl pull`: one model of a project to a file, fetched only when it changed. The library
//! does the work ([`customvision_events::pull`]); this is the flags, the store's client (the
//! settings' identity, or a read-only container SAS URL for a device with no Azure identity),
//! the progress bar and the output.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use customvision_events::domain::{IterationId, ProjectId};
use customvision_events::model_store::Pick;
use customvision_events::pull::{self, Md5Check, Outcome, Progress, PullError, PullRequest};
use customvision_events::settings::StorageConnection;
use customvision_events::storage::StorageAccount;
use customvision_events::SharedHttp;

use crate::context::{storage_failure, CliError, Context, Failure};

/// The exit code of a pull that found the file already current: a script can branch on it.
pub const UNCHANGED: u8 = 4;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Custom Vision project (a hyphenated GUID).
    #[arg(long, value_name = "ID")]
    pub project: String,
    /// The platform (`ONNX`, `TensorFlow`, … in any case) or a label such as `zip`.
    #[arg(long)]
    pub platform: String,
    /// This iteration's model.
    #[arg(long, value_name = "ID", conflicts_with = "latest")]
    pub iteration: Option<String>,
    /// The newest model of the platform, as the index's `latest` names it (the default).
    #[arg(long)]
    pub latest: bool,
    /// Where the model goes. `PATH.pull.json` beside it remembers what it is.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// A read-only SAS URL of the model store container (`sp=r` is enough), for a device with
    /// no Azure identity; without it, the settings' storage connection (CV_STORAGE). Never
    /// printed.
    #[arg(
        long,
        value_name = "SAS_URL",
        env = "CV_CONTAINER_URL",
        hide_env_values = true
    )]
    pub container_url: Option<String>,
    /// Print what was done as JSON (no progress bar).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(
    root: &std::path::Path,
    overrides: &[String],
    timeout: Duration,
    args: &Args,
) -> Result<ExitCode, CliError> {
    let project_id = ProjectId::parse(&args.project).map_err(|e| {
        CliError::usage(
            format!("--project: {e}"),
            "the project's id, a hyphenated GUID",
        )
    })?;
    let pick = match &args.iteration {
        Some(i) => Pick::Iteration(
            IterationId::parse(i)
                .map_err(|e| CliError::usage(format!("--iteration: {e}"), "a hyphenated GUID"))?,
        ),
        None => Pick::Latest,
    };
    let (account, container) = match &args.container_url {
        Some(url) => {
            let (connection, container) =
                StorageConnection::from_container_url("--container-url", url).map_err(|e| {
                    CliError::usage(
                        e.to_string(),
                        "the container's SAS URL, e.g. https://ACCOUNT.blob.core.windows.net/models?sp=r&…&sig=…",
                    )
                })?;
            let account =
                StorageAccount::new(&connection, &SharedHttp::with_total_timeout(timeout))
                    .map_err(|e| CliError::usage(e.to_string(), "check --container-url"))?;
            (account, container)
        }
        None => {
            let ctx = Context::load(root, overrides, timeout)?;
            (ctx.account()?, ctx.settings.model_store_container.clone())
        }
    };
    let store = account
        .container(&container)
        .map_err(|e| CliError::usage(e.to_string(), "check the storage connection"))?;
    let request = PullRequest {
        project_id,
        platform: &args.platform,
        pick,
        out: &args.out,
    };
    let bar = Bar::new(!args.json && std::io::stderr().is_terminal(), &args.out);
    let pulled = pull::pull(&store, &request, &bar).await.map_err(|e| {
        let mut failure = failure(&container, e);
        if args.container_url.is_some() && failure.failure == Failure::Check {
            if let Some(hint) = failure
                .hint
                .as_mut()
                .filter(|h| h.contains("storage roles"))
            {
                *hint = "the SAS may have expired, or lack read (sp=r) on the container".into();
            }
        }
        failure
    })?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&pulled).unwrap_or_default()
        );
    } else {
        let md5 = match (pulled.md5, &pulled.content_md5) {
            (Md5Check::Verified, Some(m)) => format!("MD5 {m} verified"),
            (Md5Check::Earlier, Some(m)) => format!("MD5 {m}"),
            _ => "no Content-MD5 to verify against".to_string(),
        };
        let what = match pulled.outcome {
            Outcome::Downloaded => "downloaded",
            Outcome::Unchanged => "unchanged",
        };
        println!(
            "{what}: {container}/{} → {} (iteration {}, {}, {} bytes, ETag {}, {md5})",
            pulled.path,
            pulled.out.display(),
            pulled.iteration_id,
            pulled.platform,
            pulled.size,
            pulled.etag,
        );
    }
    Ok(match pulled.outcome {
        Outcome::Downloaded => ExitCode::SUCCESS,
        Outcome::Unchanged => ExitCode::from(UNCHANGED),
    })
}

fn failure(container: &str, e: PullError) -> CliError {
    if let Some(request) = e.request_error() {
        let what = match &e {
            PullError::Download { path, .. } => format!("read {container}/{path}"),
            _ => format!("{} in {container}", request.action),
        };
        return storage_failure(&what, &request.source);
    }
    match e {
        PullError::NoIndex { .. } | PullError::NotInIndex { .. } => CliError {
            failure: Failure::Check,
            message: e.to_string(),
            hint: Some("`cvctl models --project …` lists what the store holds".into()),
        },
        other => CliError::check(other.to_string()),
    }
}

/// A bar on a terminal, nothing in a pipe.
struct Bar(ProgressBar);

impl Bar {
    fn new(visible: bool, out: &std::path::Path) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar =
            ProgressBar::with_draw_target(None, target).with_message(out.display().to_string());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self(bar)
    }
}

impl Progress for Bar {
    fn start(&self, total: Option<u64>) {
        if let Some(total) = total {
            self.0.set_length(total);
        }
        self.0.enable_steady_tick(Duration::from_millis(200));
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
