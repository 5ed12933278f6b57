//! Growing a database: the leads of a step written with the store's own columns
//! (`store::statements`) in multi-row inserts, many per transaction; their audit entries sealed
//! as leadgate seals them, written to the inbox, then chained by leadgate's own sequencer.

use std::sync::Arc;
use std::time::Instant;

use leadgate::domain::audit::{Admission, AuditKeys, SealedEntry};
use leadgate::domain::lead::Lead;
use leadgate::domain::lifecycle::LeadState;
use leadgate::domain::policy::Policy;
use leadgate::domain::values::SourceChannel;
use leadgate::store::statements::{AUDIT_INBOX, LEADS};
use leadgate::store::{ConnectOptions, Store};
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};
use uuid::Uuid;

use crate::trail;

/// Leads built and written per transaction.
const CHUNK: u64 = 10_000;
/// Rows per multi-row insert (PostgreSQL takes at most 65,535 binds, SQLite 32,766).
const ROWS_PER_INSERT: usize = 1_000;
/// Entries chained per sequencer call while seeding.
const SEQUENCE_BATCH: usize = 5_000;

/// A lead's row, as the store writes it (`store::sql::LeadColumns`).
struct LeadRow {
    id: Uuid,
    email: String,
    state: &'static str,
    channel: &'static str,
    grade: &'static str,
    points: i64,
    created: i64,
    updated: i64,
    revision: i64,
    sla_due: Option<i64>,
    revisit: Option<i64>,
    document: String,
    company_domain: String,
    company_name_folded: String,
    source_campaign: String,
    external_reference: String,
}

impl LeadRow {
    fn of(lead: &Lead) -> LeadRow {
        LeadRow {
            id: lead.id.as_uuid(),
            email: lead.profile.contact.email.as_str().to_owned(),
            state: lead.state.as_str(),
            channel: lead.profile.source.channel.as_str(),
            grade: lead.scores.grade.as_str(),
            points: lead.scores.combined.0,
            created: lead.created_at.timestamp_micros(),
            updated: lead.updated_at.timestamp_micros(),
            revision: lead.revision,
            sla_due: lead.sla_due_at().map(|t| t.timestamp_micros()),
            revisit: lead.revisit_due_at().map(|t| t.timestamp_micros()),
            document: serde_json::to_string(lead).expect("a lead serialises"),
            company_domain: lead.profile.company_domain().to_owned(),
            company_name_folded: leadgate::domain::query::fold(&lead.profile.company.name),
            source_campaign: lead.profile.source.campaign.clone(),
            external_reference: lead.profile.external_reference.clone(),
        }
    }
}

/// Writes one chunk of leads and their sealed entries in one transaction.
async fn write_chunk<DB>(
    pool: &Pool<DB>,
    leads: &[LeadRow],
    entries: &[SealedEntry],
) -> Result<(), sqlx::Error>
where
    DB: Database,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
{
    let mut tx = pool.begin().await?;
    for rows in leads.chunks(ROWS_PER_INSERT) {
        let sql = LEADS.rows_sql(rows.len());
        let query = rows.iter().fold(sqlx::query::<DB>(&sql), |q, r| {
            q.bind(r.id)
                .bind(r.email.as_str())
                .bind(r.state)
                .bind(r.channel)
                .bind(r.grade)
                .bind(r.points)
                .bind(r.created)
                .bind(r.updated)
                .bind(r.revision)
                .bind(r.sla_due)
                .bind(r.revisit)
                .bind(r.document.as_str())
                .bind(r.company_domain.as_str())
                .bind(r.company_name_folded.as_str())
                .bind(r.source_campaign.as_str())
                .bind(r.external_reference.as_str())
        });
        (&mut *tx).execute(query).await?;
    }
    for rows in entries.chunks(ROWS_PER_INSERT) {
        let sql = AUDIT_INBOX.rows_sql(rows.len());
        let query = rows.iter().fold(sqlx::query::<DB>(&sql), |q, s| {
            let e = &s.entry;
            q.bind(e.lead.map(|l| l.as_uuid()))
                .bind(e.kind.as_str())
                .bind(e.recorded_at.timestamp_micros())
                .bind(e.actor.as_str())
                .bind(e.request_id.as_deref())
                .bind(e.state_before.map(LeadState::as_str))
                .bind(e.state_after.map(LeadState::as_str))
                .bind(e.source_channel.map(SourceChannel::as_str))
                .bind(e.policy_version.as_str())
                .bind(e.body.as_str())
                .bind(s.seal.key_id.as_str())
                .bind(s.seal.tag.as_slice())
        });
        (&mut *tx).execute(query).await?;
    }
    tx.commit().await
}

/// Builds leads `from..to` of step `step`, spread evenly over its year, on blocking threads.
async fn build(
    from: u64,
    to: u64,
    first: u64,
    count: u64,
    step: usize,
    keys: Arc<AuditKeys>,
) -> (Vec<LeadRow>, Vec<SealedEntry>) {
    tokio::task::spawn_blocking(move || {
        let policy = Policy::default_policy();
        let mut leads = Vec::new();
        let mut entries = Vec::new();
        for index in from..to {
            let created = trail::created_at(index, first, count, step);
            let (lead, trail) = trail::lead(index, created, &policy);
            leads.push(LeadRow::of(&lead));
            entries.extend(keys.seal_all(&trail));
        }
        (leads, entries)
    })
    .await
    .expect("building leads")
}

/// What a database holds after a step.
pub struct Grown {
    pub entries: i64,
    pub seconds: f64,
}

/// Adds leads `first..last` (step `step`) to the database at `url` (migrated by leadgate), then
/// chains their entries with leadgate's sequencer.
pub async fn grow(url: &str, first: u64, last: u64, step: usize, keys: &AuditKeys) -> Grown {
    let started = Instant::now();
    let store = leadgate::store::connect(&ConnectOptions {
        url: url.to_owned(),
        max_connections: 4,
        acquire_timeout: std::time::Duration::from_secs(60),
        ..ConnectOptions::default()
    })
    .await
    .expect("the store");
    store.migrate().await.expect("migrations");
    let keys = Arc::new(keys.clone());
    let count = last - first;
    let mut written_entries = 0usize;
    // Build the next chunk while the previous one is written.
    let mut next = Some(tokio::spawn(build(
        first,
        (first + CHUNK).min(last),
        first,
        count,
        step,
        keys.clone(),
    )));
    let mut from = first;
    let sqlite = url.starts_with("sqlite:");
    let pg = if sqlite {
        None
    } else {
        Some(sqlx::PgPool::connect(url).await.expect("PostgreSQL"))
    };
    let lite = if sqlite {
        Some(sqlx::SqlitePool::connect(url).await.expect("SQLite"))
    } else {
        None
    };
    // Entries recorded after the chunk being written (SLA breaches, revisits, decisions made
    // months after the submission) wait for the chunk of their time, as the sweeper records them
    // in service: the trail is then in time order, as a trail grown in service is.
    let mut later: Vec<SealedEntry> = Vec::new();
    while let Some(building) = next.take() {
        let (leads, built) = building.await.unwrap();
        let to = (from + CHUNK).min(last);
        if to < last {
            let after = (to + CHUNK).min(last);
            next = Some(tokio::spawn(build(to, after, first, count, step, keys.clone())));
        }
        later.extend(built);
        // Stable: a lead's entries keep their order.
        later.sort_by_key(|sealed| sealed.entry.recorded_at);
        let entries: Vec<SealedEntry> = if to < last {
            let horizon = trail::created_at(to - 1, first, count, step);
            let due = later.partition_point(|sealed| sealed.entry.recorded_at <= horizon);
            later.drain(..due).collect()
        } else {
            std::mem::take(&mut later)
        };
        match (&pg, &lite) {
            (Some(pool), _) => write_chunk(pool, &leads, &entries).await,
            (_, Some(pool)) => write_chunk(pool, &leads, &entries).await,
            _ => unreachable!(),
        }
        .expect("a chunk written");
        written_entries += entries.len();
        from = to;
        chain(store.as_ref(), &keys).await;
        eprint!(
            "\r  {} leads of {} written, {written_entries} entries chained ({:.0} s)   ",
            to - first,
            count,
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!();
    if let Some(pool) = &pg {
        pool.execute("VACUUM ANALYZE").await.expect("VACUUM ANALYZE");
    }
    if let Some(pool) = &lite {
        pool.execute("ANALYZE").await.expect("ANALYZE");
    }
    Grown {
        entries: store.chain_head().await.expect("the chain head").position,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Chains everything in the inbox.
async fn chain(store: &dyn Store, keys: &AuditKeys) {
    loop {
        let admission = Admission {
            keys,
            accept_unsealed_until: None,
            now: chrono::Utc::now(),
        };
        let done = store
            .sequence(SEQUENCE_BATCH, &admission)
            .await
            .expect("sequencing");
        assert!(
            done.quarantined.is_empty(),
            "seeded entries were refused: {:?}",
            done.quarantined
        );
        if done.chained == 0 {
            break;
        }
    }
}
