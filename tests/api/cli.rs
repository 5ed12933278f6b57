//! The analyst CLI, run as a person would, against a running server.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use leadgate::grpc::pb;

use crate::helpers::*;

const BINARY: &str = env!("CARGO_BIN_EXE_leadgate");

async fn run(app: &TestApp, args: &[&str]) -> Output {
    let server = format!("http://{}", app.addr);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(BINARY)
            .args(&args)
            .env("LEADGATE_SERVER", server)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

async fn app_with_history() -> (TestApp, String) {
    let app = spawn_app(&Backend::Sqlite).await;
    let lead = app
        .leads
        .clone()
        .submit_lead(cfo_demo_request("cli@acme.fr"))
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    let mut other = cfo_demo_request("other@acme.fr");
    other.events.clear();
    other.source.as_mut().unwrap().channel = pb::SourceChannel::TradeShow as i32;
    app.leads.clone().submit_lead(other).await.unwrap();
    app.db.wait_until_chained().await;
    (app, lead.name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_are_listed_shown_and_explained() {
    let (app, name) = app_with_history().await;
    let list = stdout(&run(&app, &["leads", "list"]).await);
    assert!(list.lines().next().unwrap().starts_with("NAME"));
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(list.contains(&name) && list.contains("MARKETING_QUALIFIED"));
    let filtered = stdout(
        &run(
            &app,
            &["leads", "list", "--filter", "source.channel = TRADE_SHOW"],
        )
        .await,
    );
    assert_eq!(filtered.lines().count(), 2);
    let show = stdout(&run(&app, &["leads", "show", name.strip_prefix("leads/").unwrap()]).await);
    assert!(
        show.contains("cli@acme.fr") && show.contains("fit 40.00 (A)"),
        "{show}"
    );
    let explain = stdout(&run(&app, &["leads", "explain", &name]).await);
    assert!(
        explain.contains("fit.seniority.executive") && explain.contains("The engine decides"),
        "{explain}"
    );
    let missing = run(
        &app,
        &["leads", "show", "leads/0193f7a4-0000-7000-8000-000000000000"],
    )
    .await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NotFound"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_is_corrected_with_leads_update() {
    let (app, name) = app_with_history().await;
    let read = |app: &TestApp| {
        let mut leads = app.leads.clone();
        let name = name.clone();
        async move {
            leads
                .get_lead(pb::GetLeadRequest { name })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let before = read(&app).await;
    let out = stdout(
        &run(
            &app,
            &[
                "leads",
                "update",
                name.strip_prefix("leads/").unwrap(),
                "--set",
                "contact.given_name=Claire-Marie",
                "--set",
                "company.employee_count=12",
                "--etag",
                &before.etag,
                "--request-id",
                "cli-fix-1",
            ],
        )
        .await,
    );
    assert!(
        out.contains("Claire-Marie Martin") && out.contains("12 employees"),
        "{out}"
    );
    let after = read(&app).await;
    assert_eq!(after.contact.unwrap().given_name, "Claire-Marie");
    assert_ne!(after.etag, before.etag);
    // The etag it was given is stale now.
    let stale = run(
        &app,
        &[
            "leads",
            "update",
            &name,
            "--set",
            "contact.phone=+33 6 00 00 00 00",
            "--etag",
            &before.etag,
        ],
    )
    .await;
    assert!(!stale.status.success());
    assert!(String::from_utf8_lossy(&stale.stderr).contains("Aborted"));
    // A field it does not change is refused before any call.
    let refused = run(&app, &["leads", "update", &name, "--set", "state=LEAD"]).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a field"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_is_exported_as_a_table_csv_and_json_lines() {
    let (app, name) = app_with_history().await;
    let table = stdout(&run(&app, &["audit", "list"]).await);
    assert_eq!(table.lines().count(), 4, "a header and three entries: {table}");

    let csv = stdout(&run(&app, &["audit", "list", "--format", "csv"]).await);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "position");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(&rows[1][2], name.as_str());
    let inputs: serde_json::Value = serde_json::from_str(&rows[1][14]).unwrap();
    assert_eq!(inputs["company"]["employee_count"], 300, "inputs survive as JSON");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trail.jsonl");
    let out = run(
        &app,
        &[
            "audit",
            "list",
            "--format",
            "jsonl",
            "--filter",
            "kind = LEAD_SUBMITTED",
            "--output",
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 entries written"));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["kind"], "LEAD_SUBMITTED");
    assert!(lines.iter().all(|l| l["hash"].as_str().unwrap().len() == 64));

    let bad = run(&app, &["audit", "list", "--filter", "kind = NOPE"]).await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("filter"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_kept_by_an_analyst_proves_the_trail_later() {
    let (app, _) = app_with_history().await;
    let digest = stdout(&run(&app, &["audit", "digest"]).await).trim().to_owned();
    assert!(digest.starts_with("3:"), "{digest}");
    let ok = stdout(&run(&app, &["audit", "verify", "--digest", &digest]).await);
    assert!(ok.starts_with("ok: 3 entries verified"), "{ok}");
    app.db
        .tamper(&["DELETE FROM audit_log WHERE position = 3".into()])
        .await;
    let broken = run(&app, &["audit", "verify", "--digest", &digest]).await;
    assert_eq!(broken.status.code(), Some(1));
    let text = String::from_utf8_lossy(&broken.stdout);
    assert!(
        text.contains("BROKEN at position 3") && text.contains("TRUNCATED"),
        "{text}"
    );
    let garbage = run(&app, &["audit", "verify", "--digest", "nonsense"]).await;
    assert!(!garbage.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_over_several_calls_prints_one_result() {
    let (app, _) = app_with_history().await;
    let ok = run(&app, &["audit", "verify", "--per-call", "1"]).await;
    assert!(
        stdout(&ok).starts_with("ok: 3 entries verified"),
        "{}",
        stdout(&ok)
    );
    // Not a terminal: no progress drawn.
    assert!(ok.stderr.is_empty(), "{}", String::from_utf8_lossy(&ok.stderr));
    app.db
        .tamper(&["UPDATE audit_log SET body = body || ' ' WHERE position = 3".into()])
        .await;
    let broken = run(&app, &["audit", "verify", "--per-call", "1"]).await;
    assert_eq!(broken.status.code(), Some(1));
    let text = String::from_utf8_lossy(&broken.stdout);
    assert!(
        text.contains("BROKEN at position 3") && text.contains("HASH_MISMATCH"),
        "{text}"
    );
    assert!(text.contains("2 entries verified before it"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_entries_as_they_are_chained() {
    let (app, _) = app_with_history().await;
    let mut child = Command::new(BINARY)
        .args(["audit", "watch", "--after", "1", "--format", "jsonl"])
        .env("LEADGATE_SERVER", format!("http://{}", app.addr))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .take(3)
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(&l.unwrap()).unwrap()["position"]
                    .as_i64()
                    .unwrap()
            })
            .collect::<Vec<_>>()
    });
    app.leads
        .clone()
        .submit_lead(minimal_submission("new@example.com"))
        .await
        .unwrap();
    let positions = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(positions, [2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_funnel_prints_stages_and_bars() {
    let (app, _) = app_with_history().await;
    let today = chrono::Utc::now().date_naive().to_string();
    let funnel = stdout(&run(&app, &["funnel", "--from", &today]).await);
    assert!(funnel.contains("ALL CHANNELS: 2 leads created"), "{funnel}");
    assert!(funnel.contains("TRADE_SHOW: 1 leads created"), "{funnel}");
    assert!(
        funnel.contains("LEAD -> MARKETING_QUALIFIED") && funnel.contains('█'),
        "{funnel}"
    );
    let one = stdout(&run(&app, &["funnel", "--from", &today, "--channel", "trade_show"]).await);
    assert!(one.contains("ALL CHANNELS: 1 leads created"), "{one}");
    let bad = run(&app, &["funnel", "--from", "last tuesday"]).await;
    assert!(!bad.status.success());
}

#[test]
fn an_unreachable_server_is_reported() {
    let output = Command::new(BINARY)
        .args(["audit", "digest", "--server", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach leadgate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_are_searched_by_email_domain_reference_and_name() {
    let app = spawn_app(&Backend::Sqlite).await;
    let mut referenced = cfo_demo_request("Jane.Doe@ACME.fr");
    referenced.external_reference = "CRM-9".into();
    let jane = app
        .leads
        .clone()
        .submit_lead(referenced)
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap()
        .name;
    let mut other = cfo_demo_request("other@acme.fr");
    other.source.as_mut().unwrap().channel = pb::SourceChannel::TradeShow as i32;
    app.leads.clone().submit_lead(other).await.unwrap();
    app.leads
        .clone()
        .submit_lead(minimal_submission("solo@solo.example"))
        .await
        .unwrap();

    let lines = |out: &str| out.lines().skip(1).count();
    let by_email = stdout(&run(&app, &["leads", "search", "--email", "jane.doe@Acme.FR"]).await);
    assert!(
        by_email.lines().next().unwrap().starts_with("NAME"),
        "the columns of leads list"
    );
    assert_eq!(lines(&by_email), 1, "{by_email}");
    assert!(by_email.contains(&jane), "{by_email}");
    for (args, found) in [
        (&["--domain", "ACME-Industrie.FR"][..], 2),
        (&["--domain", "solo.example"][..], 1),
        (&["--ref", "CRM-9"][..], 1),
        (&["--ref", "crm-9"][..], 0),
        (&["--name", "industrie"][..], 2),
        (&["--name", "ACME IND*"][..], 2),
        (&["--name", "industrie*"][..], 0),
        (
            &[
                "--domain",
                "acme-industrie.fr",
                "--filter",
                "source.channel = TRADE_SHOW",
            ][..],
            1,
        ),
        (&["--filter", "NOT company.name : \"acme\""][..], 1),
    ] {
        let out = stdout(&run(&app, &[&["leads", "search"][..], args].concat()).await);
        assert_eq!(lines(&out), found, "{args:?}: {out}");
    }

    let nothing = run(&app, &["leads", "search"]).await;
    assert!(!nothing.status.success());
    let bad = run(&app, &["leads", "search", "--email", "jane"]).await;
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("filter") && stderr.contains("contact.email"),
        "{stderr}"
    );
    let help = stdout(&run(&app, &["leads", "search", "--help"]).await);
    for flag in [
        "--email",
        "--domain",
        "--ref",
        "--name",
        "--filter",
        "--order-by",
        "--limit",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_is_exported_then_erased_with_leads_export_and_leads_erase() {
    let app = spawn_app(&Backend::Sqlite).await;
    let lead = submitted(&app, cfo_demo_request("claire.martin@acme-industrie.fr")).await;
    app.db.wait_until_chained().await;

    let export = run(
        &app,
        &["leads", "export", "--email", "Claire.Martin@acme-industrie.fr"],
    )
    .await;
    assert!(export.status.success(), "{export:?}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&export)).unwrap();
    assert_eq!(json["lead"]["id"], lead_uuid(&lead.name).to_string());
    assert_eq!(json["history"][0]["kind"], "LEAD_SUBMITTED");
    let neither = run(&app, &["leads", "export"]).await;
    assert!(!neither.status.success(), "a lead or an email is required");

    let erased = run(&app, &["leads", "erase", &lead.name, "--reason", "DSR-12"]).await;
    assert!(erased.status.success(), "{erased:?}");
    let shown = stdout(&erased);
    assert!(shown.contains("erased "), "{shown}");
    assert!(
        !shown.contains("Claire") && shown.contains("@erased.invalid>"),
        "{shown}"
    );
    let again = run(&app, &["leads", "erase", &lead.name, "--reason", "DSR-12"]).await;
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("erased before"));
    let missing_reason = run(&app, &["leads", "erase", &lead.name]).await;
    assert!(!missing_reason.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_is_merged_with_leads_merge() {
    let app = spawn_app(&Backend::Sqlite).await;
    let winner = submitted(&app, cfo_demo_request("claire@acme.fr")).await;
    let loser = submitted(&app, minimal_submission("claire.martin@gmail.com")).await;
    let out = stdout(
        &run(
            &app,
            &[
                "leads",
                "merge",
                winner.name.strip_prefix("leads/").unwrap(),
                &loser.name,
                "--reason",
                "same person",
                "--request-id",
                "cli-merge-1",
            ],
        )
        .await,
    );
    assert!(
        out.contains(&format!("merged {} into {}", loser.name, winner.name)),
        "{out}"
    );
    let read = app
        .leads
        .clone()
        .get_lead(pb::GetLeadRequest {
            name: loser.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.name, winner.name);
    // Merging it again is refused, and the error says why.
    let again = run(&app, &["leads", "merge", &winner.name, &loser.name]).await;
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already merged"), "{stderr}");
}
