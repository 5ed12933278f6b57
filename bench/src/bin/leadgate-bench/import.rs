//! The import scenario: the same leads written through ImportLeads from a CSV file (read with
//! the CLI's own parser, batches of [`BATCH`] rows, [`IN_FLIGHT`] calls at once) and through
//! SubmitLead, one call per lead from `--concurrency` callers, on one fresh database per
//! backend with one server: rows per second for each, and their ratio (the goal: ≥ 5×).
//!
//! Both write new leads with request ids (an import row's is derived), with the same values
//! but for the email (each lead is new to the database), and both are timed until the last
//! row's audit entry is chained. SubmitLead runs first, so the import writes into the larger
//! table.

use std::time::{Duration, Instant};

use leadgate::cli::args::ImportFormat;
use leadgate::cli::client::import::{batches, parse};
use leadgate::grpc::pb;
use pb::lead_service_client::LeadServiceClient;

use crate::Args;
use crate::servers::{Scratch, ScratchDatabase, Server};

/// Rows per ImportLeads call.
pub const BATCH: usize = 1000;
/// ImportLeads calls in flight at once.
pub const IN_FLIGHT: usize = 4;

/// One backend's figures.
pub struct ImportFigures {
    pub backend: &'static str,
    pub rows: usize,
    pub import_rows_per_s: f64,
    pub submit_rows_per_s: f64,
}

/// The CSV of `rows` leads, emails starting with `prefix`.
fn csv(prefix: &str, rows: usize) -> String {
    let mut csv = String::from(
        "email,given_name,family_name,phone,job_title,company_name,company_domain,industry,\
         employee_count,country_code,channel,campaign,external_reference\n",
    );
    for i in 0..rows {
        csv.push_str(&format!(
            "{prefix}-{i}@acme-industrie.fr,Claire,Martin,+33 1 23 45 67 89,Directrice financière,\
             Acme Industrie,acme-industrie.fr,manufacturing,300,FR,TRADE_SHOW,salon-2026,crm-{i}\n"
        ));
    }
    csv
}

/// The leads of a CSV file, as the CLI reads them.
fn read(path: &std::path::Path) -> Vec<pb::SubmitLeadRequest> {
    let content = std::fs::read(path).expect("the CSV file");
    let file = parse(&content, ImportFormat::Csv, false).expect("a valid CSV");
    file.rows
        .into_iter()
        .map(|row| row.request.expect("a valid row"))
        .collect()
}

async fn import(channel: &tonic::transport::Channel, path: &std::path::Path) -> Duration {
    let started = Instant::now();
    let content = std::fs::read(path).expect("the CSV file");
    let file = parse(&content, ImportFormat::Csv, false).expect("a valid CSV");
    let client = LeadServiceClient::new(channel.clone())
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    let mut in_flight = std::collections::VecDeque::new();
    let mut pending = batches(&file.rows, BATCH).into_iter();
    loop {
        while in_flight.len() < IN_FLIGHT
            && let Some(range) = pending.next()
        {
            let request = pb::ImportLeadsRequest {
                import_id: "bench".into(),
                first_row: file.rows[range.start].number,
                leads: file.rows[range.clone()]
                    .iter()
                    .filter_map(|r| r.request.clone().ok())
                    .collect(),
                validate_only: false,
            };
            let mut client = client.clone();
            in_flight.push_back(tokio::spawn(async move { client.import_leads(request).await }));
        }
        let Some(call) = in_flight.pop_front() else {
            break;
        };
        let answer = call.await.unwrap().expect("ImportLeads answers").into_inner();
        assert_eq!(
            answer.refused_count, 0,
            "every row of the benchmark's file is valid"
        );
    }
    started.elapsed()
}

async fn submit(channels: &[tonic::transport::Channel], leads: Vec<pb::SubmitLeadRequest>) -> Duration {
    let started = Instant::now();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(leads.into_iter().enumerate()));
    let mut callers = Vec::new();
    for channel in channels {
        let (queue, mut client) = (queue.clone(), LeadServiceClient::new(channel.clone()));
        callers.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap().next();
                let Some((i, mut lead)) = next else { break };
                lead.request_id = format!("bench-submit-{i}");
                client.submit_lead(lead).await.expect("SubmitLead answers");
            }
        }));
    }
    for caller in callers {
        caller.await.unwrap();
    }
    started.elapsed()
}

/// How long `writes` took until the last row's audit entry was chained: a row counts once its
/// entry is in the trail, as everywhere in the benchmark. Says how long the chain took after
/// the last answer.
async fn timed(writes: impl Future<Output = Duration>, url: &str) -> Duration {
    let answered = writes.await;
    let chained = crate::lag::drain(url).await.expect("the inbox empties");
    eprintln!(
        "  last answer after {:.1} s, last entry chained {:.1} s later",
        answered.as_secs_f64(),
        chained.as_secs_f64()
    );
    answered + chained
}

/// The scenario on one database.
async fn run_on(backend: &'static str, url: &str, args: &Args, scratch: &Scratch) -> ImportFigures {
    let server = Server::leadgate(url);
    server.serving(Instant::now()).await;
    let rows = args.import_rows;
    let channels = server.channels(args.concurrency.max(1)).await;
    let submit_file = scratch.0.join(format!("{backend}-submit.csv"));
    std::fs::write(&submit_file, csv("one-call", rows)).unwrap();
    let import_file = scratch.0.join(format!("{backend}-import.csv"));
    std::fs::write(&import_file, csv("imported", rows)).unwrap();

    eprintln!(
        "{backend}: SubmitLead, {rows} leads, one call each from {} callers",
        channels.len()
    );
    let submitted = timed(submit(&channels, read(&submit_file)), url).await;
    eprintln!("{backend}: ImportLeads, {rows} leads from a CSV, {BATCH} a call, {IN_FLIGHT} in flight");
    let imported = timed(import(&channels[0], &import_file), url).await;
    ImportFigures {
        backend,
        rows,
        import_rows_per_s: rows as f64 / imported.as_secs_f64(),
        submit_rows_per_s: rows as f64 / submitted.as_secs_f64(),
    }
}

/// The scenario on SQLite and, unless skipped, PostgreSQL; fresh databases.
pub async fn run(args: &Args) -> Vec<ImportFigures> {
    let scratch = Scratch::new("import");
    let mut figures = vec![
        run_on(
            "SQLite",
            &format!("sqlite://{}", scratch.0.join("import.db").display()),
            args,
            &scratch,
        )
        .await,
    ];
    if !args.skip_postgres {
        match ScratchDatabase::create(&args.postgres, "leadgate_bench_import").await {
            Ok(db) => {
                figures.push(run_on("PostgreSQL", &db.url, args, &scratch).await);
                db.drop().await;
            }
            Err(e) => eprintln!("PostgreSQL skipped: {e}"),
        }
    }
    figures
}

/// The import's table, with each backend's verdict against the goal.
pub fn report(figures: &[ImportFigures]) {
    println!();
    println!(
        "import ({} rows from a CSV, {BATCH} a call, {IN_FLIGHT} in flight) vs SubmitLead one call per lead",
        figures.first().map_or(0, |f| f.rows)
    );
    println!(
        "{:<12} {:>16} {:>16} {:>8}  goal",
        "backend", "import rows/s", "submit rows/s", "ratio"
    );
    for f in figures {
        let ratio = f.import_rows_per_s / f.submit_rows_per_s;
        println!(
            "{:<12} {:>16.0} {:>16.0} {:>7.1}×  {}",
            f.backend,
            f.import_rows_per_s,
            f.submit_rows_per_s,
            ratio,
            if ratio >= 5.0 {
                "≥ 5× met"
            } else {
                "≥ 5× NOT met"
            }
        );
    }
}
