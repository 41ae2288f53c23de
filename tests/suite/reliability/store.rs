//! What the reliability tests put in and what they check out: backups with seeded bytes, the
//! export messages for them, and the model store's state judged against them (one correct
//! copy per export, tags and metadata, the index and `latest`).

use std::collections::{BTreeMap, HashMap};

use azure_core::http::StatusCode;
use azure_storage_blob::models::{BlobClientGetPropertiesResultHeaders, CopyStatus};
use base64::Engine as _;
use md5::{Digest, Md5};
use serde_json::Value;

use crate::support::helpers::*;

/// One export the test made a backup for.
#[derive(Debug, Clone)]
pub struct Export {
    pub project: String,
    pub iteration: String,
    /// The source blob's name (a backup's, or a blob behind a SAS `modelUri`).
    pub backup: String,
    pub size: usize,
    pub md5: [u8; 16],
    /// A SAS `modelUri` the message carries; none for a backup.
    pub sas: Option<String>,
    /// What the copy's `cvsourceblob` metadata says.
    pub source: String,
}

/// Custom Vision's own storage, as far as a SAS `modelUri` goes.
pub const CV_EXPORTS: &str = "cv-exports";

impl Export {
    pub fn model_path(&self) -> String {
        match self.sas {
            None => format!("{}/{}/ONNX/{}", self.project, self.iteration, self.backup),
            Some(_) => format!(
                "{p}/{i}/ONNX/{p} - {i}.ONNX",
                p = self.project,
                i = self.iteration
            ),
        }
    }

    pub fn message(&self) -> String {
        export_message(
            &self.project,
            &self.iteration,
            "ExportCompleted",
            self.sas.as_deref(),
        )
    }
}

/// Exports from a SAS `modelUri` (no backup), one project each: the signature each carries
/// is a real one Azurite checks, and must never show anywhere.
/// `via`: the port the handler reaches the blob service on, when a proxy stands in front:
/// the SAS URL names the account as the handler knows it (a signature does not cover the
/// host), so it is the handler's own account.
pub async fn put_sas_sources(
    app: &TestApp,
    count: usize,
    seed: u64,
    via: Option<u16>,
) -> Vec<Export> {
    app.probe.create_container(CV_EXPORTS).await.unwrap();
    let mut exports = Vec::new();
    for n in 0..count {
        let (project, iteration) = ids();
        let name = format!("m-{n}/{}.ONNX", uuid::Uuid::new_v4().simple());
        let data = bytes(seed + n as u64, 2048 + n * 512);
        app.probe.put_blob(CV_EXPORTS, &name, &data).await.unwrap();
        let mut sas = sas_url(app, CV_EXPORTS, &name, false);
        if let Some(port) = via {
            let mut url = url::Url::parse(&sas).unwrap();
            url.set_port(Some(port)).unwrap();
            sas = url.to_string();
        }
        let mut source = url::Url::parse(&sas).unwrap();
        source.set_query(None);
        let source = source.to_string();
        exports.push(Export {
            project,
            iteration,
            backup: name,
            size: data.len(),
            md5: md5(&data),
            sas: Some(sas),
            source,
        });
    }
    exports
}

pub fn md5(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Seeded bytes: every backup differs, and a run is reproducible.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Backups for `projects` × `per_project` iterations, uploaded one after another so that their
/// creation times order each project's iterations; `size(n)` is the n-th backup's size.
pub async fn put_backups(
    app: &TestApp,
    projects: usize,
    per_project: usize,
    size: impl Fn(usize) -> usize,
) -> Vec<Export> {
    let mut exports = Vec::new();
    for _ in 0..projects {
        let project = uuid::Uuid::new_v4().to_string();
        for _ in 0..per_project {
            let iteration = uuid::Uuid::new_v4().to_string();
            let n = exports.len();
            let data = bytes(n as u64 + 1, size(n));
            let backup = format!("{project} - {iteration}.ONNX");
            app.probe.put_blob(BACKUPS, &backup, &data).await.unwrap();
            exports.push(Export {
                project: project.clone(),
                iteration,
                source: format!("{BACKUPS}/{backup}"),
                backup,
                size: data.len(),
                md5: md5(&data),
                sas: None,
            });
        }
    }
    exports
}

/// What the checks found, for the figures.
#[derive(Debug, Default)]
pub struct Checked {
    pub copies: usize,
    pub index_entries: usize,
    pub projects: usize,
}

/// Every export has exactly one copy, byte for byte (MD5) its backup, tagged and with its
/// source recorded; each project's index lists each export once with that MD5, and its
/// `latest` (in the index and as the alias blob) is the newest iteration.
pub async fn check_exports(app: &TestApp, exports: &[Export]) -> Checked {
    check_exports_by(app, exports, Newest::Created).await
}

/// How the newest iteration of a project is known.
#[derive(Debug, Clone, Copy)]
pub enum Newest {
    /// By the backups' creation times (no Training API).
    Created,
    /// By `trainedAt`, which the Training API fixture gives every iteration alike: ties go to
    /// the greater iteration id.
    SameTrainedAt,
}

pub async fn check_exports_by(app: &TestApp, exports: &[Export], rule: Newest) -> Checked {
    let names = app.probe.list(MODELS).await.unwrap();
    let mut checked = Checked::default();
    for e in exports {
        let prefix = format!("{}/{}/", e.project, e.iteration);
        let at: Vec<&String> = names.iter().filter(|n| n.starts_with(&prefix)).collect();
        assert_eq!(
            at,
            vec![&e.model_path()],
            "exactly one copy for {}\n{}",
            e.iteration,
            tail(app)
        );
        let copy = app
            .probe
            .blob(MODELS, &e.model_path())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(copy.bytes.len(), e.size, "size of {}", e.model_path());
        assert_eq!(md5(&copy.bytes), e.md5, "MD5 of {}", e.model_path());
        assert_eq!(copy.tags[TAG_PROJECT_ID], e.project);
        assert_eq!(copy.tags[TAG_ITERATION_ID], e.iteration);
        assert_eq!(copy.tags[TAG_PLATFORM], "ONNX");
        assert_eq!(copy.tags[TAG_KIND], KIND_MODEL);
        assert_eq!(copy.metadata[SOURCE_BLOB_KEY], e.source);
        checked.copies += 1;
    }
    let mut by_project: BTreeMap<&str, Vec<&Export>> = BTreeMap::new();
    for e in exports {
        by_project.entry(&e.project).or_default().push(e);
    }
    for (project, mine) in by_project {
        let index = index_of(app, project).await;
        let models = index["models"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            models.len(),
            mine.len(),
            "index of {project} lists each export once: {index}"
        );
        for e in &mine {
            let entries: Vec<&Value> = models
                .iter()
                .filter(|m| m["iterationId"] == e.iteration.as_str())
                .collect();
            assert_eq!(entries.len(), 1, "{} once in {index}", e.iteration);
            assert_eq!(entries[0]["path"], e.model_path().as_str());
            // Storage records an MD5 for a blob put in one request, not for one put in blocks
            // (Azurite leaves it out for large puts too): the index says what storage says.
            let recorded = look(&app.probe, MODELS, &e.model_path())
                .await
                .unwrap()
                .and_then(|s| s.md5);
            if let Some(m) = &recorded {
                assert_eq!(
                    m.as_slice(),
                    e.md5.as_slice(),
                    "Content-MD5 of {}",
                    e.model_path()
                );
            }
            assert_eq!(
                entries[0]["contentMd5"].as_str(),
                recorded.as_deref().map(b64).as_deref(),
                "the index's MD5 of {}",
                e.model_path()
            );
            assert_eq!(entries[0]["size"], e.size as u64);
            checked.index_entries += 1;
        }
        let newest = if mine.len() == 1 {
            mine[0].iteration.clone()
        } else if let Newest::SameTrainedAt = rule {
            mine.iter().map(|e| e.iteration.clone()).max().unwrap()
        } else {
            let iterations: Vec<String> = mine.iter().map(|e| e.iteration.clone()).collect();
            expected_newest(app, project, &iterations).await
        };
        assert_eq!(
            index["latest"]["ONNX"]["iterationId"],
            newest.as_str(),
            "the index's latest is the newest iteration"
        );
        let alias = app
            .probe
            .blob(MODELS, &latest_blob(project, "ONNX", "ONNX"))
            .await
            .unwrap()
            .expect("a latest alias");
        let newest_export = mine.iter().find(|e| e.iteration == newest).unwrap();
        assert_eq!(
            md5(&alias.bytes),
            newest_export.md5,
            "latest holds the newest"
        );
        assert_eq!(alias.tags[TAG_ITERATION_ID], newest);
        checked.projects += 1;
    }
    checked
}

pub async fn index_of(app: &TestApp, project: &str) -> Value {
    let blob = app
        .probe
        .blob(MODELS, &index_blob(project))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no index for {project}\n{}", tail(app)));
    serde_json::from_slice(&blob.bytes).unwrap()
}

/// Nothing rejected, nothing poisoned.
pub async fn assert_nothing_rejected(app: &TestApp) {
    app.assert_empty(&[
        REJECTED,
        &format!("{NOTIFICATIONS}-poison"),
        &format!("{TRAINING}-poison"),
        &format!("{EXPORTS}-poison"),
    ])
    .await;
}

/// For a failure message: the whole output goes to a file (it is long), and its last
/// lines above debug level are shown.
pub fn tail(app: &TestApp) -> String {
    let out = app.output();
    let path = std::env::temp_dir().join(format!("reliability-{}.log", uuid::Uuid::new_v4()));
    let _ = std::fs::write(&path, &out);
    let lines: Vec<&str> = out.lines().filter(|l| !l.contains(" DEBUG ")).collect();
    format!(
        "{}\n(whole output in {})",
        lines[lines.len().saturating_sub(60)..].join("\n"),
        path.display()
    )
}

/// A blob as a reader would find it at one moment, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub length: Option<u64>,
    pub md5: Option<Vec<u8>>,
    pub copy: Option<String>,
    pub metadata: HashMap<String, String>,
}

impl Seen {
    /// A reader sees the content only when no copy is pending: a pending or failed copy's
    /// destination is not a model yet (`x-ms-copy-status`), and the index and `latest` never
    /// name one.
    pub fn readable(&self) -> bool {
        matches!(self.copy.as_deref(), None | Some("success"))
    }
}

pub async fn look(
    probe: &customvision_events::devhost::probe::Probe,
    container: &str,
    name: &str,
) -> Result<Option<Seen>, String> {
    let blob = probe
        .account
        .container(container)
        .map_err(|e| e.to_string())?
        .blob_client(name);
    let props = match blob.get_properties(None).await {
        Ok(p) => p,
        Err(e) if e.http_status() == Some(StatusCode::NotFound) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let copy = props.copy_status().map_err(|e| e.to_string())?;
    Ok(Some(Seen {
        length: props.content_length().map_err(|e| e.to_string())?,
        md5: props.content_md5().map_err(|e| e.to_string())?,
        copy: copy.map(|c| match c {
            CopyStatus::Success => "success".to_string(),
            CopyStatus::Pending => "pending".to_string(),
            other => format!("{other:?}").to_ascii_lowercase(),
        }),
        metadata: props.metadata().map_err(|e| e.to_string())?,
    }))
}

/// Why invocations failed and were retried, by reason (its first words), from the dev
/// host's "will retry" lines.
pub fn retry_reasons(output: &str) -> BTreeMap<String, usize> {
    let mut reasons = BTreeMap::new();
    for line in output.lines() {
        if let Some((_, reason)) = line.split_once("will retry: ") {
            let short: String = reason.chars().take(60).collect();
            *reasons.entry(short).or_default() += 1;
        }
    }
    reasons
}
