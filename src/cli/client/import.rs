//! `leadgate leads import FILE`: a CSV or JSON-lines file sent through ImportLeads in batches,
//! a few calls in flight, with a progress bar on a terminal, a file of refused rows and a
//! summary line on stdout.
//!
//! Rows are numbered from 1 in file order (a CSV's header is not a row, nor is a blank line of
//! JSONL). The import id defaults to a hash of the file's content, so the same file sent again
//! — after a crash, an interruption — answers every row as it was first answered and creates
//! nothing twice.

use std::collections::{BTreeSet, VecDeque};
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use super::{Connection, describe, fail};
use crate::cli::args::{ImportArgs, ImportFormat};
use crate::grpc::pb;
use pb::import_lead_result::Outcome;

/// The columns (CSV header names, JSONL keys) and where each goes in a SubmitLeadRequest.
pub const COLUMNS: &[(&str, &str)] = &[
    ("email", "contact.email"),
    ("given_name", "contact.given_name"),
    ("family_name", "contact.family_name"),
    ("phone", "contact.phone"),
    ("job_title", "contact.job_title"),
    ("seniority", "contact.seniority"),
    ("job_function", "contact.job_function"),
    ("company_name", "company.name"),
    ("company_domain", "company.domain"),
    ("industry", "company.industry"),
    ("employee_count", "company.employee_count"),
    ("country_code", "company.country_code"),
    ("country", "company.country_code"),
    ("channel", "source.channel"),
    ("campaign", "source.campaign"),
    ("external_reference", "external_reference"),
];

/// Refusals printed on stderr at most (all of them go to `--rejected`).
const MAX_PRINTED_REFUSALS: usize = 20;

/// A row as the file gave it.
#[derive(Clone, Debug, PartialEq)]
pub enum Original {
    Csv(csv::StringRecord),
    Json(serde_json::Value),
}

/// One row of the file: its number, what it held, and the request made of it (or why none
/// could be made).
#[derive(Clone, Debug)]
pub struct Row {
    pub number: i64,
    pub original: Original,
    pub request: Result<pb::SubmitLeadRequest, Vec<String>>,
}

/// A file, read.
#[derive(Clone, Debug)]
pub struct ImportFile {
    /// The CSV header (for the rejected rows' file).
    pub header: Option<csv::StringRecord>,
    pub rows: Vec<Row>,
}

/// The format `--format` gives, or the file name's extension says.
pub fn format_of(file: &str, format: Option<ImportFormat>) -> Result<ImportFormat, String> {
    if let Some(format) = format {
        return Ok(format);
    }
    let lower = file.to_ascii_lowercase();
    if lower.ends_with(".csv") {
        Ok(ImportFormat::Csv)
    } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
        Ok(ImportFormat::Jsonl)
    } else {
        Err(format!(
            "cannot tell the format of {file:?} from its name: give --format csv or --format jsonl"
        ))
    }
}

/// The default import id: a hash of the file's content.
pub fn content_import_id(content: &[u8]) -> String {
    let digest = Sha256::digest(content);
    let hex: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
    format!("sha256-{hex}")
}

fn known(column: &str) -> bool {
    COLUMNS.iter().any(|(name, _)| *name == column)
}

/// Reads a file: columns leadgate does not know are refused up front (all named), unless
/// `ignore_unknown`.
pub fn parse(content: &[u8], format: ImportFormat, ignore_unknown: bool) -> Result<ImportFile, String> {
    match format {
        ImportFormat::Csv => parse_csv(content, ignore_unknown),
        ImportFormat::Jsonl => parse_jsonl(content, ignore_unknown),
    }
}

fn unknown_columns_error(unknown: &BTreeSet<String>) -> String {
    let names: Vec<String> = unknown.iter().map(|c| format!("{c:?}")).collect();
    format!(
        "unknown columns {} (known: {}); rename them, or pass --ignore-unknown-columns",
        names.join(", "),
        COLUMNS.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
    )
}

fn parse_csv(content: &[u8], ignore_unknown: bool) -> Result<ImportFile, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(content);
    let header = reader
        .headers()
        .map_err(|e| format!("the CSV header cannot be read: {e}"))?
        .clone();
    let names: Vec<String> = header.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
    let unknown: BTreeSet<String> = names.iter().filter(|n| !known(n)).cloned().collect();
    if !unknown.is_empty() && !ignore_unknown {
        return Err(unknown_columns_error(&unknown));
    }
    let mut seen = BTreeSet::new();
    for name in names.iter().filter(|n| known(n)) {
        if !seen.insert(name.as_str()) {
            return Err(format!("the column {name:?} appears twice in the header"));
        }
    }
    if !seen.contains("email") {
        return Err("the file has no email column".into());
    }
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let number = index as i64 + 1;
        let record = record.map_err(|e| format!("row {number}: {e}"))?;
        let value = |column: &str| {
            names
                .iter()
                .position(|n| n == column)
                .and_then(|i| record.get(i))
                .map(str::to_owned)
        };
        rows.push(Row {
            number,
            request: request_of(value),
            original: Original::Csv(record.clone()),
        });
    }
    Ok(ImportFile {
        header: Some(header),
        rows,
    })
}

fn parse_jsonl(content: &[u8], ignore_unknown: bool) -> Result<ImportFile, String> {
    let text = std::str::from_utf8(content).map_err(|e| format!("the file is not UTF-8: {e}"))?;
    let mut rows = Vec::new();
    let mut unknown = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let number = rows.len() as i64 + 1;
        let (original, request) = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(object)) => {
                unknown.extend(object.keys().filter(|k| !known(k)).cloned());
                let value = |column: &str| match object.get(column) {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(other) => Some(other.to_string()),
                };
                let request = request_of(value);
                (serde_json::Value::Object(object), request)
            }
            Ok(other) => (other, Err(vec!["the line is not a JSON object".to_string()])),
            Err(e) => (
                serde_json::Value::String(line.to_owned()),
                Err(vec![format!("the line is not JSON: {e}")]),
            ),
        };
        rows.push(Row {
            number,
            original: Original::Json(original),
            request,
        });
    }
    if !unknown.is_empty() && !ignore_unknown {
        return Err(unknown_columns_error(&unknown));
    }
    Ok(ImportFile { header: None, rows })
}

/// A closed set's value by its proto name, with or without its prefix, in any case.
fn enum_value(value: &str, prefix: &str, from: impl Fn(&str) -> Option<i32>) -> Option<i32> {
    let upper = value.trim().to_ascii_uppercase().replace(['-', ' '], "_");
    if upper.is_empty() {
        return Some(0);
    }
    from(&upper).or_else(|| from(&format!("{prefix}{upper}")))
}

/// The request a row makes, or why it makes none (values the request cannot carry: an
/// employee count that is not a number, an unknown channel). Everything else is the server's
/// to judge.
pub fn request_of(value: impl Fn(&str) -> Option<String>) -> Result<pb::SubmitLeadRequest, Vec<String>> {
    let text = |column: &str| value(column).unwrap_or_default();
    let mut problems = Vec::new();
    let employee_count = match text("employee_count").trim() {
        "" => 0,
        count => count.parse::<i32>().unwrap_or_else(|_| {
            problems.push(format!("employee_count: {count:?} is not a whole number"));
            0
        }),
    };
    let channel = enum_value(&text("channel"), "SOURCE_CHANNEL_", |n| {
        pb::SourceChannel::from_str_name(n).map(|c| c as i32)
    })
    .unwrap_or_else(|| {
        problems.push(format!(
            "channel: {:?} is not a channel (e.g. WEBSITE, TRADE_SHOW, WEBINAR)",
            text("channel")
        ));
        0
    });
    let seniority = enum_value(&text("seniority"), "SENIORITY_", |n| {
        pb::Seniority::from_str_name(n).map(|s| s as i32)
    })
    .unwrap_or_else(|| {
        problems.push(format!(
            "seniority: {:?} is not a seniority (e.g. MANAGER, DIRECTOR, EXECUTIVE)",
            text("seniority")
        ));
        0
    });
    if !problems.is_empty() {
        return Err(problems);
    }
    let country = value("country_code")
        .or_else(|| value("country"))
        .unwrap_or_default();
    Ok(pb::SubmitLeadRequest {
        contact: Some(pb::Contact {
            email: text("email"),
            given_name: text("given_name"),
            family_name: text("family_name"),
            phone: text("phone"),
            job_title: text("job_title"),
            seniority,
            job_function: text("job_function"),
        }),
        company: Some(pb::Company {
            name: text("company_name"),
            domain: text("company_domain"),
            industry: text("industry"),
            employee_count,
            country_code: country,
        }),
        source: Some(pb::Source {
            channel,
            campaign: text("campaign"),
        }),
        external_reference: text("external_reference"),
        events: Vec::new(),
        request_id: String::new(),
    })
}

/// The calls to make: runs of consecutive rows that make requests, at most `size` rows each
/// (a row that makes none ends a run, since a call's rows are numbered consecutively).
pub fn batches(rows: &[Row], size: usize) -> Vec<std::ops::Range<usize>> {
    let mut batches = Vec::new();
    let mut start = None;
    for (i, row) in rows.iter().enumerate() {
        match (row.request.is_ok(), start) {
            (true, None) => start = Some(i),
            (true, Some(s)) if i - s == size => {
                batches.push(s..i);
                start = Some(i);
            }
            (true, Some(_)) => {}
            (false, Some(s)) => {
                batches.push(s..i);
                start = None;
            }
            (false, None) => {}
        }
    }
    if let Some(s) = start {
        batches.push(s..rows.len());
    }
    batches
}

/// What became of a row.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Created,
    Deduplicated,
    Refused(Vec<String>),
}

fn progress(rows: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(rows),
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "importing {wide_bar} {human_pos}/{human_len} rows ({per_sec}, {eta} left)",
        )
        .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn read_input(file: &str) -> Result<Vec<u8>, String> {
    let mut content = Vec::new();
    if file == "-" {
        std::io::stdin()
            .read_to_end(&mut content)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
    } else {
        content = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    }
    Ok(content)
}

pub async fn import(connection: Connection, args: ImportArgs) -> ExitCode {
    let format = match format_of(&args.file, args.format) {
        Ok(format) => format,
        Err(e) => return fail(e),
    };
    let content = match read_input(&args.file) {
        Ok(content) => content,
        Err(e) => return fail(e),
    };
    let file = match parse(&content, format, args.ignore_unknown_columns) {
        Ok(file) => file,
        Err(e) => return fail(e),
    };
    let import_id = args
        .import_id
        .clone()
        .unwrap_or_else(|| content_import_id(&content));
    let mut answers: Vec<Option<Answer>> = file
        .rows
        .iter()
        .map(|row| row.request.as_ref().err().map(|why| Answer::Refused(why.clone())))
        .collect();
    let bar = progress(file.rows.len() as u64);
    bar.inc(answers.iter().filter(|a| a.is_some()).count() as u64);
    let client = connection.leads();
    let mut in_flight = VecDeque::new();
    let mut pending = batches(&file.rows, usize::from(args.batch_size)).into_iter();
    let mut failure = None;
    loop {
        while in_flight.len() < usize::from(args.in_flight)
            && failure.is_none()
            && let Some(range) = pending.next()
        {
            let request = pb::ImportLeadsRequest {
                import_id: import_id.clone(),
                first_row: file.rows[range.start].number,
                leads: file.rows[range.clone()]
                    .iter()
                    .filter_map(|row| row.request.clone().ok())
                    .collect(),
                validate_only: args.dry_run,
            };
            let mut client = client.clone();
            in_flight.push_back((
                range,
                tokio::spawn(async move { client.import_leads(request).await }),
            ));
        }
        let Some((range, call)) = in_flight.pop_front() else {
            break;
        };
        match call.await {
            Ok(Ok(response)) => {
                let response = response.into_inner();
                for (slot, result) in answers[range.clone()].iter_mut().zip(&response.results) {
                    *slot = Some(match result.outcome() {
                        Outcome::Created => Answer::Created,
                        Outcome::Deduplicated => Answer::Deduplicated,
                        Outcome::Refused | Outcome::Unspecified => Answer::Refused(
                            result
                                .violations
                                .iter()
                                .map(|v| format!("{}: {}", v.field, v.description))
                                .collect(),
                        ),
                    });
                }
                bar.inc(range.len() as u64);
            }
            Ok(Err(status)) => {
                failure.get_or_insert(format!(
                    "rows {}-{}: {}",
                    file.rows[range.start].number,
                    file.rows[range.end - 1].number,
                    describe(&status)
                ));
            }
            Err(e) => {
                failure.get_or_insert(format!("a call did not finish: {e}"));
            }
        }
    }
    bar.finish_and_clear();
    if let Some(path) = &args.rejected
        && let Err(e) = write_rejected(path, &file, &answers)
    {
        return fail(format!("cannot write {}: {e}", path.display()));
    }
    let count = |f: fn(&Answer) -> bool| answers.iter().flatten().filter(|a| f(a)).count();
    let created = count(|a| *a == Answer::Created);
    let deduplicated = count(|a| *a == Answer::Deduplicated);
    let refused = count(|a| matches!(a, Answer::Refused(_)));
    let refusals = file
        .rows
        .iter()
        .zip(&answers)
        .filter_map(|(row, answer)| match answer {
            Some(Answer::Refused(why)) => Some((row.number, why)),
            Some(Answer::Created | Answer::Deduplicated) | None => None,
        });
    for (number, why) in refusals.take(MAX_PRINTED_REFUSALS) {
        eprintln!("row {number}: refused: {}", why.join("; "));
    }
    if refused > MAX_PRINTED_REFUSALS {
        eprintln!("... and {} more refused rows", refused - MAX_PRINTED_REFUSALS);
    }
    let summary = if args.dry_run {
        format!(
            "dry run of {import_id}: would create {created}, deduplicate {deduplicated}, refuse {refused} of {} rows; nothing written",
            file.rows.len()
        )
    } else {
        format!(
            "import {import_id}: created {created}, deduplicated {deduplicated}, refused {refused} of {} rows",
            file.rows.len()
        )
    };
    if let Some(failure) = failure {
        let unanswered = answers.iter().filter(|a| a.is_none()).count();
        println!("{summary}; {unanswered} not answered");
        return fail(format!(
            "{failure}\nthe rows answered are stored; run the same command again to import the rest (nothing is created twice)"
        ));
    }
    println!("{summary}");
    if refused > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Writes the refused rows with their reasons: CSV, the row's columns and `reasons`; JSONL, the
/// line's object with `reasons`.
fn write_rejected(
    path: &std::path::Path,
    file: &ImportFile,
    answers: &[Option<Answer>],
) -> std::io::Result<()> {
    let refused = file
        .rows
        .iter()
        .zip(answers)
        .filter_map(|(row, answer)| match answer {
            Some(Answer::Refused(why)) => Some((row, why)),
            Some(Answer::Created | Answer::Deduplicated) | None => None,
        });
    let out = std::fs::File::create(path)?;
    match &file.header {
        Some(header) => {
            let mut writer = csv::Writer::from_writer(out);
            let mut head = header.clone();
            head.push_field("reasons");
            writer.write_record(&head)?;
            for (row, why) in refused {
                if let Original::Csv(record) = &row.original {
                    let mut record = record.clone();
                    record.push_field(&why.join("; "));
                    writer.write_record(&record)?;
                }
            }
            writer.flush()?;
        }
        None => {
            let mut writer = std::io::BufWriter::new(out);
            for (row, why) in refused {
                let mut object = match &row.original {
                    Original::Json(serde_json::Value::Object(object)) => object.clone(),
                    Original::Json(other) => {
                        let mut object = serde_json::Map::new();
                        object.insert("line".into(), other.clone());
                        object
                    }
                    Original::Csv(_) => serde_json::Map::new(),
                };
                object.insert("row".into(), row.number.into());
                object.insert("reasons".into(), why.clone().into());
                writeln!(writer, "{}", serde_json::Value::Object(object))?;
            }
            writer.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_columns_go_to_their_fields_and_unknown_ones_are_named_up_front() {
        let content = b"email,given_name,company_name,employee_count,country,channel,campaign\n\
                        a@acme.fr,Claire,Acme,300,FR,trade_show,salon\n";
        let file = parse(content, ImportFormat::Csv, false).unwrap();
        let request = file.rows[0].request.clone().unwrap();
        assert_eq!(request.contact.unwrap().given_name, "Claire");
        let company = request.company.unwrap();
        assert_eq!((company.name.as_str(), company.employee_count), ("Acme", 300));
        assert_eq!(company.country_code, "FR");
        assert_eq!(
            request.source.unwrap().channel,
            pb::SourceChannel::TradeShow as i32
        );

        let error = parse(
            b"email,shoe_size,Colour\na@acme.fr,42,red\n",
            ImportFormat::Csv,
            false,
        )
        .unwrap_err();
        assert!(error.contains("\"colour\", \"shoe_size\""), "{error}");
        assert!(parse(b"email,shoe_size\na@acme.fr,42\n", ImportFormat::Csv, true).is_ok());
        assert!(parse(b"given_name\nClaire\n", ImportFormat::Csv, false).is_err());
    }

    #[test]
    fn values_a_request_cannot_carry_refuse_their_row_only() {
        let file = parse(
            b"email,channel,employee_count\na@acme.fr,WEBSITE,many\nb@acme.fr,PIGEON,3\nc@acme.fr,SOURCE_CHANNEL_WEBINAR,\n",
            ImportFormat::Csv,
            false,
        )
        .unwrap();
        assert!(file.rows[0].request.as_ref().unwrap_err()[0].starts_with("employee_count"));
        assert!(file.rows[1].request.as_ref().unwrap_err()[0].starts_with("channel"));
        assert!(file.rows[2].request.is_ok());
    }

    #[test]
    fn jsonl_lines_are_flat_objects_numbered_without_blank_lines() {
        let content =
            b"{\"email\":\"a@acme.fr\",\"channel\":\"WEBSITE\",\"employee_count\":12}\n\n[1]\nnot json\n";
        let file = parse(content, ImportFormat::Jsonl, false).unwrap();
        assert_eq!(file.rows.iter().map(|r| r.number).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            file.rows[0]
                .request
                .clone()
                .unwrap()
                .company
                .unwrap()
                .employee_count,
            12
        );
        assert!(file.rows[1].request.is_err() && file.rows[2].request.is_err());
        assert!(
            parse(
                b"{\"email\":\"a@acme.fr\",\"hat\":1}\n",
                ImportFormat::Jsonl,
                false
            )
            .is_err()
        );
    }

    #[test]
    fn calls_take_consecutive_rows_up_to_the_batch_size() {
        let row = |ok: bool| Row {
            number: 0,
            original: Original::Json(serde_json::Value::Null),
            request: if ok {
                Ok(pb::SubmitLeadRequest::default())
            } else {
                Err(vec![])
            },
        };
        let rows: Vec<Row> = [true, true, true, false, true, true, true, true, true]
            .into_iter()
            .map(row)
            .collect();
        assert_eq!(batches(&rows, 2), [0..2, 2..3, 4..6, 6..8, 8..9]);
    }

    #[test]
    fn the_format_comes_from_the_name_unless_given() {
        assert_eq!(format_of("a.CSV", None).unwrap(), ImportFormat::Csv);
        assert_eq!(format_of("a.jsonl", None).unwrap(), ImportFormat::Jsonl);
        assert_eq!(
            format_of("-", Some(ImportFormat::Csv)).unwrap(),
            ImportFormat::Csv
        );
        assert!(format_of("-", None).is_err());
        assert_eq!(content_import_id(b"x"), content_import_id(b"x"));
        assert_ne!(content_import_id(b"x"), content_import_id(b"y"));
    }
}
