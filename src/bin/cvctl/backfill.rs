//! `cvctl backfill`: a project's iterations trained before the app, brought into the store.
//! The library does the work ([`customvision_events::backfill`]); this is the flags, the plan
//! as text, the wait as a bar on a terminal, and the summary.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use time::format_description::well_known::Rfc3339;

use customvision_events::backfill::{Backfill, BackfillError, Plan, Progress, Step, Wait};
use customvision_events::domain::ProjectId;
use customvision_events::model_store::ModelStoreError;
use customvision_events::settings::ExportTarget;

use crate::context::{storage_failure, training_failure, CliError, Context, Failure};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Custom Vision project (a hyphenated GUID).
    #[arg(long, value_name = "ID")]
    pub project: String,
    /// The exports each trained iteration should have in the store: `ONNX,TensorFlow`, each
    /// optionally `:flavor` (default: AUTO_EXPORT_PLATFORMS).
    #[arg(long, value_name = "LIST")]
    pub platforms: Option<String>,
    /// Print the plan; request, copy and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The most to wait for the exports, in seconds; those still running are named, and a
    /// second run picks them up.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800.0, value_parser = seconds)]
    pub wait: f64,
    /// How often to ask GetExports while waiting, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = seconds)]
    pub poll: f64,
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.0..=86_400.0).contains(&s) => Ok(s),
        _ => Err(format!("'{text}' is not a number of seconds in [0, 86400]")),
    }
}

pub async fn run(ctx: &Context, args: &Args) -> Result<ExitCode, CliError> {
    let project_id = ProjectId::parse(&args.project).map_err(|e| {
        CliError::usage(
            format!("--project: {e}"),
            "the project's id, a hyphenated GUID",
        )
    })?;
    let targets = match &args.platforms {
        Some(list) => ExportTarget::parse_list("--platforms", list)
            .map_err(|e| CliError::usage(e.to_string(), "e.g. --platforms ONNX,TensorFlow"))?,
        None => ctx.settings.automation.auto_export.clone(),
    };
    if targets.is_empty() {
        return Err(CliError::usage(
            "no platforms to backfill",
            "name them with --platforms ONNX,TensorFlow (or set AUTO_EXPORT_PLATFORMS)",
        ));
    }
    let client = ctx.training()?;
    let account = ctx.account()?;
    let backfill = Backfill {
        client: &client,
        settings: &ctx.settings,
        account: &account,
        project_id,
        targets: &targets,
    };
    let mut plan = backfill.plan().await.map_err(|e| failure(ctx, e))?;
    let list: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    if args.dry_run {
        println!(
            "plan for project {project_id} ({}; {}):",
            count(plan.iterations.len(), "trained iteration"),
            list.join(", ")
        );
        print_plan(&plan, true);
        if plan.is_empty() {
            println!("nothing to do");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if plan.is_empty() {
        print_plan(&plan, false);
        println!("nothing to do: every trained iteration's exports are in the store, and each has its report");
        return Ok(ExitCode::SUCCESS);
    }
    let bar = Bar::new(std::io::stderr().is_terminal());
    let wait = Wait {
        poll: Duration::from_secs_f64(args.poll),
        deadline: Duration::from_secs_f64(args.wait),
    };
    let done = backfill
        .run(&mut plan, wait, &bar)
        .await
        .map_err(|e| failure(ctx, e))?;
    bar.0.finish_and_clear();
    print_plan(&plan, false);
    println!(
        "backfill: {} requested, {} copied, {} written{}{}",
        count(done.requested, "export"),
        count(done.copied, "export"),
        count(done.reports, "report"),
        if done.failed > 0 {
            format!(", {} failed", count(done.failed, "export"))
        } else {
            String::new()
        },
        if done.still_exporting > 0 {
            format!(
                ", {} still exporting (run backfill again later)",
                count(done.still_exporting, "export")
            )
        } else {
            String::new()
        },
    );
    if ctx.settings.events.enabled() {
        println!(
            "events: {} queued on {} (PublishEvents sends them)",
            done.events, ctx.settings.events.queue
        );
    }
    Ok(if done.failed + done.still_exporting > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// One block per iteration, oldest first: its exports and its report, as planned
/// (`future`) or as they ended.
fn print_plan(plan: &Plan, future: bool) {
    for it in &plan.iterations {
        let trained = it
            .trained_at
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| "—".into());
        println!("  {} {} (trained {trained})", it.iteration_id, it.name);
        for e in &it.exports {
            let step = match (&e.step, future) {
                (Step::InStore, _) => "in the store".to_string(),
                (Step::Copy, true) => "export done: copy into the store".into(),
                (Step::Wait, true) => "exporting: wait, then copy".into(),
                (Step::Request, true) => "no export: request it, wait, copy".into(),
                (Step::Copy | Step::Wait | Step::Request, false) => "not reached".into(),
                (Step::NotExportable, _) => "not exportable to this platform".into(),
                (Step::Failed(reason), _) => format!("failed: {reason}"),
                (Step::Copied, _) => "copied into the store".into(),
                (Step::StillExporting, _) => "still exporting".into(),
            };
            println!("    {:<28} {step}", e.target);
        }
        let report = match (it.has_report, future) {
            _ if it.report_written => "written",
            (true, _) => "there",
            (false, true) => "missing: write it",
            (false, false) => "missing",
        };
        println!("    {:<28} {report}", "report");
    }
    for s in &plan.skipped {
        println!(
            "  {} {} skipped: {}",
            s.iteration_id,
            s.name,
            if s.status.is_empty() {
                "not trained"
            } else {
                &s.status
            }
        );
    }
}

fn failure(ctx: &Context, e: BackfillError) -> CliError {
    let store = &ctx.settings.model_store_container;
    match e {
        BackfillError::Training { operation, source } => training_failure(operation, &source),
        BackfillError::Store(ModelStoreError::Request(e)) | BackfillError::Storage(e) => {
            storage_failure(&format!("{} in {store}", e.action), &e.source)
        }
        BackfillError::NoOutbox(queue) => CliError::usage(
            format!("the outbox queue '{queue}' (CV_EVENTS_QUEUE) does not exist"),
            "deploy the app's queues (or create it), or unset the sinks to backfill without events",
        ),
        other => CliError {
            failure: Failure::Check,
            message: other.to_string(),
            hint: Some("a second run carries on where this one stopped".into()),
        },
    }
}

/// The wait as a bar on a terminal, nothing in a pipe; the lines of what happened printed
/// either way.
struct Bar(ProgressBar);

impl Bar {
    fn new(visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target).with_message("exports");
        bar.set_style(
            ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self(bar)
    }
}

impl Progress for Bar {
    fn waiting(&self, finished: usize, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(finished as u64);
    }

    fn line(&self, line: &str) {
        let line = customvision_events::redact::redact(line);
        // On stdout either way; the bar, on stderr, steps aside while it is written.
        self.0.suspend(|| println!("{line}"));
    }
}
