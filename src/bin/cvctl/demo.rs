//! `cvctl demo` (`make demo`): the whole flow on a private Azurite, start to finish, with the
//! tool's own commands: `simulate` writes the seed's notifications and a backup blob, the dev
//! host runs the functions, `models` shows what landed in the model store.

use std::path::Path;
use std::time::Duration;

use customvision_events::devhost::azurite::Azurite;
use customvision_events::devhost::probe::{wait_for, Probe};
use customvision_events::devhost::{self, DevHostOptions};
use customvision_events::domain::ProjectId;
use customvision_events::naming::stored::index_path;

use crate::context::{CliError, Context};
use crate::{models, simulate};

pub async fn run(root: &Path, handler: Option<std::path::PathBuf>) -> Result<(), CliError> {
    println!("== starting Azurite (in memory, on ports the OS picks)");
    let azurite = Azurite::start(root)
        .map_err(|e| CliError::unreachable(e.to_string(), "run `npm ci` (make demo does)"))?;
    let connection = azurite.connection_string();
    let ctx = Context::load(
        root,
        &[format!("CV_STORAGE={connection}")],
        crate::context::DEFAULT_TIMEOUT,
    )?;

    println!(
        "== starting the dev host and the handler (functions from {})",
        root.display()
    );
    let options = DevHostOptions {
        root: root.to_path_buf(),
        handler,
        max_polling_interval: Some(Duration::from_millis(500)),
        overrides: vec![("CV_STORAGE".into(), connection.clone())],
        ..Default::default()
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut host = tokio::spawn(devhost::run(options, stopped));
    let result = tokio::select! {
        r = drive(&ctx, &connection) => r,
        r = &mut host => Err(CliError::check(format!("the dev host stopped early: {:?}", r.map_err(|e| e.to_string())))),
    };
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), host).await;
    drop(azurite);
    println!("== stopped the dev host, the handler and Azurite");
    result
}

async fn drive(ctx: &Context, connection: &str) -> Result<(), CliError> {
    let project = uuid::Uuid::new_v4().to_string();
    let iteration = uuid::Uuid::new_v4().to_string();
    let ids = || simulate::Ids {
        project: Some(project.clone()),
        iteration: Some(iteration.clone()),
    };
    for (what, kind) in [
        (
            "ConnectionTest",
            simulate::Kind::ConnectionTest {
                project: Some(project.clone()),
            },
        ),
        (
            "Training",
            simulate::Kind::Training {
                ids: ids(),
                failed: false,
            },
        ),
        (
            "Export, with a 1 MiB backup blob",
            simulate::Kind::Export {
                ids: ids(),
                failed: false,
                platform: "ONNX".into(),
                backup_size: Some(1 << 20),
                sas: false,
            },
        ),
    ] {
        println!("== cvctl simulate: the seed's {what}");
        let written = simulate::run(ctx, &simulate::Args { kind }).await?;
        if let Some(blob) = written.blob {
            println!("   wrote backup blob {blob}");
        }
    }
    let probe = Probe::from_connection_string(connection).map_err(CliError::check)?;
    let index = index_path(ProjectId::parse(&project).map_err(|e| CliError::check(e.to_string()))?);
    wait_for(
        "the model store's index",
        Duration::from_secs(60),
        || async {
            Ok(probe
                .blob(&ctx.settings.model_store_container, &index)
                .await?
                .map(|_| ()))
        },
    )
    .await
    .map_err(CliError::check)?;
    let copy = format!("{project}/{iteration}/ONNX/{project} - {iteration}.ONNX");
    let state = probe
        .blob(&ctx.settings.model_store_container, &copy)
        .await
        .map_err(CliError::check)?
        .ok_or_else(|| CliError::check(format!("no copy at {copy}")))?;
    println!(
        "\n== the copy {}/{copy}",
        ctx.settings.model_store_container
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
    println!("\n== cvctl models --project {project}");
    let listing = models::list(
        ctx,
        &models::Args {
            project: project.clone(),
            iteration: None,
            platform: None,
            json: false,
        },
    )
    .await?;
    models::print(&listing, false);
    let rejected = probe
        .peek("customvision-rejected")
        .await
        .map_err(CliError::check)?;
    println!("\n   rejected messages: {}", rejected.len());
    Ok(())
}
