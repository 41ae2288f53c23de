//! `cargo bench --bench inprocess` (part of `make bench`): the handler's in-process work per
//! invocation, without I/O: decoding the host's envelope, parsing the notification, routing it
//! (the whole `Notifications` function), naming the model-store copy with its tags, and
//! redacting a log line (every line the process writes goes through it).

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

use customvision_events::domain::examples::{ITERATION as I, PROJECT as P};

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
    // Timers on: every invocation runs under its budget (`tokio::time::timeout`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let settings = Settings::from_lookup(&|k| {
        (k == "CV_STORAGE").then(|| "UseDevelopmentStorage=true".to_string())
    })
    .unwrap();
    let account = StorageAccount::new(&settings.storage, &http_client()).unwrap();
    let event_source = customvision_events::events::source(&settings, &account).unwrap();
    let app = App {
        settings,
        account,
        training: None,
        sinks: Vec::new(),
        budget: customvision_events::functions::INVOCATION_BUDGET,
        event_source,
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

/// Three lines: the common one (no secret), a copy error with a SAS URL, and a kept record
/// with the URL JSON-escaped inside JSON (`\u0026sig\u003d`).
fn redact(c: &mut Criterion) {
    use customvision_events::redact::redact;
    let plain = format!(
        "2026-01-01T10:00:00.123456Z  INFO Notifications: export {P} iteration {I} copied to \
         models/{P}/{I}/onnx/model.onnx (12345678 bytes, md5 3q2+7w==) in 1.2s, latest moved"
    );
    // The fake signature is put together here, so no signature-shaped literal is committed.
    let fake_sig = ["FAKE", "notREAL", "signatureZm9vYmFy%2Bx%3D"].concat();
    let sas = format!(
        "2026-01-01T10:00:00.123456Z  WARN ExportCompleted: copy from \
        https://acct.blob.core.windows.net/customvision-backups/x.ONNX?sv=2021-08-06\
        &se=2026-01-01T00%3A00%3A00Z&sr=b&sp=r&sig={fake_sig} \
        failed: 403 AuthorizationFailure (will retry)"
    );
    let escaped = r#"{"reason":"copy failed","message":"{\"version\":\"1.0\",\"type\":\"Export\",\"Content\":{\"modelUri\":\"https://acct.blob.core.windows.net/c/x.ONNX?sv=1\u0026sig\u003dFAKEnotREAL%2Bx%3D\"}}"}"#;
    for (name, line) in [
        ("plain", plain.as_str()),
        ("sas", sas.as_str()),
        ("escaped", escaped),
    ] {
        c.bench_function(&format!("redact: a log line, {name}"), |b| {
            b.iter(|| black_box(redact(black_box(line))))
        });
    }
}

criterion_group!(benches, envelope, parse, route, naming, redact);
criterion_main!(benches);
