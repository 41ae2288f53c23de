//! The dashboard's writes on Azurite, without the dev host: concurrent refreshes, each after a
//! report of its own, leave a page that lists every report (the write is conditional on the
//! ETag the gathering saw, and a lost race gathers again); a refresh with nothing new writes
//! nothing; and the page is current until a report lands without a refresh.

use customvision_events::automation::dashboard::{self, Refreshed};
use customvision_events::automation::load_report;
use customvision_events::automation::report::{self, Figures, IterationSummary, Report};
use customvision_events::devhost::azurite::Azurite;
use customvision_events::devhost::probe::Probe;
use customvision_events::domain::{IterationId, ProjectId};

use crate::support::helpers::*;

fn report(project: &str, iteration: &str, n: usize) -> Report {
    Report {
        project_id: project.into(),
        iteration_id: iteration.into(),
        status: "TrainingCompleted".into(),
        generated_at: "2026-12-01T00:00:00Z".into(),
        iteration: Some(IterationSummary {
            name: format!("Iteration {n}"),
            status: "Completed".into(),
            trained_at: Some(format!("2026-11-01T10:{n:02}:00Z")),
            created: None,
            domain_id: None,
            classification_type: None,
            training_type: None,
            exportable: true,
            exportable_to: vec![],
            publish_name: None,
        }),
        performance: Some(Figures {
            threshold: 0.5,
            overlap_threshold: None,
            precision: 0.5 + n as f64 / 100.0,
            recall: 0.6,
            average_precision: Some(0.7),
            precision_std_deviation: 0.0,
            recall_std_deviation: 0.0,
            per_tag: vec![],
        }),
        previous: None,
        exports: vec![],
        publish: None,
        notes: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_leave_every_report_on_the_page() {
    let azurite = Azurite::start(&root()).expect("Azurite starts (run `npm ci` first)");
    let probe = Probe::from_connection_string(&azurite.connection_string()).unwrap();
    probe.create_container(MODELS).await.unwrap();
    let store = probe.account.container(MODELS).unwrap();
    let (p, _) = ids();
    let project = ProjectId::parse(&p).unwrap();
    const N: usize = 30;
    let tasks: Vec<_> = (0..N)
        .map(|n| {
            let store = store.clone();
            let p = p.clone();
            tokio::spawn(async move {
                let iteration = uuid::Uuid::new_v4().to_string();
                let body = serde_json::to_vec(&report(&p, &iteration, n)).unwrap();
                store
                    .blob_client(&report::json_path(&p, &iteration))
                    .upload(azure_core::http::RequestContent::from(body), None)
                    .await
                    .unwrap();
                dashboard::refresh(&store, project).await.unwrap();
                iteration
            })
        })
        .collect();
    let mut iterations = Vec::new();
    for t in tasks {
        iterations.push(t.await.unwrap());
    }
    let page = probe
        .blob(MODELS, &dashboard::path(&p))
        .await
        .unwrap()
        .expect("a dashboard");
    let page = String::from_utf8(page.bytes).unwrap();
    assert_eq!(page.matches("<g class=\"point\"").count(), N, "{page}");
    for i in &iterations {
        assert!(
            page.contains(&format!("data-iteration=\"{i}\"")),
            "{i} missing"
        );
    }
    // Nothing new: the same page, not written again.
    let before = probe
        .blob(MODELS, &dashboard::path(&p))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        dashboard::refresh(&store, project).await.unwrap(),
        Refreshed::Unchanged
    );
    let after = probe
        .blob(MODELS, &dashboard::path(&p))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.etag, after.etag);
    // The page is current until a report lands without a refresh; a report reads back.
    assert!(dashboard::is_current(&store, project).await.unwrap());
    let iteration = uuid::Uuid::new_v4().to_string();
    let late = report(&p, &iteration, N);
    store
        .blob_client(&report::json_path(&p, &iteration))
        .upload(
            azure_core::http::RequestContent::from(serde_json::to_vec(&late).unwrap()),
            None,
        )
        .await
        .unwrap();
    assert!(!dashboard::is_current(&store, project).await.unwrap());
    let iteration_id = IterationId::parse(&iteration).unwrap();
    assert_eq!(
        load_report(&store, project, iteration_id).await.unwrap(),
        Some(late)
    );
    let other = IterationId::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
    assert_eq!(load_report(&store, project, other).await.unwrap(), None);
}
