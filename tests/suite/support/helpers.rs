//! One private Azurite per test, the real `handler` binary under `cvctl dev-host`, and a
//! storage probe. Everything started here stops when the `TestApp` drops.
//! Used by the `e2e` and `reliability` modules.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use customvision_events::devhost::azurite::{die_with_parent, Azurite};
use customvision_events::devhost::probe::{wait_for, Probe};

use crate::support::proxy::CountingProxy;

pub const NOTIFICATIONS: &str = "customvision-notifications";
pub const TRAINING: &str = "customvision-training";
pub const EXPORTS: &str = "customvision-exports";
pub const REJECTED: &str = "customvision-rejected";
/// The rejected messages' text blobs (`CV_REJECTED_CONTAINER`) and the status records.
pub const REJECTED_CONTAINER: &str = "customvision-rejected";
pub const STATUS: &str = "customvision-status";
pub const BACKUPS: &str = "customvision-backups";
pub const MODELS: &str = "models";

/// The names the model store holds, from their one definition (`naming::stored`), so a test
/// checks what the app writes by the same names.
pub use customvision_events::naming::stored::{
    dashboard_path, report_html_path, report_json_path, CONNECTION_TESTS_PREFIX, ITERATION_ID_KEY,
    KIND_BACKUP, KIND_LATEST, KIND_MODEL, ORDER_AT_KEY, ORDER_BY_KEY, PROJECT_ID_KEY,
    SOURCE_BLOB_KEY, SOURCE_ETAG_KEY, TAG_ITERATION_ID, TAG_KIND, TAG_PLATFORM, TAG_PROJECT_ID,
};

/// `{project}/index.json` (`naming::stored::index_path`), for a project id as text.
pub fn index_blob(project: &str) -> String {
    customvision_events::naming::stored::index_path(
        customvision_events::domain::ProjectId::parse(project).unwrap(),
    )
}

/// `{project}/latest/{platform}/model.{extension}` (`naming::stored::latest_path`), for a
/// project id as text.
pub fn latest_blob(project: &str, platform: &str, extension: &str) -> String {
    customvision_events::naming::stored::latest_path(
        customvision_events::domain::ProjectId::parse(project).unwrap(),
        platform,
        extension,
    )
}

/// Generous: a loaded CI machine, not an expectation of speed.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct TestApp {
    pub probe: Probe,
    /// Everything the dev hosts and their handlers printed.
    pub output: Arc<Mutex<String>>,
    /// The connection string the dev hosts are given, and their extra settings.
    connection: String,
    settings: Vec<(String, String)>,
    /// Extra `cvctl dev-host` arguments.
    devhost_args: Vec<String>,
    devhosts: Vec<Child>,
    /// Stopped by its `Drop`; restartable when persistent.
    pub azurite: Azurite,
}

/// How [`spawn_with`] sets an app up.
#[derive(Default)]
pub struct AppOptions {
    pub settings: Vec<(String, String)>,
    /// An Azurite started by the test (persistent, say); a fresh in-memory one otherwise.
    pub azurite: Option<Azurite>,
    /// The port the dev host and handler reach the blob service on (a proxy the test started
    /// in front of `azurite`); Azurite's own otherwise.
    pub blob_port: Option<u16>,
    /// Extra `cvctl dev-host` arguments (`--lease-ms`, `--visibility-timeout-ms`, ...).
    pub devhost_args: Vec<String>,
}

impl AppOptions {
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }

    pub fn devhost_arg(mut self, arg: &str, value: &str) -> Self {
        self.devhost_args
            .extend([arg.to_string(), value.to_string()]);
        self
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub async fn spawn_app(settings: &[(&str, &str)]) -> TestApp {
    spawn(settings, None).await
}

pub fn start_azurite() -> Azurite {
    Azurite::start(&root()).expect("Azurite starts (run `npm ci` first)")
}

/// The app with its blob requests going through a [`CountingProxy`]; the test's probe and the
/// queues talk to Azurite directly.
pub async fn spawn_counted(settings: &[(&str, &str)]) -> (TestApp, CountingProxy) {
    let azurite = Azurite::start(&root()).expect("Azurite starts (run `npm ci` first)");
    let proxy = CountingProxy::start(azurite.blob_port).await;
    let app = spawn(settings, Some((azurite, proxy.port))).await;
    (app, proxy)
}

async fn spawn(settings: &[(&str, &str)], azurite: Option<(Azurite, u16)>) -> TestApp {
    let (azurite, blob_port) = match azurite {
        Some((a, port)) => (Some(a), Some(port)),
        None => (None, None),
    };
    spawn_with(AppOptions {
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        azurite,
        blob_port,
        devhost_args: Vec::new(),
    })
    .await
}

pub async fn spawn_with(options: AppOptions) -> TestApp {
    let azurite = options.azurite.unwrap_or_else(start_azurite);
    let direct = azurite.connection_string();
    let probe = Probe::from_connection_string(&direct).unwrap();
    let connection = match options.blob_port {
        Some(port) => direct.replace(
            &format!("127.0.0.1:{}/", azurite.blob_port),
            &format!("127.0.0.1:{port}/"),
        ),
        None => direct,
    };
    for c in [BACKUPS, MODELS] {
        probe.create_container(c).await.unwrap();
    }
    probe.create_queue(NOTIFICATIONS).await.unwrap();

    let output = Arc::new(Mutex::new(String::new()));
    let devhost = start_devhost(
        &connection,
        &options.settings,
        &options.devhost_args,
        &output,
    );
    TestApp {
        probe,
        output,
        connection,
        settings: options.settings,
        devhost_args: options.devhost_args,
        devhosts: vec![devhost],
        azurite,
    }
}

/// The real `handler` binary under `cvctl dev-host`, their output collected into `output`.
fn start_devhost(
    connection: &str,
    settings: &[(String, String)],
    devhost_args: &[String],
    output: &Arc<Mutex<String>>,
) -> Child {
    let handler = env!("CARGO_BIN_EXE_handler");
    let mut command = Command::new(env!("CARGO_BIN_EXE_cvctl"));
    command
        .args(["dev-host", "--handler", handler])
        .arg("--root")
        .arg(root())
        .env("RUST_LOG", "debug");
    // Short back-off and retry delay so a test takes seconds; the semantics are host.json's.
    // A test's own arguments replace these.
    for (arg, value) in [
        ("--max-polling-interval-ms", "200"),
        ("--visibility-timeout-ms", "0"),
    ] {
        if !devhost_args.iter().any(|a| a == arg) {
            command.args([arg, value]);
        }
    }
    command
        .args(devhost_args)
        .env("CV_STORAGE", connection)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in settings {
        command.env(k, v);
    }
    die_with_parent(&mut command);
    let mut devhost = command.spawn().expect("dev host starts");
    for pipe in [
        devhost
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        devhost
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                output.lock().unwrap().push_str(&(line + "\n"));
            }
        });
    }
    devhost
}

impl TestApp {
    /// The connection string the dev hosts are given.
    pub fn connection(&self) -> &str {
        &self.connection
    }

    /// A second host on the same queues, as on a scale-out: both compete for every message.
    pub fn add_host(&mut self) {
        let devhost = start_devhost(
            &self.connection,
            &self.settings,
            &self.devhost_args,
            &self.output,
        );
        self.devhosts.push(devhost);
    }

    /// What App Service does when a setting changes (or a Key Vault reference is resolved on a
    /// restart): the dev hosts stop (SIGTERM, letting in-flight invocations end) and one starts
    /// again with `changed` in place of the old values. The queues and blobs are kept.
    pub fn restart_with(&mut self, changed: &[(&str, &str)]) {
        for devhost in &mut self.devhosts {
            unsafe {
                libc::kill(devhost.id() as i32, libc::SIGTERM);
            }
            let _ = devhost.wait();
        }
        self.devhosts.clear();
        for (k, v) in changed {
            self.settings.retain(|(name, _)| name != k);
            self.settings.push((k.to_string(), v.to_string()));
        }
        self.add_host();
    }

    /// The process ids of the dev hosts.
    pub fn devhost_pids(&self) -> Vec<u32> {
        self.devhosts.iter().map(Child::id).collect()
    }

    /// The running handlers (the dev hosts' `handler` children), one per dev host once ready.
    pub fn handler_pids(&self) -> Vec<u32> {
        let parents = self.devhost_pids();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`: the command may hold spaces, so split after ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            let state = rest.split_whitespace().next();
            if head.ends_with("(handler")
                && state != Some("Z")
                && ppid.is_some_and(|p: u32| parents.contains(&p))
            {
                pids.push(pid);
            }
        }
        pids
    }

    /// Waits until `n` handlers run, other than those in `not`; returns their pids.
    pub async fn wait_handlers(&self, n: usize, not: &[u32]) -> Vec<u32> {
        wait_for("the handlers to run", DEADLINE, || async {
            let pids: Vec<u32> = self
                .handler_pids()
                .into_iter()
                .filter(|p| !not.contains(p))
                .collect();
            Ok((pids.len() >= n).then_some(pids))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", self.output()))
    }

    pub async fn send(&self, text: &str) {
        self.probe.send(NOTIFICATIONS, text).await.unwrap();
    }

    /// Waits until every queue the functions read is empty, invisible messages included: all
    /// deliveries so far have been processed (done, rejected or poisoned).
    pub async fn drained(&self) {
        self.drained_within(DEADLINE).await
    }

    pub async fn drained_within(&self, deadline: Duration) {
        wait_for("the queues to drain", deadline, || async {
            for q in [NOTIFICATIONS, TRAINING, EXPORTS] {
                if self.probe.queue_len(q).await? > 0 {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- output ---\n{}", self.output()));
    }

    pub async fn messages(&self, queue: &str, at_least: usize) -> Vec<String> {
        wait_for(
            &format!("{at_least} message(s) in {queue}"),
            DEADLINE,
            || async {
                let m = self.probe.peek(queue).await?;
                Ok((m.len() >= at_least).then_some(m))
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n--- output ---\n{}", self.output()))
    }

    /// Whether the blob exists (a storage error fails the test).
    pub async fn has_blob(&self, container: &str, name: &str) -> bool {
        self.probe.blob(container, name).await.unwrap().is_some()
    }

    /// Asserts that these queues hold no message (visible ones: nothing rejected or poisoned).
    pub async fn assert_empty(&self, queues: &[&str]) {
        for q in queues {
            let left = self.probe.peek(q).await.unwrap();
            assert!(
                left.is_empty(),
                "{q} holds {left:?}\n--- output ---\n{}",
                self.output()
            );
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // SIGTERM lets a dev host stop its handler; the handler also dies with its parent.
        for devhost in &mut self.devhosts {
            unsafe {
                libc::kill(devhost.id() as i32, libc::SIGTERM);
            }
            let _ = devhost.wait();
        }
    }
}

pub fn ids() -> (String, String) {
    (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    )
}

pub fn export_message(
    project: &str,
    iteration: &str,
    status: &str,
    model_uri: Option<&str>,
) -> String {
    let mut content = serde_json::json!({
        "projectId": project, "iterationId": iteration, "exportStatus": status,
    });
    if let Some(uri) = model_uri {
        content["modelUri"] = uri.into();
    }
    serde_json::json!({"version": "1.0", "type": "Export", "Content": content}).to_string()
}

/// A read SAS for a blob of `container`, as Custom Vision hands one out; expired if asked.
pub fn sas_url(app: &TestApp, container: &str, blob: &str, expired: bool) -> String {
    let mut url = app.probe.account.plain_blob_url(container, blob).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let (start, expiry) = if expired {
        (
            now - time::Duration::hours(2),
            now - time::Duration::hours(1),
        )
    } else {
        (
            now - time::Duration::minutes(5),
            now + time::Duration::hours(1),
        )
    };
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        customvision_events::settings::AZURITE_KEY,
    )
    .unwrap();
    url.set_query(Some(&customvision_events::storage::sas::blob_read_sas(
        customvision_events::settings::AZURITE_ACCOUNT,
        &key,
        &url,
        start,
        expiry,
    )));
    url.to_string()
}

/// What a `cvctl` run printed, and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `cvctl` binary with the repository's settings, `settings` over them.
pub async fn cvctl(settings: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cvctl"));
    command.arg("--root").arg(root());
    for (k, v) in settings {
        command.args(["--set", &format!("{k}={v}")]);
    }
    command.args(args).env("RUST_LOG", "warn");
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The order the handler itself uses, read from the backups' creation times.
pub async fn expected_newest(app: &TestApp, project: &str, iterations: &[String]) -> String {
    let container = app.probe.account.container(BACKUPS).unwrap();
    let listed = customvision_events::storage::list_blobs(&container, &format!("{project} - "))
        .await
        .unwrap();
    iterations
        .iter()
        .map(|i| {
            let backup = listed.iter().find(|b| b.name.contains(i.as_str())).unwrap();
            customvision_events::model_store::OrderKey {
                at: backup.created.unwrap(),
                by: customvision_events::model_store::OrderBy::Created,
                iteration_id: customvision_events::domain::IterationId::parse(i).unwrap(),
            }
        })
        .max()
        .unwrap()
        .iteration_id
        .to_string()
}
