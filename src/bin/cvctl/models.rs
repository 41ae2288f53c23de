//! `cvctl models`: what the model store holds for a project, found by the library's one store
//! query ([`find_models`]: blob index tags on project, iteration, platform), newest first,
//! with `latest` marked ([`newest_first`]); and what `index.json` says, when there is one ([`load_index`]).

use std::collections::HashMap;

use serde::Serialize;

use customvision_events::domain::{IterationId, ProjectId};
use customvision_events::model_store::{
    find_models, load_index, newest_first, ModelFilter, ModelStoreError,
};
use customvision_events::naming::stored::index_path;

use crate::context::{storage_failure, CliError, Context};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Custom Vision project (a hyphenated GUID).
    #[arg(long, value_name = "ID")]
    pub project: String,
    /// Only this iteration.
    #[arg(long, value_name = "ID")]
    pub iteration: Option<String>,
    /// Only this platform (`ONNX`, `TensorFlow`, … or a label such as `zip`).
    #[arg(long)]
    pub platform: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    pub iteration_id: String,
    pub platform: String,
    pub path: String,
    pub size: Option<u64>,
    pub time: Option<String>,
    pub latest: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    pub project_id: String,
    pub models: Vec<Model>,
    /// Platform → the path of its `latest` alias.
    pub latest: HashMap<String, String>,
    pub index: Option<IndexSummary>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexSummary {
    pub path: String,
    pub etag: Option<String>,
    pub updated_at: String,
    pub models: usize,
}

pub async fn list(ctx: &Context, args: &Args) -> Result<Listing, CliError> {
    let project = ProjectId::parse(&args.project).map_err(|e| {
        CliError::usage(
            format!("--project: {e}"),
            "the project's id, a hyphenated GUID",
        )
    })?;
    let iteration_id = match &args.iteration {
        Some(i) => Some(
            IterationId::parse(i)
                .map_err(|e| CliError::usage(format!("--iteration: {e}"), "a hyphenated GUID"))?,
        ),
        None => None,
    };
    let filter = ModelFilter {
        project_id: project,
        iteration_id,
        platform: args.platform.clone(),
        aliases: true,
    };
    let account = ctx.account()?;
    let store_name = &ctx.settings.model_store_container;
    let store = account
        .container(store_name)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    let found = find_models(&store, &filter)
        .await
        .map_err(|e| store_failure(store_name, e))?;
    let listing = newest_first(found);
    let models = listing
        .copies
        .into_iter()
        .map(|c| {
            let order = c.model.order();
            Model {
                iteration_id: c.model.iteration(),
                platform: c.model.platform(),
                size: c.model.size,
                time: order.as_ref().map(|o| o.at_text()),
                latest: c.latest,
                path: c.model.path,
            }
        })
        .collect();
    let index = load_index(&store, project)
        .await
        .map_err(|e| store_failure(store_name, e))?
        .map(|(i, etag)| IndexSummary {
            path: format!("{store_name}/{}", index_path(project)),
            etag,
            updated_at: i.updated_at,
            models: i.models.len(),
        });
    Ok(Listing {
        project_id: project.to_string(),
        models,
        latest: listing
            .latest
            .into_iter()
            .map(|(platform, alias)| (platform, alias.path))
            .collect(),
        index,
    })
}

pub fn print(listing: &Listing, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(listing).unwrap_or_default()
        );
        return;
    }
    if listing.models.is_empty() {
        println!(
            "no models of project {} in the model store",
            listing.project_id
        );
    } else {
        println!(
            "{:<38} {:<16} {:<21} {:>10}  PATH",
            "ITERATION", "PLATFORM", "TIME", "SIZE"
        );
        for m in &listing.models {
            println!(
                "{:<38} {:<16} {:<21} {:>10}  {}{}",
                m.iteration_id,
                m.platform,
                m.time.as_deref().unwrap_or("—"),
                m.size.map(human).unwrap_or_else(|| "—".into()),
                m.path,
                if m.latest { "  ← latest" } else { "" }
            );
        }
    }
    let mut latest: Vec<_> = listing.latest.iter().collect();
    latest.sort();
    for (platform, path) in latest {
        println!("latest {platform}: {path}");
    }
    match &listing.index {
        Some(i) => println!(
            "index: {} ({} models, updated {}, ETag {})",
            i.path,
            i.models,
            i.updated_at,
            i.etag.as_deref().unwrap_or("—")
        ),
        None => println!("index: none"),
    }
}

/// A failed store query: a request sorted as [`storage_failure`] sorts it.
fn store_failure(store_name: &str, e: ModelStoreError) -> CliError {
    match e {
        ModelStoreError::Request(e) => {
            storage_failure(&format!("{} in {store_name}", e.action), &e.source)
        }
        other => CliError::check(other.to_string()),
    }
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
