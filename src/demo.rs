//! `handler demo` (`make demo`): the whole flow on a private Azurite, start to finish.

use std::path::PathBuf;
use std::time::Duration;

use crate::devhost::azurite::Azurite;
use crate::devhost::probe::{wait_for, Probe};
use crate::devhost::{self, DevHostOptions};
use crate::seed;
use crate::settings::{DEFAULT_BACKUP_CONTAINER, DEFAULT_MODEL_STORE_CONTAINER};

const NOTIFICATION_QUEUE: &str = "customvision-notifications";

pub async fn run(root: PathBuf) -> Result<(), String> {
    println!("== starting Azurite (in memory, free loopback ports)");
    let azurite = Azurite::start(&root).map_err(|e| e.to_string())?;
    let connection = azurite.connection_string();
    let probe = Probe::from_connection_string(&connection)?;
    for c in [DEFAULT_BACKUP_CONTAINER, DEFAULT_MODEL_STORE_CONTAINER] {
        probe.create_container(c).await?;
    }
    probe.create_queue(NOTIFICATION_QUEUE).await?;

    println!(
        "== starting the dev host and the handler (functions from {})",
        root.display()
    );
    let options = DevHostOptions {
        root: root.clone(),
        handler: std::env::current_exe().ok(),
        max_polling_interval: Some(Duration::from_millis(500)),
        overrides: vec![("CV_STORAGE".into(), connection.clone())],
        ..Default::default()
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut host = tokio::spawn(devhost::run(options, stopped));

    let result = tokio::select! {
        r = drive(&probe) => r,
        r = &mut host => Err(format!("the dev host stopped early: {:?}", r.map_err(|e| e.to_string()))),
    };
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), host).await;
    drop(azurite);
    println!("== stopped the dev host, the handler and Azurite");
    result
}

async fn drive(probe: &Probe) -> Result<(), String> {
    let backup = format!("{0} - {0}.ONNX", seed::SEED_ID);
    let content = b"stand-in for the exported ONNX model package".to_vec();
    probe
        .put_blob(DEFAULT_BACKUP_CONTAINER, &backup, &content)
        .await?;
    let mut model_uri = probe
        .account
        .blob_url(DEFAULT_BACKUP_CONTAINER, &backup)
        .map_err(|e| e.to_string())?;
    // What the service would send: the blob's URL, without our SAS.
    model_uri.set_query(None);
    println!("== wrote backup blob {DEFAULT_BACKUP_CONTAINER}/{backup}");

    for (name, text) in [
        ("ConnectionTest", seed::CONNECTION_TEST.to_string()),
        ("Training", seed::TRAINING.to_string()),
        ("Export", seed::export(model_uri.as_str())),
    ] {
        probe.send(NOTIFICATION_QUEUE, text.trim()).await?;
        println!("== queued the seed's {name} notification");
    }

    let copy = format!("{0}/{0}/ONNX/{backup}", seed::SEED_ID);
    let state = wait_for(
        "the copied, tagged model",
        Duration::from_secs(60),
        || async {
            Ok(probe
                .blob(DEFAULT_MODEL_STORE_CONTAINER, &copy)
                .await?
                .filter(|s| s.tags.contains_key("iterationId")))
        },
    )
    .await?;
    println!("\n== model store: {DEFAULT_MODEL_STORE_CONTAINER}/{copy}");
    println!(
        "   bytes:     {} (identical to the backup: {})",
        state.bytes.len(),
        state.bytes == content
    );
    let mut tags: Vec<_> = state.tags.iter().collect();
    tags.sort();
    for (k, v) in tags {
        println!("   tag       {k} = {v}");
    }
    let mut metadata: Vec<_> = state.metadata.iter().collect();
    metadata.sort();
    for (k, v) in metadata {
        println!("   metadata  {k} = {v}");
    }
    let rejected = probe.peek("customvision-rejected").await?;
    println!("   rejected messages: {}", rejected.len());
    Ok(())
}
