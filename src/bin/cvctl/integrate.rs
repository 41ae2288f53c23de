//! `cvctl integrate`: the seed's "Integrate Custom Vision project" step. For an existing
//! project: GetProject, set `settings.exportModelContainerUri` and
//! `settings.notificationQueueUri`, UpdateProject with everything else as it came. For a new
//! one: CreateProject with the two query parameters. The URLs come from flags, from the
//! deployed infra's outputs, or from the app settings themselves.

use std::path::{Path, PathBuf};

use url::Url;

use customvision_events::domain::ProjectId;
use customvision_events::training::NewProject;

use crate::context::{training_failure, CliError, Context};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An existing project to wire (its other settings are kept as they are).
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "create",
        required_unless_present = "create"
    )]
    pub project: Option<String>,
    /// Create a project with this name instead.
    #[arg(long, value_name = "NAME")]
    pub create: Option<String>,
    /// The notification queue's URL (`notificationQueueUri`).
    #[arg(long, value_name = "URL")]
    pub queue_uri: Option<Url>,
    /// The backup container's URL (`exportModelContainerUri`).
    #[arg(long, value_name = "URL")]
    pub container_uri: Option<Url>,
    /// The deployment's outputs: `az deployment group show … --query properties.outputs` (JSON)
    /// or `azd env get-values` (KEY="value" lines); `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    pub outputs: Option<PathBuf>,
    /// Print the request instead of sending it.
    #[arg(long)]
    pub dry_run: bool,
}

/// Values by name from a deployment's outputs, in either form.
pub fn read_outputs(path: &Path) -> Result<Vec<(String, String)>, CliError> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| {
        CliError::usage(
            format!("cannot read {}: {e}", path.display()),
            "pass the outputs JSON or `azd env get-values > file`",
        )
    })?;
    Ok(parse_outputs(&text))
}

pub fn parse_outputs(text: &str) -> Vec<(String, String)> {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
        // `{"NAME": {"type": "String", "value": "…"}}`, or plain `{"NAME": "…"}`.
        return map
            .into_iter()
            .filter_map(|(k, v)| {
                let value = v.get("value").unwrap_or(&v);
                value.as_str().map(|s| (k, s.to_string()))
            })
            .collect();
    }
    text.lines()
        .filter_map(|line| {
            let (k, v) = line.trim().split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// The two URLs: flags first, then the outputs, then what the app settings say (the account's
/// endpoints with `CV_NOTIFICATION_QUEUE` and `CV_BACKUP_CONTAINER`).
fn urls(ctx: &Context, args: &Args, outputs: &[(String, String)]) -> Result<(Url, Url), CliError> {
    let output = |name: &str| -> Result<Option<Url>, CliError> {
        outputs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| {
                Url::parse(v).map_err(|e| {
                    CliError::usage(
                        format!("output {name} '{v}' is not a URL: {e}"),
                        "check the outputs file",
                    )
                })
            })
            .transpose()
    };
    let settings = &ctx.settings;
    let from_settings = |endpoint: Option<&Url>, name: &str| {
        endpoint.map(|e| {
            let mut url = e.clone();
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.pop_if_empty().push(name);
            }
            url
        })
    };
    let queue = match (&args.queue_uri, output("NOTIFICATION_QUEUE_URI")?) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(u)) => Some(u),
        (None, None) => from_settings(
            settings.storage.queue_endpoint.as_ref(),
            &ctx.value("CV_NOTIFICATION_QUEUE")
                .unwrap_or_else(|| "customvision-notifications".into()),
        ),
    };
    let container = match (&args.container_uri, output("EXPORT_MODEL_CONTAINER_URI")?) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(u)) => Some(u),
        (None, None) => from_settings(
            settings.storage.blob_endpoint.as_ref(),
            &settings.backup_container,
        ),
    };
    match (queue, container) {
        (Some(q), Some(c)) => Ok((q, c)),
        _ => Err(CliError::usage(
            "no notification queue or backup container URL",
            "pass --queue-uri and --container-uri, or --outputs with the deployment's outputs",
        )),
    }
}

pub async fn run(ctx: &mut Context, args: &Args) -> Result<(), CliError> {
    let outputs = match &args.outputs {
        Some(path) => read_outputs(path)?,
        None => Vec::new(),
    };
    // The deployment's endpoint, unless the settings name one.
    if ctx.settings.training.is_none() {
        if let Some((_, endpoint)) = outputs.iter().find(|(k, _)| k == "CUSTOM_VISION_ENDPOINT") {
            ctx.values.set("CUSTOM_VISION_ENDPOINT", endpoint);
            ctx.settings.training =
                customvision_events::training::TrainingSettings::from_lookup(&|k| {
                    ctx.values.get(k)
                })
                .map_err(|e| CliError::usage(e.to_string(), "check the outputs file"))?;
        }
    }
    let (queue, container) = urls(ctx, args, &outputs)?;
    let client = ctx.training()?;
    if let Some(name) = &args.create {
        let new = NewProject {
            export_model_container_uri: Some(container.clone()),
            notification_queue_uri: Some(queue.clone()),
            ..NewProject::named(name)
        };
        if args.dry_run {
            let mut url = client.base_url().clone();
            url.path_segments_mut()
                .map_err(|_| CliError::usage("bad endpoint", "check CUSTOM_VISION_ENDPOINT"))?
                .push("projects");
            url.query_pairs_mut()
                .append_pair("name", name)
                .append_pair("exportModelContainerUri", container.as_str())
                .append_pair("notificationQueueUri", queue.as_str());
            println!("dry run: would send\nPOST {url}");
            return Ok(());
        }
        let project = client
            .create_project(&new)
            .await
            .map_err(|e| training_failure("CreateProject", &e))?;
        println!("created project {} ({})", project.id, project.name);
        println!(
            "  exportModelContainerUri: {}",
            shown(&project.settings.export_model_container_uri)
        );
        println!(
            "  notificationQueueUri:    {}",
            shown(&project.settings.notification_queue_uri)
        );
        println!("{}", next_step(&project.id.to_string()));
        return Ok(());
    }
    let id = args.project.as_deref().unwrap_or_default();
    let project_id = ProjectId::parse(id).map_err(|e| {
        CliError::usage(
            format!("--project: {e}"),
            "the project's id, a hyphenated GUID",
        )
    })?;
    let mut project = client
        .get_project(project_id)
        .await
        .map_err(|e| training_failure("GetProject", &e))?;
    let before = (
        project.settings.export_model_container_uri.clone(),
        project.settings.notification_queue_uri.clone(),
    );
    project.settings.export_model_container_uri = Some(container.to_string());
    project.settings.notification_queue_uri = Some(queue.to_string());
    println!("project {} ({})", project.id, project.name);
    let changed = print_change("exportModelContainerUri", &before.0, container.as_str())
        | print_change("notificationQueueUri   ", &before.1, queue.as_str());
    if !changed {
        println!("nothing to change: the project is wired already");
        return Ok(());
    }
    if args.dry_run {
        let mut url = client.base_url().clone();
        url.path_segments_mut()
            .map_err(|_| CliError::usage("bad endpoint", "check CUSTOM_VISION_ENDPOINT"))?
            .extend(["projects", id]);
        let body = serde_json::to_string_pretty(&project).unwrap_or_default();
        println!("dry run: would send\nPATCH {url}\n{body}");
        return Ok(());
    }
    client
        .update_project(project_id, &project)
        .await
        .map_err(|e| training_failure("UpdateProject", &e))?;
    println!("updated. {}", next_step(id));
    Ok(())
}

fn shown(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(none)")
}

fn print_change(name: &str, before: &Option<String>, after: &str) -> bool {
    if before.as_deref() == Some(after) {
        println!("  {name}: {after} (unchanged)");
        false
    } else {
        println!("  {name}: {} → {after}", shown(before));
        true
    }
}

fn next_step(id: &str) -> String {
    format!(
        "Custom Vision now writes a test blob and a ConnectionTest notification; check them with `cvctl verify --project {id}`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_in_both_forms() {
        let json = r#"{"NOTIFICATION_QUEUE_URI":{"type":"String","value":"https://a.queue.core.windows.net/q"},"N":{"type":"Int","value":3}}"#;
        assert_eq!(
            parse_outputs(json),
            vec![(
                "NOTIFICATION_QUEUE_URI".to_string(),
                "https://a.queue.core.windows.net/q".to_string()
            )]
        );
        let azd = "AZURE_LOCATION=\"westeurope\"\nEXPORT_MODEL_CONTAINER_URI=\"https://a.blob.core.windows.net/c\"\n";
        assert_eq!(parse_outputs(azd)[1].1, "https://a.blob.core.windows.net/c");
    }
}
