//! One private Azurite per test, the real `handler` binary under `cvctl dev-host`, and a
//! storage probe. Everything started here stops when the `TestApp` drops.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use customvision_events::devhost::azurite::{die_with_parent, Azurite};
use customvision_events::devhost::probe::{wait_for, Probe};

use crate::proxy::CountingProxy;

pub const NOTIFICATIONS: &str = "customvision-notifications";
pub const TRAINING: &str = "customvision-training";
pub const EXPORTS: &str = "customvision-exports";
pub const REJECTED: &str = "customvision-rejected";
pub const BACKUPS: &str = "customvision-backups";
pub const MODELS: &str = "models";

/// Generous: a loaded CI machine, not an expectation of speed.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct TestApp {
    pub probe: Probe,
    /// Everything the dev hosts and their handlers printed.
    pub output: Arc<Mutex<String>>,
    /// The connection string the dev hosts are given, and their extra settings.
    connection: String,
    settings: Vec<(String, String)>,
    devhosts: Vec<Child>,
    /// Kept for its `Drop`, which stops Azurite.
    _azurite: Azurite,
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub async fn spawn_app(settings: &[(&str, &str)]) -> TestApp {
    spawn(settings, None).await
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
        Some((a, proxy_port)) => (a, Some(proxy_port)),
        None => (
            Azurite::start(&root()).expect("Azurite starts (run `npm ci` first)"),
            None,
        ),
    };
    let direct = azurite.connection_string();
    let probe = Probe::from_connection_string(&direct).unwrap();
    let connection = match blob_port {
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
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let devhost = start_devhost(&connection, &settings, &output);
    TestApp {
        probe,
        output,
        connection,
        settings,
        devhosts: vec![devhost],
        _azurite: azurite,
    }
}

/// The real `handler` binary under `cvctl dev-host`, their output collected into `output`.
fn start_devhost(
    connection: &str,
    settings: &[(String, String)],
    output: &Arc<Mutex<String>>,
) -> Child {
    let handler = env!("CARGO_BIN_EXE_handler");
    let mut command = Command::new(env!("CARGO_BIN_EXE_cvctl"));
    command
        .args(["dev-host", "--handler", handler])
        .arg("--root")
        .arg(root())
        // Short back-off and retry delay so a test takes seconds; the semantics are host.json's.
        .args([
            "--max-polling-interval-ms",
            "200",
            "--visibility-timeout-ms",
            "0",
        ])
        .env("CV_STORAGE", connection)
        .env("RUST_LOG", "debug")
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
        let devhost = start_devhost(&self.connection, &self.settings, &self.output);
        self.devhosts.push(devhost);
    }

    pub async fn send(&self, text: &str) {
        self.probe.send(NOTIFICATIONS, text).await.unwrap();
    }

    /// Waits until every queue the functions read is empty, invisible messages included: all
    /// deliveries so far have been processed (done, rejected or poisoned).
    pub async fn drained(&self) {
        wait_for("the queues to drain", DEADLINE, || async {
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
