//! `cvctl pull`, the binary, on Azurite through the counting proxy: a first download, an
//! unchanged model that costs a 304 and no body, a changed one, an MD5 mismatch refused, a
//! pull killed mid-body that leaves no file at its path, and a device's read-only container
//! SAS URL. The store is filled by the export's own code path ([`ExportProcessor`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use customvision_events::devhost::azurite::Azurite;
use customvision_events::devhost::probe::{wait_for, Probe};
use customvision_events::domain::{IterationId, ProjectId};
use customvision_events::export::ExportProcessor;
use customvision_events::settings::Settings;
use customvision_events::storage::StorageAccount;

use crate::support::helpers::*;
use crate::support::proxy::{CountingProxy, Seen};

/// Azurite, the proxy in front of its blob service, and the store the export path fills.
struct Store {
    /// Kept for the test's length: stopped when the store drops.
    _azurite: Azurite,
    probe: Probe,
    proxy: CountingProxy,
    settings: Settings,
    account: StorageAccount,
    /// The connection string through the proxy: what `cvctl` is given.
    proxied: String,
    dir: PathBuf,
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn store() -> Store {
    let azurite = Azurite::start(&root()).expect("Azurite starts");
    let connection = azurite.connection_string();
    let probe = Probe::from_connection_string(&connection).unwrap();
    for c in [BACKUPS, MODELS] {
        probe.create_container(c).await.unwrap();
    }
    let proxy = CountingProxy::start(azurite.blob_port).await;
    let proxied = connection.replace(
        &format!("127.0.0.1:{}/", azurite.blob_port),
        &format!("127.0.0.1:{}/", proxy.port),
    );
    let settings =
        Settings::from_lookup(&|k| (k == "CV_STORAGE").then(|| connection.clone())).unwrap();
    let account =
        StorageAccount::new(&settings.storage, &customvision_events::http_client()).unwrap();
    let dir = std::env::temp_dir().join(format!("cvctl-pull-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    Store {
        _azurite: azurite,
        probe,
        proxy,
        settings,
        account,
        proxied,
        dir,
    }
}

impl Store {
    /// A backup of `bytes` for the iteration, processed as `ExportCompleted` processes it.
    async fn export(&self, p: &str, i: &str, bytes: &[u8]) -> String {
        let name = format!("{p} - {i}.ONNX");
        self.probe.put_blob(BACKUPS, &name, bytes).await.unwrap();
        let processor = ExportProcessor {
            settings: &self.settings,
            account: &self.account,
            training: None,
        };
        processor
            .process(
                ProjectId::parse(p).unwrap(),
                IterationId::parse(i).unwrap(),
                None,
            )
            .await
            .unwrap();
        format!("{p}/{i}/ONNX/{name}")
    }

    async fn pull(&self, p: &str, out: &Path, extra: &[&str]) -> Run {
        let mut args = vec![
            "pull",
            "--project",
            p,
            "--platform",
            "onnx",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        cvctl(&[("CV_STORAGE", &self.proxied)], &args).await
    }

    /// The path of a blob of the model store, decoded (the SDK sends a name's `/` as `%2F`).
    fn blob_path(&self, blob: &str) -> String {
        let url = self.probe.account.plain_blob_url(MODELS, blob).unwrap();
        decoded(url.path())
    }
}

fn decoded(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

fn bytes(n: u32, salt: u32) -> Vec<u8> {
    (0..n).map(|k| ((k * 7 + salt) % 251) as u8).collect()
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr))
}

fn partial(out: &Path) -> PathBuf {
    out.with_file_name(format!(
        "{}.partial",
        out.file_name().unwrap().to_string_lossy()
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_downloads_once_and_again_only_when_the_model_changed() {
    let s = store().await;
    let (p, i) = ids();
    let v1 = bytes(300_000, 1);
    let copy = s.export(&p, &i, &v1).await;
    let out = s.dir.join("model.onnx");

    // First download: the index, then the model, verified.
    let first = s.pull(&p, &out, &["--latest", "--json"]).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let pulled = json(&first);
    assert_eq!(pulled["outcome"], "downloaded");
    assert_eq!(pulled["iterationId"], i.as_str());
    assert_eq!(pulled["path"], copy.as_str());
    assert_eq!(pulled["md5"], "verified");
    assert_eq!(pulled["transferred"], v1.len());
    assert_eq!(std::fs::read(&out).unwrap(), v1);
    assert!(!partial(&out).exists());

    // Unchanged: the index, and a conditional GET answered 304 with no body.
    let before = s.proxy.all_requests().len();
    let again = s.pull(&p, &out, &["--json"]).await;
    assert_eq!(
        again.code, 4,
        "nothing changed: {}{}",
        again.stdout, again.stderr
    );
    assert_eq!(json(&again)["outcome"], "unchanged");
    let window: Vec<Seen> = s.proxy.all_requests()[before..].to_vec();
    assert_eq!(window.len(), 2, "{window:#?}");
    assert!(
        window[0].path_and_query.contains("index.json"),
        "{window:#?}"
    );
    let model = &window[1];
    assert!(
        decoded(&model.path_and_query).starts_with(&s.blob_path(&copy)),
        "{model:?}"
    );
    assert_eq!((model.status, model.response_bytes), (304, 0), "{model:?}");
    assert_eq!(std::fs::read(&out).unwrap(), v1);

    // Changed: the iteration exported again, new bytes under the same path.
    let v2 = bytes(200_000, 2);
    s.export(&p, &i, &v2).await;
    let before = s.proxy.all_requests().len();
    let changed = s.pull(&p, &out, &["--json"]).await;
    assert_eq!(changed.code, 0, "{}{}", changed.stdout, changed.stderr);
    assert_eq!(json(&changed)["outcome"], "downloaded");
    assert_eq!(std::fs::read(&out).unwrap(), v2);
    let window: Vec<Seen> = s.proxy.all_requests()[before..].to_vec();
    let body: usize = window.iter().skip(1).map(|r| r.response_bytes).sum();
    assert_eq!(body, v2.len(), "{window:#?}");

    // The plain output says the same in one line.
    let text = s.pull(&p, &out, &[]).await;
    assert_eq!(text.code, 4);
    assert!(
        text.stdout.starts_with("unchanged: models/"),
        "{}",
        text.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_refuses_bytes_that_do_not_match_their_content_md5() {
    let s = store().await;
    let (p, i) = ids();
    let copy = s.export(&p, &i, &bytes(100_000, 3)).await;
    // The copy's recorded MD5 no longer matches its bytes (storage-side corruption).
    let blob = s.account.container(MODELS).unwrap().blob_client(&copy);
    blob.set_properties(Some(
        azure_storage_blob::models::BlobClientSetPropertiesOptions {
            blob_content_md5: Some(vec![7; 16]),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    let out = s.dir.join("model.onnx");
    let run = s.pull(&p, &out, &[]).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("refused, nothing written"),
        "{}",
        run.stderr
    );
    assert!(!out.exists(), "no file at PATH");
    assert!(!partial(&out).exists(), "no partial file left either");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_killed_mid_download_leaves_no_file_at_its_path() {
    let s = store().await;
    let (p, i) = ids();
    let model = bytes(1 << 20, 4);
    let copy = s.export(&p, &i, &model).await;
    let out = s.dir.join("model.onnx");
    s.proxy.cut_short(&s.blob_path(&copy), 64 * 1024);
    let mut child = Command::new(env!("CARGO_BIN_EXE_cvctl"))
        .arg("--root")
        .arg(root())
        .args(["--set", &format!("CV_STORAGE={}", s.proxied)])
        .args(["pull", "--project", &p, "--platform", "ONNX", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Mid-body: the proxy has sent part of the model and the partial file is open.
    let part = partial(&out);
    wait_for("the download to be cut short", DEADLINE, || async {
        // Wherever it writes: the partial file, or (wrongly) PATH itself.
        Ok((s.proxy.cut() == 1 && (part.exists() || out.exists())).then_some(()))
    })
    .await
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.exists(), "an interrupted pull leaves nothing at PATH");
    assert!(part.exists(), "killed: only the partial file is left");

    // The next pull starts over and leaves only the whole model.
    let run = s.pull(&p, &out, &[]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), model);
    assert!(!part.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_works_with_a_read_only_container_sas_url() {
    let s = store().await;
    let (p, i) = ids();
    let model = bytes(50_000, 5);
    s.export(&p, &i, &model).await;
    let mut url = s.probe.account.plain_blob_url(MODELS, "x").unwrap();
    url.path_segments_mut().unwrap().pop();
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        customvision_events::settings::AZURITE_KEY,
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let sas = customvision_events::storage::sas::container_read_sas(
        customvision_events::settings::AZURITE_ACCOUNT,
        &key,
        &url,
        now - time::Duration::minutes(5),
        now + time::Duration::hours(1),
    );
    let signature: String = url::form_urlencoded::parse(sas.as_bytes())
        .find(|(k, _)| k == "sig")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    url.set_query(Some(&sas));
    let out = s.dir.join("device.onnx");
    // No storage setting at all: a device holds only the URL.
    let args = [
        "pull",
        "--project",
        &p,
        "--platform",
        "ONNX",
        "--out",
        out.to_str().unwrap(),
        "--container-url",
        url.as_str(),
    ];
    let run = cvctl(&[("CV_STORAGE", "")], &args).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), model);
    let again = cvctl(&[("CV_STORAGE", "")], &args).await;
    assert_eq!(again.code, 4, "{}{}", again.stdout, again.stderr);

    // A refusal names the store, never the signature.
    let (other, _) = ids();
    let mut refused = args;
    refused[2] = other.as_str();
    let run = cvctl(&[("CV_STORAGE", "")], &refused).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    for text in [&run.stdout, &run.stderr, &again.stdout, &again.stderr] {
        assert!(!text.contains(&signature), "{text}");
    }
    // A signature the account did not make: refused by storage, said with the SAS's hint.
    let forged_url = url.as_str().replace("sig=", "sig=x");
    let mut forged = args;
    forged[8] = forged_url.as_str();
    let run = cvctl(&[("CV_STORAGE", "")], &forged).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("403"), "{}", run.stderr);
    assert!(
        run.stderr.contains("the SAS may have expired"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(&signature), "{}", run.stderr);
    // A URL without a SAS is a usage error, said without echoing the URL's query.
    let mut plain = args;
    let bare = s
        .probe
        .account
        .plain_blob_url(MODELS, "")
        .unwrap()
        .to_string();
    plain[8] = bare.as_str();
    let run = cvctl(&[("CV_STORAGE", "")], &plain).await;
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
}
