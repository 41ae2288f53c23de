//! `cargo bench --bench inprocess` (part of `make bench`): the handler's in-process work per
//! invocation, without I/O: decoding the host's envelope, parsing the notification, routing it
//! (the whole `Notifications` function), and naming the model-store copy with its tags.

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use customvision_events::domain::{IterationId, ProjectId};
use customvision_events::envelope::captured::{METADATA_KEYS, TWICE};
use customvision_events::envelope::{InvocationRequest, TRIGGER_BINDING};
use customvision_events::functions::{App, Function};
use customvision_events::http_client;
use customvision_events::naming::stored::KIND_MODEL;
use customvision_events::naming::{ExportedModel, PathTemplate};
use customvision_events::notification::Notification;
use customvision_events::seed;
use customvision_events::settings::Settings;
use customvision_events::storage::StorageAccount;

const P: &str = "9a8b7c6d-1234-4e5f-8a9b-0c1d2e3f4a5b";
const I: &str = "1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0";

fn envelope(c: &mut Criterion) {
    c.bench_function("envelope: decode a captured invocation body", |b| {
        b.iter(|| {
            let request = InvocationRequest::from_slice(black_box(TWICE.as_bytes())).unwrap();
            black_box(request.message_text(TRIGGER_BINDING).unwrap())
        })
    });
}

fn parse(c: &mut Criterion) {
    let text = seed::export("https://acct.blob.core.windows.net/customvision-backups/x.ONNX");
    c.bench_function("parse: the seed's Export message", |b| {
        b.iter(|| black_box(Notification::parse(black_box(&text)).unwrap()))
    });
}

fn route(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let settings = Settings::from_lookup(&|k| {
        (k == "CV_STORAGE").then(|| "UseDevelopmentStorage=true".to_string())
    })
    .unwrap();
    let account = StorageAccount::new(&settings.storage, &http_client()).unwrap();
    let app = App {
        settings,
        account,
        training: None,
        budget: customvision_events::functions::INVOCATION_BUDGET,
    };
    let request = InvocationRequest::from_slice(METADATA_KEYS.as_bytes()).unwrap();
    c.bench_function(
        "route: Notifications on a captured Export invocation",
        |b| {
            b.iter(|| {
                let answer = runtime
                    .block_on(app.invoke(Function::Notifications, black_box(&request)))
                    .unwrap();
                black_box(serde_json::to_vec(&answer).unwrap())
            })
        },
    );
}

fn naming(c: &mut Criterion) {
    let (p, i) = (ProjectId::parse(P).unwrap(), IterationId::parse(I).unwrap());
    let name = format!("{P} - {I}.ONNX");
    let template = PathTemplate::parse(PathTemplate::DEFAULT).unwrap();
    c.bench_function("naming: classify a backup, render its path and tags", |b| {
        b.iter(|| {
            let backup =
                ExportedModel::from_backup_name(black_box(&name), "customvision-backups", p, i)
                    .unwrap();
            black_box((template.render(&backup), backup.tags(KIND_MODEL)))
        })
    });
}

criterion_group!(benches, envelope, parse, route, naming);
criterion_main!(benches);
