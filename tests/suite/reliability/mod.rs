//! Reliability: the promises (nothing lost, each export copied once, `latest` and the index
//! consistent, no secret anywhere) under storage and Training API faults, Azurite restarts,
//! the handler killed mid-work, two hosts on one queue with every message twice, and load.
//! Real Azurite, the real `handler` under the real `cvctl dev-host`; every wait is a poll
//! with a deadline. Each test prints one `FIGURES` line (run with `--nocapture` to see them;
//! docs/reliability.md has the last run's).
//!
//! `RELIABILITY_LONG=1` runs the long load (1,000 notifications instead of 200):
//! `make reliability-long`.

pub(crate) mod faults;
mod kills;
mod load;
mod observe;
mod restarts;
mod scale_out;
mod secrets;
mod storage_faults;
mod store;
mod training_faults;

use crate::support::helpers;

/// One line of figures, found by `grep FIGURES` in a `--nocapture` run.
pub fn figures(test: &str, line: &str) {
    eprintln!("FIGURES {test}: {line}");
}

/// The scan can fail: a key planted percent-encoded in a report-like blob is found.
#[tokio::test(flavor = "multi_thread")]
#[should_panic(expected = "the account key leaked into models/reports/planted.json")]
async fn the_secrets_scan_finds_a_planted_key() {
    let app = helpers::spawn_app(&[]).await;
    let encoded: String =
        url::form_urlencoded::byte_serialize(customvision_events::settings::AZURITE_KEY.as_bytes())
            .collect();
    app.probe
        .put_blob(
            helpers::MODELS,
            "reports/planted.json",
            format!("{{\"uri\":\"https://x/?AccountKey={encoded}\"}}").as_bytes(),
        )
        .await
        .unwrap();
    secrets::Secrets::standard().scan_app(&app).await;
}
