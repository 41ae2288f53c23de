//! A reader of the model store during a run: it polls the model paths, the `latest` alias and
//! the index as a device or a deployment script would, and records every state it finds.
//!
//! What "visible" means: the blob is there and no copy into it is pending or failed
//! (`x-ms-copy-status`). A pending copy's destination is not yet a model (Azure documents its
//! content as not readable until the copy completes), and the index and `latest` must never
//! name one. So every visible blob must be a whole model: the size and Content-MD5 of its
//! source (Azurite records the MD5 of a put and carries it through a copy), and every index
//! entry must name a visible blob of the size it claims.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use customvision_events::devhost::probe::Probe;

use crate::support::helpers::{index_blob, latest_blob};
use serde_json::Value;
use tokio::sync::watch;

use crate::reliability::store::{look, Export};
use crate::support::helpers::MODELS;

#[derive(Debug, Default, Clone)]
pub struct Observed {
    pub rounds: usize,
    /// Observations by state: absent, pending, visible.
    pub states: BTreeMap<&'static str, usize>,
    pub index_reads: usize,
    /// What a reader must never have seen.
    pub violations: Vec<String>,
}

pub struct Observer {
    stop: watch::Sender<bool>,
    seen: Arc<Mutex<Observed>>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    pub fn start(probe: Probe, exports: &[Export]) -> Self {
        // Each watched path and the (size, MD5) pairs a whole model there may have.
        let mut watched: HashMap<String, Vec<(u64, [u8; 16])>> = HashMap::new();
        let mut projects = Vec::new();
        for e in exports {
            watched
                .entry(e.model_path())
                .or_default()
                .push((e.size as u64, e.md5));
            watched
                .entry(latest_blob(&e.project, "ONNX", "ONNX"))
                .or_default()
                .push((e.size as u64, e.md5));
            if !projects.contains(&e.project) {
                projects.push(e.project.clone());
            }
        }
        let (stop, mut stopped) = watch::channel(false);
        let seen = Arc::new(Mutex::new(Observed::default()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while !*stopped.borrow() {
                for (path, whole) in &watched {
                    let state = match look(&probe, MODELS, path).await {
                        Err(_) => continue,
                        Ok(None) => "absent",
                        Ok(Some(s)) if !s.readable() => "pending",
                        Ok(Some(s)) => {
                            let ok = whole.iter().any(|(size, md5)| {
                                s.length == Some(*size)
                                    && s.md5.as_deref().is_none_or(|m| m == md5.as_slice())
                            });
                            if !ok {
                                record.lock().unwrap().violations.push(format!(
                                    "{path}: visible but not a whole model: {} bytes, md5 {:?}",
                                    s.length.unwrap_or(0),
                                    s.md5
                                ));
                            }
                            "visible"
                        }
                    };
                    *record.lock().unwrap().states.entry(state).or_default() += 1;
                }
                for project in &projects {
                    let Ok(Some(index)) = probe.blob(MODELS, &index_blob(project)).await else {
                        continue;
                    };
                    let Ok(index) = serde_json::from_slice::<Value>(&index.bytes) else {
                        record
                            .lock()
                            .unwrap()
                            .violations
                            .push(format!("{project}: index is not JSON"));
                        continue;
                    };
                    record.lock().unwrap().index_reads += 1;
                    for entry in index["models"].as_array().into_iter().flatten() {
                        let path = entry["path"].as_str().unwrap_or_default();
                        match look(&probe, MODELS, path).await {
                            Ok(Some(s)) if s.readable() && s.length == entry["size"].as_u64() => {}
                            Err(_) => {}
                            other => record
                                .lock()
                                .unwrap()
                                .violations
                                .push(format!("the index names {path}, which is {other:?}")),
                        }
                    }
                }
                record.lock().unwrap().rounds += 1;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = stopped.changed() => {}
                }
            }
        });
        Self { stop, seen, task }
    }

    pub async fn finish(self) -> Observed {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let seen = self.seen.lock().unwrap().clone();
        seen
    }
}
