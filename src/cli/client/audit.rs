//! `leadgate audit list|verify|digest|watch`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::format::{channel, json_object, kind, short_lead, state, time};
use super::{Connection, describe, fail};
use crate::cli::args::{AuditCommand, AuditFormat, ClientArgs};
use crate::grpc::pb;

/// One entry as exported.
#[derive(Serialize)]
struct Row {
    position: i64,
    record_time: String,
    lead: String,
    kind: String,
    actor: String,
    request_id: String,
    state_before: String,
    state_after: String,
    combined_before: Option<f64>,
    combined_after: Option<f64>,
    recommended_state: String,
    policy_version: String,
    source_channel: String,
    reasons: String,
    inputs: serde_json::Value,
    hash: String,
}

impl Row {
    fn of(e: &pb::AuditEvent) -> Self {
        Row {
            position: e.position,
            record_time: time(&e.record_time),
            lead: e.lead.clone(),
            kind: kind(e.kind),
            actor: e.actor.clone(),
            request_id: e.request_id.clone(),
            state_before: state(e.state_before),
            state_after: state(e.state_after),
            combined_before: e.scores_before.map(|s| s.combined_points),
            combined_after: e.scores_after.map(|s| s.combined_points),
            recommended_state: state(e.recommended_state),
            policy_version: e.policy_version.clone(),
            source_channel: channel(e.source_channel),
            reasons: e
                .reasons
                .iter()
                .map(|r| format!("{}: {}", r.rule_id, r.message))
                .collect::<Vec<_>>()
                .join("; "),
            inputs: e.inputs.as_ref().map_or(serde_json::Value::Null, json_object),
            hash: e.hash.clone(),
        }
    }
}

const CSV_HEADER: [&str; 16] = [
    "position",
    "record_time",
    "lead",
    "kind",
    "actor",
    "request_id",
    "state_before",
    "state_after",
    "combined_before",
    "combined_after",
    "recommended_state",
    "policy_version",
    "source_channel",
    "reasons",
    "inputs",
    "hash",
];

/// Writes entries in one format.
enum Sink {
    Table(Box<dyn Write>),
    Csv(Box<csv::Writer<Box<dyn Write>>>),
    Jsonl(Box<dyn Write>),
}

impl Sink {
    fn new(format: AuditFormat, out: Box<dyn Write>) -> std::io::Result<Sink> {
        Ok(match format {
            AuditFormat::Table => {
                let mut out = out;
                writeln!(
                    out,
                    "{:>8}  {:<20}  {:<36}  {:<24}  {:<16}  STATE",
                    "POSITION", "TIME", "LEAD", "KIND", "ACTOR"
                )?;
                Sink::Table(out)
            }
            AuditFormat::Csv => {
                let mut writer = csv::Writer::from_writer(out);
                writer.write_record(CSV_HEADER)?;
                Sink::Csv(Box::new(writer))
            }
            AuditFormat::Jsonl => Sink::Jsonl(out),
        })
    }

    fn write(&mut self, e: &pb::AuditEvent) -> std::io::Result<()> {
        let row = Row::of(e);
        match self {
            Sink::Table(out) => {
                let change = if row.state_before == row.state_after || row.state_before == "-" {
                    row.state_after.clone()
                } else {
                    format!("{} -> {}", row.state_before, row.state_after)
                };
                writeln!(
                    out,
                    "{:>8}  {:<20}  {:<36}  {:<24}  {:<16}  {}",
                    row.position,
                    row.record_time,
                    short_lead(&row.lead),
                    row.kind,
                    row.actor,
                    change
                )
            }
            Sink::Csv(writer) => {
                let number = |n: Option<f64>| n.map(|n| format!("{n:.2}")).unwrap_or_default();
                writer.write_record([
                    row.position.to_string(),
                    row.record_time,
                    row.lead,
                    row.kind,
                    row.actor,
                    row.request_id,
                    row.state_before,
                    row.state_after,
                    number(row.combined_before),
                    number(row.combined_after),
                    row.recommended_state,
                    row.policy_version,
                    row.source_channel,
                    row.reasons,
                    row.inputs.to_string(),
                    row.hash,
                ])?;
                Ok(())
            }
            Sink::Jsonl(out) => {
                serde_json::to_writer(&mut *out, &row)?;
                out.write_all(b"\n")
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Table(out) | Sink::Jsonl(out) => out.flush(),
            Sink::Csv(writer) => writer.flush(),
        }
    }
}

fn progress() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        None,
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{spinner} {human_pos} entries ({per_sec}) {elapsed}")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Entries verified out of the range, drawn on stderr only when it is a terminal.
fn verify_progress() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(0),
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "verifying {wide_bar} {human_pos}/{human_len} entries ({per_sec}, {eta} left)",
        )
        .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

pub async fn audit(args: ClientArgs, command: AuditCommand) -> ExitCode {
    let connection = match Connection::open(&args).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let mut client = connection.audit();
    match command {
        AuditCommand::List {
            filter,
            order_by,
            format,
            output,
            limit,
        } => {
            let out: Box<dyn Write> = match &output {
                Some(path) => match std::fs::File::create(path) {
                    Ok(file) => Box::new(std::io::BufWriter::new(file)),
                    Err(e) => return fail(format!("cannot write {}: {e}", path.display())),
                },
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let mut sink = match Sink::new(format, out) {
                Ok(sink) => sink,
                Err(e) => return fail(e),
            };
            let bar = progress();
            let limit = limit.unwrap_or(usize::MAX);
            let mut written = 0usize;
            let mut token = String::new();
            while written < limit {
                let request = pb::ListAuditEventsRequest {
                    page_size: (limit - written).min(1000) as i32,
                    page_token: token,
                    filter: filter.clone(),
                    order_by: order_by.clone(),
                };
                let page = match client.list_audit_events(request).await {
                    Ok(page) => page.into_inner(),
                    Err(status) => {
                        bar.finish_and_clear();
                        return fail(describe(&status));
                    }
                };
                for event in &page.audit_events {
                    if let Err(e) = sink.write(event) {
                        bar.finish_and_clear();
                        return fail(e);
                    }
                }
                written += page.audit_events.len();
                bar.set_position(written as u64);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            bar.finish_and_clear();
            if let Err(e) = sink.flush() {
                return fail(e);
            }
            if output.is_some() {
                eprintln!("{written} entries written");
            }
            ExitCode::SUCCESS
        }
        AuditCommand::Verify {
            from,
            to,
            digest,
            per_call,
        } => {
            let expected = match digest.as_deref().map(parse_digest) {
                Some(Ok(d)) => Some(d),
                Some(Err(e)) => return fail(e),
                None => None,
            };
            let bar = verify_progress();
            let mut resume_token = String::new();
            // Each call continues where the last one stopped, until the server says it is done.
            let answer = loop {
                let request = pb::VerifyAuditTrailRequest {
                    start_position: from,
                    end_position: to,
                    expected_digest: expected.clone(),
                    resume_token,
                    max_entries: per_call,
                };
                let answer = match client.verify_audit_trail(request).await {
                    Ok(answer) => answer.into_inner(),
                    Err(status) => {
                        bar.finish_and_clear();
                        return fail(describe(&status));
                    }
                };
                bar.set_length((answer.end_position - from.max(1) + 1).max(0) as u64);
                bar.set_position(answer.verified_count.max(0) as u64);
                if answer.complete {
                    break answer;
                }
                if answer.resume_token.is_empty() {
                    bar.finish_and_clear();
                    return fail("the server stopped the verification without a way to continue");
                }
                resume_token = answer.resume_token;
            };
            bar.finish_and_clear();
            let head = answer.head.unwrap_or_default();
            if answer.ok {
                println!(
                    "ok: {} entries verified (head {})",
                    answer.verified_count, head.token
                );
                ExitCode::SUCCESS
            } else {
                let problem = pb::VerificationProblem::try_from(answer.problem).map_or_else(
                    |_| "?".into(),
                    |p| super::format::name(p.as_str_name(), crate::domain::audit::Problem::PREFIX),
                );
                println!(
                    "BROKEN at position {}: {} ({})",
                    answer.first_bad_position, answer.message, problem
                );
                println!("{} entries verified before it", answer.verified_count);
                ExitCode::FAILURE
            }
        }
        AuditCommand::Quarantine { limit, format } => {
            let mut out = std::io::BufWriter::new(std::io::stdout());
            let mut listed = 0usize;
            let mut token = String::new();
            while listed < limit {
                let request = pb::ListQuarantinedAuditEntriesRequest {
                    page_size: (limit - listed).min(1000) as i32,
                    page_token: token,
                };
                let page = match client.list_quarantined_audit_entries(request).await {
                    Ok(page) => page.into_inner(),
                    Err(status) => return fail(describe(&status)),
                };
                for row in &page.quarantined_audit_entries {
                    let line = match format {
                        AuditFormat::Jsonl | AuditFormat::Csv => serde_json::json!({
                            "name": row.name,
                            "inbox_id": row.inbox_id,
                            "quarantine_time": time(&row.quarantine_time),
                            "reason": row.reason,
                            "detail": row.detail,
                            "lead": row.lead,
                            "kind": row.kind,
                            "record_time": time(&row.record_time),
                            "actor": row.actor,
                            "request_id": row.request_id,
                            "seal_key_id": row.seal_key_id,
                        })
                        .to_string(),
                        AuditFormat::Table => format!(
                            "{}  inbox {}  {:<11}  {}  {} by {:?}: {}",
                            time(&row.quarantine_time),
                            row.inbox_id,
                            row.reason,
                            row.kind,
                            time(&row.record_time),
                            row.actor,
                            row.detail
                        ),
                    };
                    if let Err(e) = writeln!(out, "{line}") {
                        return fail(e.to_string());
                    }
                }
                listed += page.quarantined_audit_entries.len();
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            if let Err(e) = out.flush() {
                return fail(e.to_string());
            }
            if listed == 0 {
                eprintln!("no quarantined rows");
                ExitCode::SUCCESS
            } else {
                eprintln!("{listed} quarantined rows: the trail holds none of them");
                ExitCode::FAILURE
            }
        }
        AuditCommand::Digest => match client.get_audit_digest(pb::GetAuditDigestRequest {}).await {
            Ok(digest) => {
                println!("{}", digest.into_inner().token);
                ExitCode::SUCCESS
            }
            Err(status) => fail(describe(&status)),
        },
        AuditCommand::Watch {
            after,
            from_head,
            filter,
            format,
        } => {
            let mut sink = match Sink::new(format, Box::new(LineWriter(std::io::stdout()))) {
                Ok(sink) => sink,
                Err(e) => return fail(e),
            };
            let mut cursor = after;
            let mut from_head = from_head;
            loop {
                let request = pb::WatchDecisionsRequest {
                    after_position: cursor,
                    from_head,
                    filter: filter.clone(),
                };
                let outcome = match client.watch_decisions(request).await {
                    Ok(stream) => {
                        let mut stream = stream.into_inner();
                        loop {
                            match stream.message().await {
                                Ok(Some(message)) => {
                                    if let Some(event) = message.event {
                                        cursor = event.position;
                                        from_head = false;
                                        if sink.write(&event).is_err() {
                                            return ExitCode::SUCCESS; // the reader went away (a closed pipe)
                                        }
                                    }
                                }
                                Ok(None) => break None,
                                Err(status) => break Some(status),
                            }
                        }
                    }
                    Err(status) => Some(status),
                };
                match outcome {
                    Some(status)
                        if !matches!(
                            status.code(),
                            // RESOURCE_EXHAUSTED: too slow a reader (SLOW_CONSUMER), or too many
                            // streams open on the server (TOO_MANY_STREAMS).
                            tonic::Code::Unavailable
                                | tonic::Code::Unknown
                                | tonic::Code::Internal
                                | tonic::Code::ResourceExhausted
                        ) =>
                    {
                        return fail(describe(&status));
                    }
                    _ => {
                        eprintln!("(stream interrupted; resuming after position {cursor})");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }
}

/// Stdout flushed at every line, so a watcher's output shows as it comes.
struct LineWriter(std::io::Stdout);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        if buf.contains(&b'\n') {
            self.0.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn parse_digest(token: &str) -> Result<pb::AuditDigest, String> {
    let head = crate::domain::audit::ChainHead::parse_token(token).map_err(|e| format!("--digest {e}"))?;
    Ok(pb::AuditDigest {
        position: head.position,
        hash: crate::domain::hex::to_hex(&head.hash),
        hash_algorithm: crate::domain::audit::HASH_ALGORITHM.into(),
        token: token.into(),
    })
}
