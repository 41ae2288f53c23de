//! `cvctl preflight`, the binary, against the ARM behaviour fixture (`support/arm.rs`): the
//! answers that matter, each with the lines it prints and the exit code.
//!
//! The binary gets the fixture's loopback endpoint (`CV_ARM_ENDPOINT`) and the fixture's
//! token (`CV_ARM_TOKEN`, the test path that needs no `az`).

use std::time::Duration;

use crate::support::arm::{
    contributor, cv_sku, location_restriction, reader, ArmFixture, Canned, Scenario, FIXTURE_TOKEN,
    RESOURCE_GROUP, SUBSCRIPTION,
};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn preflight(fixture: &ArmFixture, args: &[&str]) -> Run {
    preflight_at(&fixture.endpoint(), FIXTURE_TOKEN, args).await
}

async fn preflight_at(endpoint: &str, token: &str, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cvctl"));
    command
        .arg("preflight")
        .args(["--subscription", SUBSCRIPTION])
        .args(args)
        .env("CV_ARM_ENDPOINT", endpoint)
        .env("CV_ARM_TOKEN", token)
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("cvctl preflight ends")
        .expect("cvctl runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn lines(run: &Run) -> Vec<&str> {
    run.stdout.lines().collect()
}

/// The line of check `name`, and its `fix:` line when it failed.
fn check<'a>(run: &'a Run, name: &str) -> (&'a str, Option<&'a str>) {
    let all = lines(run);
    let at = all
        .iter()
        .position(|l| l[6.min(l.len())..].starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no line for {name}:\n{}\n{}", run.stdout, run.stderr));
    let fix = all
        .get(at + 1)
        .and_then(|l| l.trim_start().strip_prefix("fix: "));
    (all[at], fix.filter(|_| all[at].starts_with("FAIL")))
}

const FULL: [&str; 4] = ["--location", "eastus", "--resource-group", RESOURCE_GROUP];

#[tokio::test]
async fn all_pass_prints_four_passes_and_exits_0() {
    let fixture = ArmFixture::start(Scenario::default()).await;
    let run = preflight(&fixture, &FULL).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        lines(&run),
        vec![
            "PASS  flex custom: Flex Consumption in eastus offers the 'custom' runtime 1.0",
            "PASS  providers: 7 resource providers registered",
            "PASS  role assignments: you may create role assignments in resource group rg-vision",
            "PASS  custom vision: CustomVision.Training S0 is available in eastus",
        ]
    );
    assert!(run.stderr.contains("CV_ARM_TOKEN"), "{}", run.stderr);
    let requests = fixture.requests();
    // geoRegions, stacks, 7 providers, permissions, skus.
    assert_eq!(requests.len(), 11, "{requests:#?}");
    assert!(requests
        .iter()
        .all(|r| r.method == "GET" && r.bearer.as_deref() == Some(FIXTURE_TOKEN)));
    assert!(!run.stdout.contains(FIXTURE_TOKEN) && !run.stderr.contains(FIXTURE_TOKEN));
}

#[tokio::test]
async fn a_region_without_custom_fails_flex_and_still_checks_the_rest() {
    let fixture = ArmFixture::start(Scenario::default()).await;
    let run = preflight(
        &fixture,
        &[
            "--location",
            "westus2",
            "--custom-vision-location",
            "eastus",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let (line, fix) = check(&run, "flex custom");
    assert_eq!(line, "FAIL  flex custom: Flex Consumption in westus2 offers no 'custom' runtime (no FC1 entry for it in the region's function app stacks)");
    assert!(fix
        .unwrap()
        .contains("az functionapp list-flexconsumption-runtimes -l <region> --runtime custom"));
    assert!(check(&run, "providers").0.starts_with("PASS"));
    assert!(check(&run, "role assignments").0.starts_with("SKIP"));
    assert!(check(&run, "custom vision").0.starts_with("PASS"));
}

#[tokio::test]
async fn a_region_without_flex_names_the_locations_command() {
    let fixture = ArmFixture::start(Scenario::default()).await;
    let run = preflight(&fixture, &["--location", "West Europe"]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let (line, fix) = check(&run, "flex custom");
    assert_eq!(
        line,
        "FAIL  flex custom: Flex Consumption is not offered in westeurope to this subscription"
    );
    assert!(fix
        .unwrap()
        .contains("az functionapp list-flexconsumption-locations"));
    // The SKU is there, in the region as given.
    assert_eq!(
        check(&run, "custom vision").0,
        "PASS  custom vision: CustomVision.Training S0 is available in westeurope"
    );
}

#[tokio::test]
async fn a_provider_not_registered_gets_its_register_command() {
    let mut scenario = Scenario::default();
    scenario
        .providers
        .insert("Microsoft.CognitiveServices".into(), "NotRegistered".into());
    scenario
        .providers
        .insert("Microsoft.KeyVault".into(), "NotRegistered".into());
    let fixture = ArmFixture::start(scenario).await;
    let run = preflight(&fixture, &FULL).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    let (line, fix) = check(&run, "providers");
    assert!(
        line.starts_with("FAIL  providers: Microsoft.CognitiveServices is NotRegistered (Microsoft.KeyVault not registered: needed only with trainingKeyInKeyVault"),
        "{line}"
    );
    assert_eq!(
        fix,
        Some("az provider register -n Microsoft.CognitiveServices --wait")
    );
}

#[tokio::test]
async fn contributor_or_reader_may_not_create_role_assignments() {
    for (who, permissions) in [
        ("contributor", vec![reader(), contributor()]),
        ("reader", vec![reader()]),
    ] {
        let scenario = Scenario {
            permissions,
            ..Default::default()
        };
        let fixture = ArmFixture::start(scenario).await;
        let run = preflight(&fixture, &FULL).await;
        assert_eq!(run.code, 1, "{who}: {}", run.stdout);
        let (line, fix) = check(&run, "role assignments");
        assert_eq!(line, "FAIL  role assignments: you may not create role assignments in resource group rg-vision (Microsoft.Authorization/roleAssignments/write is not among your permissions there)", "{who}");
        assert!(fix
            .unwrap()
            .contains("Role Based Access Control Administrator"));
    }
}

#[tokio::test]
async fn a_missing_resource_group_is_named_with_its_create_command() {
    let fixture = ArmFixture::start(Scenario::default()).await;
    let run = preflight(
        &fixture,
        &["--location", "eastus", "--resource-group", "rg-none"],
    )
    .await;
    assert_eq!(run.code, 1);
    let (line, fix) = check(&run, "role assignments");
    assert!(
        line.contains("resource group rg-none does not exist"),
        "{line}"
    );
    assert_eq!(fix, Some("az group create -n rg-none -l eastus"));
}

#[tokio::test]
async fn a_restricted_or_absent_sku_fails_custom_vision() {
    let scenario = Scenario {
        skus: vec![cv_sku(
            "CustomVision.Training",
            "S0",
            &["EASTUS"],
            location_restriction("EASTUS", "NotAvailableForSubscription"),
        )],
        ..Default::default()
    };
    let fixture = ArmFixture::start(scenario).await;
    let run = preflight(&fixture, &FULL).await;
    assert_eq!(run.code, 1);
    let (line, fix) = check(&run, "custom vision");
    assert_eq!(line, "FAIL  custom vision: CustomVision.Training S0 is restricted in eastus for this subscription (NotAvailableForSubscription)");
    assert!(fix.unwrap().contains("--custom-vision-location"));

    // Only the free tier there: the fix says so, and the free tier passes when it is the one.
    let scenario = Scenario {
        skus: vec![
            cv_sku(
                "CustomVision.Training",
                "S0",
                &["EASTUS"],
                location_restriction("EASTUS", "QuotaId"),
            ),
            cv_sku(
                "CustomVision.Training",
                "F0",
                &["EASTUS"],
                serde_json::json!([]),
            ),
        ],
        ..Default::default()
    };
    let fixture = ArmFixture::start(scenario).await;
    let run = preflight(&fixture, &FULL).await;
    assert_eq!(run.code, 1);
    assert!(check(&run, "custom vision")
        .1
        .unwrap()
        .contains("customVisionSku=F0"));
    let mut free = FULL.to_vec();
    free.extend(["--custom-vision-sku", "F0"]);
    let run = preflight(&fixture, &free).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        check(&run, "custom vision").0,
        "PASS  custom vision: CustomVision.Training F0 is available in eastus"
    );

    // North Europe has Flex and custom, but the fixture's SKUs are not offered there.
    let fixture = ArmFixture::start(Scenario::default()).await;
    let run = preflight(&fixture, &["--location", "northeurope"]).await;
    assert_eq!(run.code, 1);
    assert!(check(&run, "flex custom").0.starts_with("PASS"));
    assert_eq!(
        check(&run, "custom vision").0,
        "FAIL  custom vision: CustomVision.Training S0 is not offered in northeurope"
    );
}

#[tokio::test]
async fn an_expired_token_stops_at_sign_in_with_az_login() {
    let scenario = Scenario {
        expired: true,
        ..Default::default()
    };
    let fixture = ArmFixture::start(scenario).await;
    let run = preflight(&fixture, &FULL).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let (line, fix) = check(&run, "sign-in");
    assert!(
        line.starts_with(
            "FAIL  sign-in: ListGeoRegions: ARM answered 401 ExpiredAuthenticationToken"
        ),
        "{line}"
    );
    assert_eq!(
        fix,
        Some(format!("az login, then az account set --subscription {SUBSCRIPTION}").as_str())
    );
    assert_eq!(lines(&run).len(), 2, "{}", run.stdout);
    assert_eq!(fixture.requests().len(), 1);

    // A token the fixture does not know is the same failure.
    let fixture = ArmFixture::start(Scenario::default()).await;
    let run = preflight_at(&fixture.endpoint(), "someone-elses-token", &FULL).await;
    assert_eq!(run.code, 1);
    assert!(check(&run, "sign-in")
        .0
        .contains("401 InvalidAuthenticationToken"));
}

#[tokio::test]
async fn throttling_waits_as_retry_after_says_then_passes() {
    let fixture = ArmFixture::start(Scenario::default()).await;
    fixture.queue(Canned::throttled(1));
    let run = preflight(&fixture, &FULL).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let requests = fixture.requests();
    assert_eq!(requests.len(), 12);
    assert_eq!(requests[0].path_and_query(), requests[1].path_and_query());
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
}

#[tokio::test]
async fn throttling_past_the_deadline_exits_3_at_once_with_the_wait() {
    let fixture = ArmFixture::start(Scenario::default()).await;
    fixture.queue(Canned::throttled(600));
    let run = preflight(&fixture, &FULL).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("throttling this subscription (429)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("wait 600 s"), "{}", run.stderr);
    // One request: it did not retry. Nor did it sit out the 600 s it cannot afford: `preflight`
    // fails any run over its 90 s hang guard.
    assert_eq!(fixture.requests().len(), 1);
}

#[tokio::test]
async fn nothing_listening_exits_3() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let run = preflight_at(&closed, FIXTURE_TOKEN, &FULL).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("could not be reached"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn pages_are_followed() {
    let scenario = Scenario {
        flex_regions: vec!["West US 2".into(), "North Europe".into(), "East US".into()],
        paged: true,
        ..Default::default()
    };
    let fixture = ArmFixture::start(scenario).await;
    let run = preflight(&fixture, &FULL).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let geo = fixture
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/geoRegions"))
        .count();
    assert_eq!(geo, 3);
}

#[tokio::test]
async fn bad_flags_and_a_clear_text_endpoint_are_usage_errors() {
    let fixture = ArmFixture::start(Scenario::default()).await;
    for args in [
        vec!["--location", "east us!"],
        vec!["--location", "eastus", "--resource-group", "bad/name"],
    ] {
        let run = preflight(&fixture, &args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    }
    let run = preflight_at("http://management.azure.com", FIXTURE_TOKEN, &FULL).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("loopback"), "{}", run.stderr);
    assert!(fixture.requests().is_empty());
}
