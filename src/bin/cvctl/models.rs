//! `cvctl models`: what the model store holds for a project, found by blob index tags (Find
//! Blobs by Tags on project, iteration, platform), newest first, with `latest` marked; and
//! what `index.json` says, when there is one.

use std::collections::HashMap;

use azure_core::http::StatusCode;
use azure_storage_blob::models::BlobClientGetPropertiesResultHeaders;
use futures::TryStreamExt;
use serde::Serialize;

use customvision_events::domain::{ExportPlatform, IterationId, ProjectId};
use customvision_events::model_store::index::ModelIndex;
use customvision_events::model_store::OrderKey;
use customvision_events::naming::stored::{
    index_path, ITERATION_ID_KEY, KIND_LATEST, KIND_MODEL, PLATFORM_KEY, TAG_KIND, TAG_PROJECT_ID,
};

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
    /// The store's own order ("newest"), not shown.
    #[serde(skip)]
    order: Option<OrderKey>,
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
    // `kind` between 'latest' and 'model': the copies and the aliases, not backups tagged in
    // place; and a tag in the filter is a tag the answer carries.
    let mut filter = format!(
        "\"{TAG_PROJECT_ID}\" = '{project}' AND \"{TAG_KIND}\" >= '{KIND_LATEST}' AND \"{TAG_KIND}\" <= '{KIND_MODEL}'"
    );
    if let Some(i) = &args.iteration {
        let i = IterationId::parse(i)
            .map_err(|e| CliError::usage(format!("--iteration: {e}"), "a hyphenated GUID"))?;
        filter.push_str(&format!(" AND \"iterationId\" = '{i}'"));
    }
    if let Some(p) = &args.platform {
        let label = ExportPlatform::parse(p)
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| p.to_ascii_lowercase());
        filter.push_str(&format!(" AND \"platform\" = '{label}'"));
    }
    let account = ctx.account()?;
    let store_name = &ctx.settings.model_store_container;
    let store = account
        .container(store_name)
        .map_err(|e| CliError::usage(e.to_string(), "check CV_STORAGE"))?;
    let mut pager = store
        .find_blobs_by_tags(&filter, None)
        .map_err(|e| storage_failure("find blobs by tags", &e))?;
    let mut models = Vec::new();
    let mut latest_of: HashMap<String, (String, String)> = HashMap::new();
    while let Some(found) = pager
        .try_next()
        .await
        .map_err(|e| storage_failure(&format!("find blobs by tags in {store_name}"), &e))?
    {
        let Some(name) = found.name else { continue };
        let kind = found
            .tags
            .and_then(|t| t.blob_tag_set)
            .unwrap_or_default()
            .into_iter()
            .find(|t| t.key.as_deref() == Some(TAG_KIND))
            .and_then(|t| t.value);
        let props = match store.blob_client(&name).get_properties(None).await {
            Ok(p) => p,
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => continue,
            Err(e) => return Err(storage_failure(&format!("reading {name}"), &e)),
        };
        let metadata = props.metadata().unwrap_or_default();
        let order = OrderKey::from_metadata(&metadata);
        let platform = metadata.get(PLATFORM_KEY).cloned().unwrap_or_default();
        let iteration = metadata.get(ITERATION_ID_KEY).cloned().unwrap_or_default();
        // The alias's own tags name it; its metadata names the iteration it points at.
        if kind.as_deref() == Some(KIND_LATEST) {
            latest_of.insert(platform, (iteration, name));
            continue;
        }
        models.push(Model {
            iteration_id: iteration,
            platform,
            path: name,
            size: props.content_length().ok().flatten(),
            time: order.as_ref().map(|o| o.at_text()),
            latest: false,
            order,
        });
    }
    // Newest first, in the order the alias and the index use.
    models.sort_by(|a, b| {
        b.order
            .cmp(&a.order)
            .then_with(|| a.platform.cmp(&b.platform))
    });
    for m in &mut models {
        m.latest = latest_of
            .get(&m.platform)
            .is_some_and(|(iteration, _)| *iteration == m.iteration_id);
    }
    let index = match store.blob_client(&index_path(project)).download(None).await {
        Ok(r) => {
            let etag = r.properties.etag.as_ref().map(|e| e.to_string());
            let bytes = r
                .body
                .collect()
                .await
                .map_err(|e| storage_failure("reading index.json", &e))?;
            serde_json::from_slice::<ModelIndex>(&bytes)
                .ok()
                .map(|i| IndexSummary {
                    path: format!("{store_name}/{}", index_path(project)),
                    etag,
                    updated_at: i.updated_at,
                    models: i.models.len(),
                })
        }
        Err(e) if e.http_status() == Some(StatusCode::NotFound) => None,
        Err(e) => return Err(storage_failure("reading index.json", &e)),
    };
    Ok(Listing {
        project_id: project.to_string(),
        models,
        latest: latest_of
            .into_iter()
            .map(|(p, (_, path))| (p, path))
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

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
