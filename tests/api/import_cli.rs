//! `leadgate leads import`, run as a person would, against a running server on both backends.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::contract;
use crate::helpers::*;

const BINARY: &str = env!("CARGO_BIN_EXE_leadgate");

async fn run(app: &TestApp, args: &[&str], stdin: Option<Vec<u8>>) -> Output {
    let server = format!("http://{}", app.addr);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BINARY)
            .args(&args)
            .env("LEADGATE_SERVER", server)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(&stdin.unwrap_or_default()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

const HEADER: &str = "email,given_name,family_name,phone,job_title,company_name,company_domain,industry,employee_count,country,channel,campaign,external_reference";

/// A CSV of `n` good rows (`{prefix}-{i}@…`).
fn csv_rows(prefix: &str, n: usize) -> String {
    let mut csv = format!("{HEADER}\n");
    for i in 0..n {
        csv.push_str(&format!(
            "{prefix}-{i}@acme-industrie.fr,Claire,Martin,+33 1 23 45 67 89,CFO,Acme Industrie,acme-industrie.fr,manufacturing,300,FR,TRADE_SHOW,salon-2026,crm-{i}\n"
        ));
    }
    csv
}

fn write(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

contract! {
    async fn a_csv_file_is_imported_with_its_refused_rows_written_beside_and_a_summary_on_stdout(backend: Backend) {
        let app = spawn_app(&backend).await;
        submitted(&app, minimal_submission("known@acme-industrie.fr")).await;
        let dir = tempfile::tempdir().unwrap();
        let mut csv = csv_rows("good", 3);
        csv.push_str("not-an-email,Bad,Row,,,,,,12,FR,TRADE_SHOW,salon-2026,crm-x\n");
        csv.push_str("known@acme-industrie.fr,Known,Again,,,,,,,,TRADE_SHOW,,\n");
        csv.push_str("other@acme-industrie.fr,Count,Bad,,,,,,lots,,TRADE_SHOW,,\n");
        csv.push_str("good-0@acme-industrie.fr,Twice,In,,,,,,,,TRADE_SHOW,,\n");
        let file = write(&dir, "salon.csv", &csv);
        let rejected = dir.path().join("refused.csv");
        let output = run(
            &app,
            &["leads", "import", &file, "--rejected", rejected.to_str().unwrap(), "--batch-size", "2"],
            None,
        )
        .await;
        assert_eq!(output.status.code(), Some(2), "refused rows: exit 2; {}", text(&output.stderr));
        let stdout = text(&output.stdout);
        assert_eq!(stdout.lines().count(), 1, "only the summary on stdout: {stdout}");
        assert!(stdout.contains("created 3, deduplicated 2, refused 2 of 7 rows"), "{stdout}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("row 4: refused: contact.email"), "{stderr}");
        assert!(stderr.contains("row 6: refused: employee_count"), "{stderr}");
        assert_eq!(app.db.leads().await, 4);
        // The refused rows as they were, with their reasons.
        let mut reader = csv::Reader::from_path(&rejected).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(header.join(","), format!("{HEADER},reasons"));
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][0], "not-an-email");
        assert_eq!(&rows[0][12], "crm-x");
        assert!(rows[0][13].starts_with("contact.email: "), "{:?}", &rows[0]);
        assert_eq!(&rows[1][0], "other@acme-industrie.fr");
        assert!(rows[1][13].contains("\"lots\" is not a whole number"), "{:?}", &rows[1]);

        // The same file again: nothing created, the same answers.
        let leads = app.db.leads().await;
        let entries = app.db.audit_entries().await;
        let again = run(&app, &["leads", "import", &file], None).await;
        assert_eq!(again.status.code(), Some(2));
        assert_eq!(text(&again.stdout), stdout, "the same summary");
        assert_eq!(app.db.leads().await, leads);
        assert_eq!(app.db.audit_entries().await, entries, "nothing written the second time");
    }

    async fn a_dry_run_writes_nothing_and_unknown_columns_are_refused_up_front(backend: Backend) {
        let app = spawn_app(&backend).await;
        let entries = app.db.audit_entries().await;
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir, "list.csv", &csv_rows("dry", 5));
        let output = run(&app, &["leads", "import", &file, "--dry-run"], None).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(text(&output.stdout).contains("would create 5, deduplicate 0, refuse 0 of 5 rows"));
        assert_eq!(app.db.leads().await, 0);
        assert_eq!(app.db.audit_entries().await, entries);

        let odd = write(&dir, "odd.csv", "email,channel,shoe_size,hat\na@acme.fr,WEBSITE,42,no\n");
        let refused = run(&app, &["leads", "import", &odd], None).await;
        assert_eq!(refused.status.code(), Some(1));
        let stderr = text(&refused.stderr);
        assert!(stderr.contains("unknown columns \"hat\", \"shoe_size\""), "{stderr}");
        assert_eq!(app.db.leads().await, 0, "nothing written on a refused file");
        let ignored = run(&app, &["leads", "import", &odd, "--ignore-unknown-columns"], None).await;
        assert!(ignored.status.success(), "{}", text(&ignored.stderr));
        assert_eq!(app.db.leads().await, 1);
    }

    async fn jsonl_from_stdin_works_in_a_pipe_with_its_rejected_lines(backend: Backend) {
        let app = spawn_app(&backend).await;
        let dir = tempfile::tempdir().unwrap();
        let lines = "{\"email\":\"a@acme-industrie.fr\",\"channel\":\"WEBINAR\",\"employee_count\":40}\n\
                     \n\
                     {\"email\":\"b@acme-industrie.fr\",\"channel\":\"pigeon\"}\n\
                     {\"email\":\"c@acme-industrie.fr\",\"channel\":\"website\",\"campaign\":\"spring\"}\n";
        let rejected = dir.path().join("refused.jsonl");
        let output = run(
            &app,
            &["leads", "import", "-", "--format", "jsonl", "--import-id", "webinar-7", "--rejected", rejected.to_str().unwrap()],
            Some(lines.as_bytes().to_vec()),
        )
        .await;
        assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
        assert_eq!(
            text(&output.stdout),
            "import webinar-7: created 2, deduplicated 0, refused 1 of 3 rows\n"
        );
        let refused: Vec<serde_json::Value> = std::fs::read_to_string(&rejected)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0]["email"], "b@acme-industrie.fr");
        assert_eq!(refused[0]["row"], 2);
        assert!(refused[0]["reasons"][0].as_str().unwrap().starts_with("channel:"));
        // The rows' request ids come from the given import id.
        app.db.wait_until_chained().await;
        assert_eq!(
            app.db.count("SELECT COUNT(*) FROM audit_log WHERE request_id IN ('import:webinar-7:1', 'import:webinar-7:3')").await,
            2
        );
    }

    async fn an_import_killed_halfway_and_run_again_writes_every_row_exactly_once(backend: Backend) {
        let app = spawn_app(&backend).await;
        let entries = app.db.audit_entries().await;
        let dir = tempfile::tempdir().unwrap();
        const ROWS: i64 = 20_000;
        let file = write(&dir, "big.csv", &csv_rows("big", ROWS as usize));
        let args = |file: &str| {
            vec![
                "leads".to_string(), "import".into(), file.into(), "--batch-size".into(), "100".into(),
                "--in-flight".into(), "1".into(),
            ]
        };
        let mut child = Command::new(BINARY)
            .args(args(&file))
            .env("LEADGATE_SERVER", format!("http://{}", app.addr))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Killed (SIGKILL) once some rows are in, long before the last.
        let started = Instant::now();
        loop {
            let leads = app.db.leads().await;
            if leads >= 200 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the import started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let partial = app.db.leads().await;
        assert!(partial < ROWS, "killed halfway ({partial} rows in)");

        let args = args(&file);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run(&app, &args, None).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert!(
            text(&output.stdout).contains(&format!("created {ROWS}, deduplicated 0, refused 0 of {ROWS} rows")),
            "each row answered as first: {}",
            text(&output.stdout)
        );
        assert_eq!(app.db.leads().await, ROWS);
        assert_eq!(app.db.count("SELECT COUNT(*) FROM idempotency_keys").await, ROWS);
        assert_eq!(app.db.audit_entries().await, entries + ROWS, "one entry per row: none written twice");
    }
}

/// Whether the server on `port` answers SERVING within 30 s.
async fn serving(port: u16) -> bool {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(endpoint) = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            && let Ok(channel) = endpoint.connect().await
        {
            let status = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if status.is_ok_and(|s| s.into_inner().status == ServingStatus::Serving as i32) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// `leadgate serve` on `db`, as a process of its own; answers once it is SERVING.
async fn serve(db: &TestDatabase, port: u16) -> std::process::Child {
    let mut child = Command::new(BINARY)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db.url,
        ])
        .env("LEADGATE_AUDIT_KEYS", TEST_AUDIT_KEYS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if serving(port).await {
        return child;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("not SERVING within 30 s");
}

mod server_killed {
    use super::*;

    contract! {
        async fn a_server_killed_halfway_through_an_import_and_the_file_run_again_writes_every_row_exactly_once(backend: Backend) {
            const ROWS: i64 = 20_000;
            let db = TestDatabase::create(&backend).await;
            let dir = tempfile::tempdir().unwrap();
            let file = write(&dir, "big.csv", &csv_rows("crash", ROWS as usize));
            let port = free_port();
            let mut server = serve(&db, port).await;
            let entries = db.audit_entries().await;
            let import = move || {
                Command::new(BINARY)
                    .args(["leads", "import", file.as_str(), "--batch-size", "200", "--in-flight", "2"])
                    .env("LEADGATE_SERVER", format!("http://127.0.0.1:{port}"))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            };
            let cli = import();
            let started = Instant::now();
            while db.leads().await < 1000 {
                assert!(started.elapsed() < Duration::from_secs(60), "the import started");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // SIGKILL: no drain, calls cut mid-transaction.
            server.kill().unwrap();
            server.wait().unwrap();
            let output = tokio::task::spawn_blocking(move || cli.wait_with_output().unwrap()).await.unwrap();
            assert_eq!(output.status.code(), Some(1), "the CLI reports the lost server");
            let stderr = text(&output.stderr);
            assert!(stderr.contains("run the same command again"), "{stderr}");
            let partial = db.leads().await;
            assert!(partial < ROWS, "killed halfway ({partial} rows in)");

            let mut server = serve(&db, port).await;
            let second = import();
            let output = tokio::task::spawn_blocking(move || second.wait_with_output().unwrap()).await.unwrap();
            assert!(output.status.success(), "{}", text(&output.stderr));
            assert!(
                text(&output.stdout).contains(&format!("created {ROWS}, deduplicated 0, refused 0 of {ROWS} rows")),
                "{}",
                text(&output.stdout)
            );
            assert_eq!(db.leads().await, ROWS);
            assert_eq!(db.count("SELECT COUNT(*) FROM idempotency_keys").await, ROWS);
            assert_eq!(db.entries_of_kind("LEAD_SUBMITTED").await, ROWS, "one entry per row, none twice");
            assert!(db.audit_entries().await >= entries + ROWS);
            server.kill().unwrap();
            server.wait().unwrap();
        }
    }
}
