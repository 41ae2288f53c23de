//! Scale-out: two handlers under two dev hosts on the same queues, every message delivered
//! twice. One copy per export, every index entry once, `latest` at the newest iteration;
//! with the Training API, one accepted export per platform and one publish per iteration.

use std::time::{Duration, Instant};

use crate::reliability::faults::{FaultPlan, FaultProxy};
use crate::reliability::secrets::{sig_of, Secrets};
use crate::reliability::store::*;
use crate::reliability::training_faults::{accepted, automation, one_of_each, training_message};
use crate::support::custom_vision::CustomVisionFixture;
use crate::support::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_and_every_export_twice_give_one_copy_and_one_index_entry_each() {
    let mut app = spawn_with(AppOptions::default()).await;
    app.add_host();
    app.wait_handlers(2, &[]).await;
    let mut exports = put_backups(&app, 4, 6, |n| 4096 + n * 1000).await;
    exports.extend(put_sas_sources(&app, 4, 500, None).await);
    let mut secrets = Secrets::standard();
    for e in &exports {
        if let Some(sig) = e.sas.as_deref().and_then(sig_of) {
            secrets.add("a SAS signature", &sig);
        }
    }
    let started = Instant::now();
    for e in &exports {
        app.send(&e.message()).await;
        app.send(&e.message()).await;
    }
    app.drained_within(Duration::from_secs(180)).await;
    let elapsed = started.elapsed();
    let checked = check_exports(&app, &exports).await;
    assert_nothing_rejected(&app).await;
    let out = app.output();
    let retried = out.matches("will retry").count();
    let reasons = retry_reasons(&out);
    // Issue 15, item 7: two deliveries tagging one backup in place at once, the loser's
    // write answered 412 and the invocation 500 (retried, so nothing is lost; it burns a
    // delivery). Counted here until the handler decides again within the invocation.
    let lost_races = out.matches("ConditionNotMet").count();
    let scanned = secrets.scan_app(&app).await;
    crate::reliability::figures(
        "scale_out_exports",
        &format!(
            "2 hosts, {} exports each delivered twice ({} messages): {} copies, {} index \
             entries once each, {} projects' latest the newest, 0 poisoned; {retried} \
             invocations failed and retried ({reasons:?}), {lost_races} log lines name a 412 \
             ConditionNotMet; {:.1} s; secrets scan: {} items, \
             0 found",
            exports.len(),
            exports.len() * 2,
            checked.copies,
            checked.index_entries,
            checked.projects,
            elapsed.as_secs_f64(),
            scanned.items
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_and_every_training_twice_give_one_publish_each() {
    let fixture = CustomVisionFixture::start().await.unwrap();
    // A recording proxy (no faults): what the service accepted, read off the wire.
    let proxy = FaultProxy::start(fixture.addr().port(), FaultPlan::none()).await;
    let mut app = spawn_with(automation(&format!("http://127.0.0.1:{}/", proxy.port))).await;
    app.add_host();
    app.wait_handlers(2, &[]).await;
    let trainings: Vec<(String, String)> = (0..10).map(|_| ids()).collect();
    let started = Instant::now();
    for (p, i) in &trainings {
        app.send(&training_message(p, i)).await;
        app.send(&training_message(p, i)).await;
    }
    app.drained_within(Duration::from_secs(180)).await;
    let elapsed = started.elapsed();
    let exchanges = proxy.exchanges();
    let (mut export_requests, mut publish_requests) = (0, 0);
    for (p, i) in &trainings {
        assert!(
            app.has_blob(MODELS, &report_json_path(p, i)).await,
            "no report for {i}"
        );
        let a = accepted(&exchanges, i);
        assert_eq!(a.exports, one_of_each(), "{i}\n{}", tail(&app));
        assert_eq!(a.publishes, 1, "{i}: one publish\n{}", tail(&app));
        export_requests += a.export_requests;
        publish_requests += a.publish_requests;
    }
    assert_nothing_rejected(&app).await;
    let scanned = Secrets::standard().scan_app(&app).await;
    crate::reliability::figures(
        "scale_out_trainings",
        &format!(
            "2 hosts, {} trainings each delivered twice: {} reports, 2 exports and 1 publish \
             accepted per iteration ({export_requests} export and {publish_requests} publish \
             requests sent in all), 0 poisoned; {:.1} s; secrets scan: {} items, 0 found",
            trainings.len(),
            trainings.len(),
            elapsed.as_secs_f64(),
            scanned.items
        ),
    );
}
