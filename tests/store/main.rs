//! The store's contract, on SQLite and PostgreSQL: what the gRPC tests cannot see from outside —
//! how each write ends, the order the sweeper reads due leads in, how the sequencer chains and
//! sets aside, list pages, write health and migrations. Each test runs on a fresh database,
//! through [`Store`] as the app uses it.

#[path = "../api/helpers.rs"]
#[allow(dead_code, reason = "the store suite uses part of the API suite's helpers")]
mod helpers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as Span, TimeZone, Utc};
use helpers::{Backend, SEALED_INBOX_COLUMNS, TestDatabase, sealed_inbox_row, test_audit_keys};
use leadgate::domain::audit::{
    Admission, AuditEntry, AuditKeys, AuditKind, ChainTip, Refusal, SealedEntry, Verifier,
};
use leadgate::domain::engine::{self, Command, Context, EventInput, OverrideRequest};
use leadgate::domain::facts::{ContactAttempt, SlaClock};
use leadgate::domain::funnel::EntryFacts;
use leadgate::domain::lead::Lead;
use leadgate::domain::lifecycle::LeadState;
use leadgate::domain::policy::Policy;
use leadgate::domain::query::{
    AuditOrder, Filter, LeadOrder, ListQuery, NoField, Order, PolicyOrder, QuarantineOrder, Value,
};
use leadgate::domain::values::{
    Code, Company, Contact, ContactChannel, ContactOutcome, CountryCode, DisqualificationReason, Email,
    EngagementKind, LeadId, Profile, Seniority, SlaTrigger, Source, SourceChannel, Timestamp,
};
use leadgate::store::{
    ConnectOptions, DueLead, IdempotencyKey, IdempotencyRecord, LeadWrite, MergeWrite, PolicyRecord,
    Sequenced, Store, StoreError, WriteOutcome,
};
use sqlx::{Connection, Executor};
use tokio_stream::StreamExt;
use uuid::Uuid;

/// A Monday morning in March 2026.
fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn minutes(n: i64) -> Timestamp {
    t0() + Span::minutes(n)
}

/// A store on a fresh database.
struct Fixture {
    store: Arc<dyn Store>,
    /// Held for as long as the test runs: dropping it removes the database.
    db: TestDatabase,
}

/// A store over `db`; on SQLite, with its file capped at `sqlite_max_size` bytes.
async fn open(db: &TestDatabase, sqlite_max_size: Option<u64>) -> Arc<dyn Store> {
    leadgate::store::connect(&ConnectOptions {
        url: db.url.clone(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: None,
        sqlite_max_size,
    })
    .await
    .unwrap()
}

async fn migrated(backend: &Backend) -> Fixture {
    let db = TestDatabase::create(backend).await;
    let store = open(&db, None).await;
    store.migrate().await.unwrap();
    Fixture { store, db }
}

/// A profile that fits the default policy: its demo requests start SLA clocks.
fn fit_profile(email: &str) -> Profile {
    let mut profile = profile(email);
    profile.contact.seniority = Some(Seniority::Executive);
    profile.contact.job_function = Some(Code::parse("finance").unwrap());
    profile.company.industry = Some(Code::parse("manufacturing").unwrap());
    profile.company.employee_count = Some(300);
    profile.company.country = Some(CountryCode::parse("FR").unwrap());
    profile
}

fn profile(email: &str) -> Profile {
    Profile {
        contact: Contact {
            email: Email::parse(email).unwrap(),
            given_name: "Claire".into(),
            family_name: "Martin".into(),
            phone: String::new(),
            job_title: String::new(),
            seniority: None,
            job_function: None,
        },
        company: Company::default(),
        source: Source {
            channel: SourceChannel::Website,
            campaign: String::new(),
        },
        external_reference: String::new(),
    }
}

/// Lead number `n` (ids sort as the numbers do), created at `at`, and its entries sealed as
/// leadgate seals them.
fn new_lead(n: u128, email: &str, at: Timestamp) -> (Lead, Vec<SealedEntry>) {
    new_lead_sealed_with(&test_audit_keys(), n, email, at)
}

/// [`new_lead`], its entries sealed with `keys`.
fn new_lead_sealed_with(keys: &AuditKeys, n: u128, email: &str, at: Timestamp) -> (Lead, Vec<SealedEntry>) {
    let policy = Policy::default_policy();
    let ctx = Context {
        now: at,
        actor: "store-test",
        request_id: None,
        policy: &policy,
    };
    let applied = engine::create(LeadId::from_uuid(Uuid::from_u128(n)), profile(email), &[], &ctx).unwrap();
    assert!(!applied.entries.is_empty());
    (applied.lead, keys.seal_all(&applied.entries))
}

/// The first answer to request `id`, given at `at`.
fn request(id: &str, at: Timestamp) -> IdempotencyRecord {
    IdempotencyRecord {
        key: IdempotencyKey {
            principal: "store-test".into(),
            request_id: id.into(),
        },
        method: "SubmitLead".into(),
        fingerprint: [7; 32],
        response: format!("{{\"answer\":\"{id}\"}}"),
        created_at: at,
    }
}

async fn insert(
    store: &dyn Store,
    lead: &Lead,
    entries: &[SealedEntry],
    request: Option<&IdempotencyRecord>,
) -> WriteOutcome {
    let write = LeadWrite {
        lead,
        entries,
        idempotency: request,
        unless_suppressed: &[],
    };
    store.insert_lead(write).await.unwrap()
}

async fn update(
    store: &dyn Store,
    lead: &Lead,
    entries: &[SealedEntry],
    request: Option<&IdempotencyRecord>,
    expected_revision: i64,
) -> WriteOutcome {
    let write = LeadWrite {
        lead,
        entries,
        idempotency: request,
        unless_suppressed: &[],
    };
    store.update_lead(write, expected_revision).await.unwrap()
}

/// The lead after a change: the next revision, a minute later.
fn changed(lead: &Lead) -> Lead {
    Lead {
        revision: lead.revision + 1,
        updated_at: lead.updated_at + Span::minutes(1),
        reached: !lead.reached,
        ..lead.clone()
    }
}

async fn inbox_entries(store: &dyn Store) -> i64 {
    store.inbox_stats().await.unwrap().entries
}

fn admission(keys: &AuditKeys) -> Admission<'_> {
    Admission {
        keys,
        accept_unsealed_until: None,
        now: t0(),
    }
}

/// Keys leadgate does not hold: what they seal is not leadgate's.
fn foreign_keys() -> AuditKeys {
    AuditKeys::parse("foreign:Zm9yZWlnbi1rZXktZm9yZWlnbi1rZXktZm9yZWlnbi1rZXk=").unwrap()
}

fn page<F, O: Order>(order: O, limit: usize, after: Option<Vec<Value>>) -> ListQuery<F, O> {
    let mut query = ListQuery::new(Filter::default(), order, limit);
    query.after = after;
    query
}

fn policy_record(version: &str, at: Timestamp) -> (PolicyRecord, SealedEntry) {
    let record = PolicyRecord {
        version: version.into(),
        name: format!("policy {version}"),
        content: format!("version = \"{version}\""),
        activated_at: at,
    };
    let entry = AuditEntry {
        lead: None,
        kind: AuditKind::PolicyActivated,
        recorded_at: at,
        actor: "store-test".into(),
        request_id: None,
        state_before: None,
        state_after: None,
        source_channel: None,
        policy_version: version.into(),
        body: "{}".into(),
    };
    let sealed = test_audit_keys().seal_all(&[entry]).remove(0);
    (record, sealed)
}

/// Makes the database refuse writes for lack of room (SQLite, under its size cap) or
/// permission (PostgreSQL, read-only as after a failover to a standby), or accept them again.
async fn refuse_writes(db: &TestDatabase, refuse: bool, sqlite_max_size: u64) {
    if db.is_sqlite() {
        // Another connection, without the cap, fills the file to just below it, or frees that.
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        if refuse {
            let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let room = sqlite_max_size as i64 - pages * page_size;
            let filler = room - 32 * 1024;
            assert!(
                filler > 0,
                "the migrated database fits under the cap with room to fill"
            );
            conn.execute(
                format!("CREATE TABLE filler (b BLOB); INSERT INTO filler VALUES (randomblob({filler}))")
                    .as_str(),
            )
            .await
            .unwrap();
        } else {
            conn.execute("DROP TABLE filler").await.unwrap();
        }
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        conn.execute("SET default_transaction_read_only = off")
            .await
            .unwrap();
        let name: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let setting = match refuse {
            true => "SET default_transaction_read_only = on",
            false => "RESET default_transaction_read_only",
        };
        conn.execute(format!("ALTER DATABASE \"{name}\" {setting}").as_str())
            .await
            .unwrap();
        // The store's sessions end: its next ones open with the new setting.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    }
}

/// `loser` merged into `winner` at `at` by the engine, its entries sealed.
fn merged(winner: &Lead, loser: &Lead, at: Timestamp) -> (Lead, Lead, Vec<SealedEntry>) {
    let policy = Policy::default_policy();
    let ctx = Context {
        now: at,
        actor: "store-test",
        request_id: None,
        policy: &policy,
    };
    let m = engine::merge(winner, loser, "", &ctx).unwrap();
    (m.winner, m.loser, test_audit_keys().seal_all(&m.entries))
}

async fn merge_write(
    store: &dyn Store,
    (winner, loser, entries): &(Lead, Lead, Vec<SealedEntry>),
    revisions: (i64, i64),
    request: Option<&IdempotencyRecord>,
) -> WriteOutcome {
    store
        .merge_leads(MergeWrite {
            winner,
            winner_revision: revisions.0,
            loser,
            loser_revision: revisions.1,
            entries,
            idempotency: request,
        })
        .await
        .unwrap()
}

contract! {
    async fn a_merge_writes_both_leads_its_entries_and_its_request_id_or_nothing(backend: Backend) {
        let f = migrated(&backend).await;
        let (a, a_entries) = new_lead(1, "a@acme.fr", t0());
        let (b, b_entries) = new_lead(2, "b@acme.fr", t0());
        insert(&*f.store, &a, &a_entries, None).await;
        insert(&*f.store, &b, &b_entries, None).await;
        let before = inbox_entries(&*f.store).await;
        let merge = merged(&a, &b, minutes(1));

        // Either lead at another revision: nothing is written, the request id stays free.
        let first = request("merge-1", minutes(1));
        for stale in [(a.revision + 1, b.revision), (a.revision, b.revision + 1)] {
            let outcome = merge_write(&*f.store, &merge, stale, Some(&first)).await;
            assert_eq!(outcome, WriteOutcome::RevisionConflict, "{stale:?}");
        }
        assert_eq!(f.store.get_lead(a.id).await.unwrap().as_ref(), Some(&a));
        assert_eq!(f.store.get_lead(b.id).await.unwrap().as_ref(), Some(&b));
        assert_eq!(f.store.merge_target(b.id).await.unwrap(), None);
        assert_eq!(f.store.find_idempotency(&first.key).await.unwrap(), None);
        assert_eq!(inbox_entries(&*f.store).await, before);

        let revisions = (a.revision, b.revision);
        assert_eq!(merge_write(&*f.store, &merge, revisions, Some(&first)).await, WriteOutcome::Written);
        assert_eq!(f.store.get_lead(a.id).await.unwrap().as_ref(), Some(&merge.0));
        assert_eq!(f.store.get_lead(b.id).await.unwrap().as_ref(), Some(&merge.1));
        assert_eq!(f.store.merge_target(b.id).await.unwrap(), Some(a.id));
        assert_eq!(f.store.merge_target(a.id).await.unwrap(), None);
        assert_eq!(f.store.find_idempotency(&first.key).await.unwrap(), Some(first.clone()));
        assert_eq!(inbox_entries(&*f.store).await, before + merge.2.len() as i64);
        // The loser is not listed any more; its email still finds it (the app follows it).
        let listed = f.store.list_leads(&page(LeadOrder::CreateTime, 10, None)).await.unwrap();
        assert_eq!(listed.iter().map(|l| l.id).collect::<Vec<_>>(), [a.id]);
        assert_eq!(f.store.find_lead_by_email(&b.profile.contact.email).await.unwrap().map(|l| l.id), Some(b.id));
        // The same request id again answers first, whatever else conflicts.
        let again = merge_write(&*f.store, &merge, revisions, Some(&first)).await;
        assert_eq!(again, WriteOutcome::RequestIdTaken);
    }

    async fn a_lead_merged_in_turn_takes_its_aliases_along(backend: Backend) {
        let f = migrated(&backend).await;
        let mut leads = Vec::new();
        for (n, email) in [(1, "a@acme.fr"), (2, "b@acme.fr"), (3, "c@acme.fr")] {
            let (lead, entries) = new_lead(n, email, t0());
            insert(&*f.store, &lead, &entries, None).await;
            leads.push(lead);
        }
        let (a, b, c) = (&leads[0], &leads[1], &leads[2]);
        let b_into_a = merged(a, b, minutes(1));
        assert_eq!(merge_write(&*f.store, &b_into_a, (a.revision, b.revision), None).await, WriteOutcome::Written);
        let a = &b_into_a.0;
        let a_into_c = merged(c, a, minutes(2));
        assert_eq!(merge_write(&*f.store, &a_into_c, (c.revision, a.revision), None).await, WriteOutcome::Written);
        assert_eq!(f.store.merge_target(a.id).await.unwrap(), Some(c.id));
        assert_eq!(f.store.merge_target(b.id).await.unwrap(), Some(c.id), "one read from b to c");
        // b's own record still says where it was merged first.
        assert_eq!(f.store.get_lead(b.id).await.unwrap().unwrap().merged_into, Some(a.id));
        assert_eq!(f.store.leads_by_state().await.unwrap().iter().map(|(_, n)| n).sum::<i64>(), 1);
    }

    async fn a_new_lead_is_written_with_its_entries_and_its_request_id(backend: Backend) {
        let f = migrated(&backend).await;
        let (lead, entries) = new_lead(1, "claire@acme.fr", t0());
        let first = request("req-1", t0());
        assert_eq!(insert(&*f.store, &lead, &entries, Some(&first)).await, WriteOutcome::Written);

        assert_eq!(f.store.get_lead(lead.id).await.unwrap().as_ref(), Some(&lead));
        let email = &lead.profile.contact.email;
        assert_eq!(f.store.find_lead_by_email(email).await.unwrap().as_ref(), Some(&lead));
        assert_eq!(f.store.find_idempotency(&first.key).await.unwrap(), Some(first));
        assert_eq!(inbox_entries(&*f.store).await, entries.len() as i64);
    }

    async fn a_known_email_is_email_taken_and_nothing_is_written(backend: Backend) {
        let f = migrated(&backend).await;
        let (lead, entries) = new_lead(1, "claire@acme.fr", t0());
        insert(&*f.store, &lead, &entries, Some(&request("req-1", t0()))).await;

        let (same_email, its_entries) = new_lead(2, "claire@acme.fr", minutes(1));
        let second = request("req-2", minutes(1));
        let outcome = insert(&*f.store, &same_email, &its_entries, Some(&second)).await;

        assert_eq!(outcome, WriteOutcome::EmailTaken);
        assert_eq!(f.store.get_lead(same_email.id).await.unwrap(), None);
        assert_eq!(f.store.find_idempotency(&second.key).await.unwrap(), None);
        assert_eq!(inbox_entries(&*f.store).await, entries.len() as i64);
    }

    async fn a_used_request_id_is_request_id_taken_and_nothing_is_written(backend: Backend) {
        let f = migrated(&backend).await;
        let first = request("req-1", t0());
        let (lead, entries) = new_lead(1, "claire@acme.fr", t0());
        insert(&*f.store, &lead, &entries, Some(&first)).await;

        let (other, its_entries) = new_lead(2, "marc@acme.fr", minutes(1));
        let again = request("req-1", minutes(1));
        let outcome = insert(&*f.store, &other, &its_entries, Some(&again)).await;

        assert_eq!(outcome, WriteOutcome::RequestIdTaken);
        assert_eq!(f.store.get_lead(other.id).await.unwrap(), None);
        assert_eq!(f.store.find_idempotency(&first.key).await.unwrap(), Some(first));
        assert_eq!(inbox_entries(&*f.store).await, entries.len() as i64);
    }

    /// The documented answer when both conflict: the request id, so that a replay always gets
    /// the first answer back rather than being written again as a resubmission.
    async fn a_known_email_under_a_used_request_id_is_request_id_taken(backend: Backend) {
        let f = migrated(&backend).await;
        let first = request("req-1", t0());
        let (lead, entries) = new_lead(1, "claire@acme.fr", t0());
        insert(&*f.store, &lead, &entries, Some(&first)).await;

        let (replayed, its_entries) = new_lead(2, "claire@acme.fr", minutes(1));
        let outcome = insert(&*f.store, &replayed, &its_entries, Some(&request("req-1", minutes(1)))).await;

        assert_eq!(outcome, WriteOutcome::RequestIdTaken);
        assert_eq!(f.store.get_lead(replayed.id).await.unwrap(), None);
        assert_eq!(inbox_entries(&*f.store).await, entries.len() as i64);
    }

    async fn an_update_from_the_read_revision_is_written_and_one_from_a_stale_revision_is_a_conflict(
        backend: Backend
    ) {
        let f = migrated(&backend).await;
        let (lead, entries) = new_lead(1, "claire@acme.fr", t0());
        insert(&*f.store, &lead, &entries, None).await;

        let second = changed(&lead);
        assert_eq!(update(&*f.store, &second, &entries, None, 1).await, WriteOutcome::Written);
        assert_eq!(f.store.get_lead(lead.id).await.unwrap().as_ref(), Some(&second));

        let from_stale = changed(&lead);
        assert_eq!(update(&*f.store, &from_stale, &entries, None, 1).await, WriteOutcome::RevisionConflict);
        assert_eq!(f.store.get_lead(lead.id).await.unwrap().as_ref(), Some(&second));
        assert_eq!(inbox_entries(&*f.store).await, 2 * entries.len() as i64);
    }

    async fn an_erasure_is_revision_checked_forgets_the_leads_answers_and_suppresses_its_email(
        backend: Backend
    ) {
        let f = migrated(&backend).await;
        let (lead, entries) = new_lead(1, "claire@acme.fr", t0());
        // An answer naming the lead, and one about another.
        let mut naming = request("form-1", t0());
        naming.response = format!("{{\"lead\":{{\"id\":\"{}\"}}}}", lead.id.as_uuid());
        insert(&*f.store, &lead, &entries, Some(&naming)).await;
        let (other, other_entries) = new_lead(2, "other@acme.fr", t0());
        insert(&*f.store, &other, &other_entries, Some(&request("form-2", t0()))).await;
        let hash = [9u8; 32];
        assert!(!f.store.email_suppressed(&[hash]).await.unwrap());

        let erased = Lead { erased_at: Some(minutes(5)), ..changed(&lead) };
        let write = |lead| LeadWrite { lead, entries: &entries, idempotency: None, unless_suppressed: &[] };
        let erasure = leadgate::store::ErasureWrite { suppressed_email: &hash, forget_answers: true };
        let stale = f.store.erase_lead(write(&erased), 7, erasure).await.unwrap();
        assert_eq!(stale, WriteOutcome::RevisionConflict);
        assert!(!f.store.email_suppressed(&[hash]).await.unwrap(), "nothing written");
        assert!(f.store.find_idempotency(&naming.key).await.unwrap().is_some());

        assert_eq!(f.store.erase_lead(write(&erased), 1, erasure).await.unwrap(), WriteOutcome::Written);
        assert_eq!(f.store.get_lead(lead.id).await.unwrap(), Some(erased));
        assert!(f.store.email_suppressed(&[[1; 32], hash]).await.unwrap());
        assert!(f.store.find_idempotency(&naming.key).await.unwrap().is_none(), "its answer forgotten");
        assert!(f.store.find_idempotency(&request("form-2", t0()).key).await.unwrap().is_some());

        // A new lead whose email's hash is suppressed is not written (as for a taken email).
        let (back, back_entries) = new_lead(3, "claire.back@acme.fr", t0());
        let guarded = |unless_suppressed| LeadWrite { lead: &back, entries: &back_entries, idempotency: None, unless_suppressed };
        let suppressed = [[1; 32], hash];
        assert_eq!(f.store.insert_lead(guarded(&suppressed)).await.unwrap(), WriteOutcome::EmailTaken);
        assert_eq!(f.store.get_lead(back.id).await.unwrap(), None);
        let not_suppressed = [[1; 32]];
        assert_eq!(f.store.insert_lead(guarded(&not_suppressed)).await.unwrap(), WriteOutcome::Written);
        let unchanged_ids = vec![other.id, back.id];

        // The retention sweep lists leads not erased, least recently changed first.
        let unchanged = f.store.leads_unchanged_since(minutes(60), 10).await.unwrap();
        assert_eq!(unchanged, unchanged_ids);
        assert_eq!(f.store.leads_unchanged_since(t0(), 10).await.unwrap(), []);
    }

    /// An import's batch: its new leads go in together, a later write may update one of them,
    /// and when one new lead conflicts (email taken, request id used, email suppressed) it alone
    /// is refused and its neighbours are written, with their entries and request ids.
    async fn a_batch_writes_its_new_leads_together_and_refuses_a_conflicting_one_alone(backend: Backend) {
        use leadgate::store::BatchWrite;
        let f = migrated(&backend).await;
        let (known, known_entries) = new_lead(1, "known@acme.fr", t0());
        insert(&*f.store, &known, &known_entries, Some(&request("used", t0()))).await;
        let (gone, gone_entries) = new_lead(2, "gone@acme.fr", t0());
        insert(&*f.store, &gone, &gone_entries, None).await;
        let hash = [9u8; 32];
        let erased = Lead { erased_at: Some(minutes(1)), ..changed(&gone) };
        let erasure = leadgate::store::ErasureWrite { suppressed_email: &hash, forget_answers: false };
        let write = LeadWrite { lead: &erased, entries: &gone_entries, idempotency: None, unless_suppressed: &[] };
        assert_eq!(f.store.erase_lead(write, gone.revision, erasure).await.unwrap(), WriteOutcome::Written);

        let leads: Vec<(Lead, Vec<SealedEntry>)> = (10..15)
            .map(|n| new_lead(n, &format!("new-{n}@acme.fr"), minutes(2)))
            .collect();
        let requests: Vec<IdempotencyRecord> = (10..15).map(|n| request(&format!("row-{n}"), minutes(2))).collect();
        let clean = [[1u8; 32]];
        let new = |i: usize| BatchWrite {
            write: LeadWrite {
                lead: &leads[i].0,
                entries: &leads[i].1,
                idempotency: Some(&requests[i]),
                unless_suppressed: &clean,
            },
            expected_revision: None,
        };

        // New leads and an update of the first: the new ones written together, then the update.
        let resubmitted = changed(&leads[0].0);
        let update = BatchWrite {
            write: LeadWrite { lead: &resubmitted, entries: &leads[0].1, idempotency: None, unless_suppressed: &[] },
            expected_revision: Some(leads[0].0.revision),
        };
        let before = inbox_entries(&*f.store).await;
        let outcomes: Vec<_> = f.store.write_leads(&[new(0), update, new(1)]).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(outcomes, [WriteOutcome::Written; 3]);
        assert_eq!(f.store.get_lead(leads[0].0.id).await.unwrap(), Some(resubmitted.clone()));
        assert_eq!(f.store.get_lead(leads[1].0.id).await.unwrap().as_ref(), Some(&leads[1].0));
        assert_eq!(f.store.find_idempotency(&requests[1].key).await.unwrap().as_ref(), Some(&requests[1]));
        let written_entries = (2 * leads[0].1.len() + leads[1].1.len()) as i64;
        assert_eq!(inbox_entries(&*f.store).await, before + written_entries);

        // Each kind of conflict beside a clean new lead: refused alone.
        let (taken, taken_entries) = new_lead(20, "known@acme.fr", minutes(2));
        let (reused, reused_entries) = new_lead(21, "reused@acme.fr", minutes(2));
        let (back, back_entries) = new_lead(22, "gone-again@acme.fr", minutes(2));
        let reused_request = request("used", minutes(2));
        let suppressed = [[1u8; 32], hash];
        let cases = [
            (&taken, &taken_entries, None, &[][..], WriteOutcome::EmailTaken),
            (&reused, &reused_entries, Some(&reused_request), &[][..], WriteOutcome::RequestIdTaken),
            (&back, &back_entries, None, &suppressed[..], WriteOutcome::EmailTaken),
        ];
        for (i, (lead, entries, idempotency, unless_suppressed, expected)) in cases.into_iter().enumerate() {
            let neighbour = 2 + i;
            let refused = BatchWrite {
                write: LeadWrite { lead, entries, idempotency, unless_suppressed },
                expected_revision: None,
            };
            let before = inbox_entries(&*f.store).await;
            let outcomes: Vec<_> = f.store.write_leads(&[refused, new(neighbour)]).await.into_iter().map(Result::unwrap).collect();
            assert_eq!(outcomes, [expected, WriteOutcome::Written], "case {i}");
            assert_eq!(f.store.get_lead(lead.id).await.unwrap(), None, "case {i}");
            assert_eq!(f.store.get_lead(leads[neighbour].0.id).await.unwrap().as_ref(), Some(&leads[neighbour].0));
            let kept = f.store.find_idempotency(&requests[neighbour].key).await.unwrap();
            assert_eq!(kept.as_ref(), Some(&requests[neighbour]), "case {i}");
            assert_eq!(inbox_entries(&*f.store).await, before + leads[neighbour].1.len() as i64, "case {i}");
        }
        let first = f.store.find_idempotency(&request("used", t0()).key).await.unwrap();
        assert_eq!(first, Some(request("used", t0())), "the used request id keeps its first answer");
    }

    /// The account projection's write moves its position only from where it started, with its
    /// accounts and contacts, or writes nothing; contacts are set and removed.
    async fn the_account_projection_writes_from_its_position_or_not_at_all(backend: Backend) {
        use leadgate::domain::account::{AccountKey, AccountState, AccountView, CommitteeRole, Contribution, Rollup};
        use leadgate::domain::facts::Points;
        use leadgate::store::{AccountProjectionWrite, AccountRecord};
        let f = migrated(&backend).await;
        assert_eq!(f.store.account_position().await.unwrap(), 0);
        let acme = AccountKey::Domain("acme.fr".into());
        let lead = LeadId::from_uuid(Uuid::from_u128(1));
        let contribution = Contribution {
            engagement: Points(1500),
            role: Some(CommitteeRole::EconomicBuyer),
            involved_at: Some(t0()),
            left: false,
            qualified: true,
            customer: false,
        };
        let account = AccountRecord {
            key: acme.clone(),
            view: AccountView {
                state: AccountState::Qualified,
                rollup: Rollup { contacts: 1, engagement: Points(1500), qualified_contacts: 1, customer_contacts: 0 },
            },
            created_at: t0(),
            updated_at: t0(),
        };
        let contacts = [(lead, Some((acme.clone(), contribution.clone())))];
        let write = |from, to, accounts, contacts| AccountProjectionWrite { from, to, accounts, contacts };

        // From a position the projection is not at: nothing written.
        let stale = write(5, 9, std::slice::from_ref(&account), &contacts[..]);
        assert!(!f.store.write_account_projection(stale).await.unwrap());
        assert_eq!(f.store.account_position().await.unwrap(), 0);
        assert_eq!(f.store.accounts(std::slice::from_ref(&acme)).await.unwrap(), []);

        assert!(f.store.write_account_projection(write(0, 9, std::slice::from_ref(&account), &contacts[..])).await.unwrap());
        assert_eq!(f.store.account_position().await.unwrap(), 9);
        let found = f.store.accounts(std::slice::from_ref(&acme)).await.unwrap();
        assert_eq!(found, std::slice::from_ref(&account));
        let stored = f.store.account_contacts(&[lead]).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!((stored[0].key.clone(), stored[0].contribution.clone()), (acme.clone(), contribution));

        // The same run again (another replica's): refused. Then the contact leaves the account.
        assert!(!f.store.write_account_projection(write(0, 9, &[], &[])).await.unwrap());
        let emptied = AccountRecord {
            view: AccountView { state: AccountState::Unengaged, rollup: Rollup::default() },
            updated_at: minutes(1),
            ..account.clone()
        };
        let removed = [(lead, None)];
        assert!(f.store.write_account_projection(write(9, 12, std::slice::from_ref(&emptied), &removed[..])).await.unwrap());
        assert_eq!(f.store.account_contacts(&[lead]).await.unwrap(), []);
        assert_eq!(f.store.accounts(&[acme]).await.unwrap(), [emptied]);
    }

    async fn an_update_under_a_used_request_id_is_request_id_taken_from_any_revision(backend: Backend) {
        let f = migrated(&backend).await;
        let first = request("req-1", t0());
        let (lead, entries) = new_lead(1, "claire@acme.fr", t0());
        insert(&*f.store, &lead, &entries, Some(&first)).await;

        let again = request("req-1", minutes(1));
        let next = changed(&lead);
        for expected_revision in [lead.revision, lead.revision + 5] {
            let outcome = update(&*f.store, &next, &entries, Some(&again), expected_revision).await;
            assert_eq!(outcome, WriteOutcome::RequestIdTaken, "from revision {expected_revision}");
        }
        assert_eq!(f.store.get_lead(lead.id).await.unwrap().as_ref(), Some(&lead));
        assert_eq!(inbox_entries(&*f.store).await, entries.len() as i64);
    }

    async fn a_batch_read_returns_the_leads_that_exist(backend: Backend) {
        let f = migrated(&backend).await;
        let mut written = Vec::new();
        for n in 1..=3 {
            let (lead, entries) = new_lead(n, &format!("lead-{n}@acme.fr"), minutes(n as i64));
            insert(&*f.store, &lead, &entries, None).await;
            written.push(lead);
        }
        let ids = [written[2].id, LeadId::from_uuid(Uuid::from_u128(99)), written[0].id];
        let mut read = f.store.get_leads(&ids).await.unwrap();
        read.sort_by_key(|l| l.id);
        assert_eq!(read, vec![written[0].clone(), written[2].clone()]);
        assert_eq!(f.store.get_leads(&[]).await.unwrap(), Vec::<Lead>::new());
    }

    async fn due_leads_come_by_due_time_then_id_and_resume_after_the_cursor(backend: Backend) {
        let f = migrated(&backend).await;
        let clock = |due_at: Timestamp| SlaClock {
            number: 1,
            trigger: SlaTrigger::DemoRequest,
            started_at: t0(),
            due_at,
            first_touch_at: None,
            breached_at: None,
            attempts: 0,
        };
        let lead = |n: u128, state: LeadState, sla: Option<SlaClock>, revisit_at: Option<Timestamp>| {
            let (lead, entries) = new_lead(n, &format!("lead-{n}@acme.fr"), t0());
            (Lead { state, sla, revisit_at, ..lead }, entries)
        };
        let (qualified, nurturing) = (LeadState::MarketingQualified, LeadState::Nurturing);
        let leads = [
            // Due: a running clock, a nurture revisit, and a clock due with the first (the id
            // orders them).
            lead(1, qualified, Some(clock(minutes(2))), None),
            lead(2, nurturing, None, Some(minutes(1))),
            lead(3, qualified, Some(clock(minutes(2))), None),
            // Not due: a clock due later, a touched clock, a breached one, a revisit date left
            // on a lead that is no longer nurtured.
            lead(4, qualified, Some(clock(minutes(10))), None),
            lead(5, qualified, Some(SlaClock { first_touch_at: Some(t0()), ..clock(minutes(1)) }), None),
            lead(6, qualified, Some(SlaClock { breached_at: Some(minutes(1)), ..clock(minutes(1)) }), None),
            lead(7, LeadState::Lead, None, Some(minutes(1))),
        ];
        for (lead, entries) in &leads {
            assert_eq!(insert(&*f.store, lead, entries, None).await, WriteOutcome::Written);
        }
        let due = |n: u128, at: Timestamp| DueLead {
            due: at.timestamp_micros(),
            id: LeadId::from_uuid(Uuid::from_u128(n)),
        };
        let expected = vec![due(2, minutes(1)), due(1, minutes(2)), due(3, minutes(2))];
        let now = minutes(5);
        assert_eq!(f.store.leads_due(now, None, 10).await.unwrap(), expected);

        let first_page = f.store.leads_due(now, None, 2).await.unwrap();
        assert_eq!(first_page, expected[..2]);
        let second_page = f.store.leads_due(now, first_page.last(), 2).await.unwrap();
        assert_eq!(second_page, expected[2..]);
        assert_eq!(f.store.leads_due(now, second_page.last(), 2).await.unwrap(), vec![]);
        assert_eq!(f.store.leads_due(minutes(1) - Span::microseconds(1), None, 10).await.unwrap(), vec![]);
    }

    async fn the_sequencer_chains_what_leadgate_sealed_and_sets_the_rest_aside(backend: Backend) {
        let f = migrated(&backend).await;
        let keys = test_audit_keys();
        let (first, first_entries) = new_lead(1, "first@acme.fr", t0());
        insert(&*f.store, &first, &first_entries, None).await;
        // Entries sealed with keys leadgate does not hold: not leadgate's, never chained.
        let (forged, forged_entries) = new_lead_sealed_with(&foreign_keys(), 2, "forged@acme.fr", minutes(1));
        insert(&*f.store, &forged, &forged_entries, None).await;
        let (last, last_entries) = new_lead(3, "last@acme.fr", minutes(2));
        insert(&*f.store, &last, &last_entries, None).await;

        let done = f.store.sequence(1000, &admission(&keys)).await.unwrap();

        let chained = (first_entries.len() + last_entries.len()) as i64;
        assert_eq!(done.chained as i64, chained);
        assert_eq!(done.quarantined.len(), forged_entries.len());
        assert!(done.quarantined.iter().all(|(_, refusal)| matches!(refusal, Refusal::Unauthentic(_))));
        assert_eq!(inbox_entries(&*f.store).await, 0);
        let set_aside = f.store.list_quarantine(&page::<NoField, _>(QuarantineOrder::IdDesc, 10, None)).await.unwrap();
        assert_eq!(set_aside.len(), forged_entries.len());
        assert!(set_aside.iter().all(|q| q.reason == "UNAUTHENTIC" && q.lead == Some(forged.id)));

        // The chain links every entry, in the order written, sealed.
        let head = f.store.chain_head().await.unwrap();
        assert_eq!(head.position, chained);
        let entries = f.store.chain_range(0, 100).await.unwrap();
        let leads: Vec<_> = entries.iter().map(|c| c.entry.lead).collect();
        let expected: Vec<_> = first_entries.iter().chain(&last_entries).map(|s| s.entry.lead).collect();
        assert_eq!(leads, expected);
        let sealed_from = f.store.sealed_from().await.unwrap();
        let mut verifier = Verifier::new(ChainTip::GENESIS, Some(head)).with_seals(keys.clone(), sealed_from);
        for entry in &entries {
            verifier.check(entry).unwrap();
        }
        verifier.finish(head.position).unwrap();

        // Nothing left to do.
        assert_eq!(f.store.sequence(1000, &admission(&keys)).await.unwrap(), Sequenced::default());
    }

    async fn the_sequencer_chains_at_most_its_batch_and_the_next_run_continues_the_chain(backend: Backend) {
        let f = migrated(&backend).await;
        let keys = test_audit_keys();
        let mut written = 0;
        for n in 1..=3 {
            let (lead, entries) = new_lead(n, &format!("lead-{n}@acme.fr"), minutes(n as i64));
            insert(&*f.store, &lead, &entries, None).await;
            written += entries.len();
        }
        let first = f.store.sequence(2, &admission(&keys)).await.unwrap();
        assert_eq!(first.chained, 2);
        let rest = f.store.sequence(1000, &admission(&keys)).await.unwrap();
        assert_eq!(rest.chained, written - 2);

        let entries = f.store.chain_range(0, 100).await.unwrap();
        let mut verifier = Verifier::new(ChainTip::GENESIS, None).with_seals(keys, 1);
        for entry in &entries {
            verifier.check(entry).unwrap();
        }
        assert_eq!(verifier.checked, written as i64);
        assert_eq!(f.store.chain_range(1, 1).await.unwrap(), entries[1..2]);
    }

    /// More entries than one multi-row insert into the log holds (500): the sequencer chains
    /// them in several statements, as one chain.
    async fn the_sequencer_chains_a_run_larger_than_one_log_insert(backend: Backend) {
        let f = migrated(&backend).await;
        let rows: Vec<String> = (1..=1200)
            .map(|n| sealed_inbox_row(&f.db, "POLICY_ACTIVATED", n * 1_000_000, "engine", &format!("{{\"n\":{n}}}")))
            .collect();
        f.db
            .try_execute(&format!("INSERT INTO audit_inbox {SEALED_INBOX_COLUMNS} VALUES {}", rows.join(", ")))
            .await
            .unwrap();
        let keys = test_audit_keys();
        assert_eq!(f.store.sequence(1100, &admission(&keys)).await.unwrap().chained, 1100);
        assert_eq!(f.store.sequence(1100, &admission(&keys)).await.unwrap().chained, 100);

        let mut verifier = Verifier::new(ChainTip::GENESIS, None).with_seals(keys, 1);
        let mut after = 0;
        loop {
            let entries = f.store.chain_range(after, 500).await.unwrap();
            let Some(last) = entries.last() else { break };
            after = last.position;
            for entry in &entries {
                verifier.check(entry).unwrap();
            }
        }
        assert_eq!(verifier.checked, 1200);
    }

    async fn lead_and_policy_lists_return_one_more_than_the_limit_and_resume_after_the_last_key(
        backend: Backend
    ) {
        let f = migrated(&backend).await;
        let mut leads = Vec::new();
        for n in 1..=3 {
            let (lead, entries) = new_lead(n, &format!("lead-{n}@acme.fr"), minutes(n as i64));
            insert(&*f.store, &lead, &entries, None).await;
            leads.push(lead);
        }
        let by_create_time = LeadOrder::CreateTime;
        let first = f.store.list_leads(&page(by_create_time, 2, None)).await.unwrap();
        assert_eq!(first, leads, "a page, and one more: another page exists");
        let key = vec![
            Value::Int(leads[1].created_at.timestamp_micros()),
            Value::Uuid(leads[1].id.as_uuid()),
        ];
        let next = f.store.list_leads(&page(by_create_time, 2, Some(key))).await.unwrap();
        assert_eq!(next, leads[2..]);

        let mut versions = Vec::new();
        for n in 1..=3 {
            let (record, entry) = policy_record(&format!("v{n}"), minutes(n));
            assert!(f.store.activate_policy(&record, &entry).await.unwrap());
            versions.push(record);
        }
        versions.reverse();
        let newest_first = PolicyOrder::ActivateTimeDesc;
        assert_eq!(f.store.list_policies(&page(newest_first, 2, None)).await.unwrap(), versions);
        let key = vec![
            Value::Int(versions[1].activated_at.timestamp_micros()),
            Value::Text(versions[1].version.clone()),
        ];
        let older = f.store.list_policies(&page(newest_first, 2, Some(key))).await.unwrap();
        assert_eq!(older, versions[2..]);
    }

    async fn audit_and_quarantine_lists_return_one_more_than_the_limit_and_resume_after_the_last_key(
        backend: Backend
    ) {
        let f = migrated(&backend).await;
        for n in 1..=3 {
            let (lead, entries) = new_lead(n, &format!("lead-{n}@acme.fr"), minutes(n as i64));
            insert(&*f.store, &lead, &entries, None).await;
            let email = format!("forged-{n}@acme.fr");
            let (forged, forged_entries) = new_lead_sealed_with(&foreign_keys(), 10 + n, &email, minutes(n as i64));
            insert(&*f.store, &forged, &forged_entries, None).await;
        }
        let done = f.store.sequence(1000, &admission(&test_audit_keys())).await.unwrap();
        assert!(done.chained >= 3 && done.quarantined.len() >= 3, "{done:?}");

        let by_position = AuditOrder::Position;
        let first = f.store.list_audit(&page(by_position, 2, None)).await.unwrap();
        assert_eq!(first.iter().map(|c| c.position).collect::<Vec<_>>(), [1, 2, 3]);
        let next = f.store.list_audit(&page(by_position, 2, Some(vec![Value::Int(2)]))).await.unwrap();
        assert_eq!(next.first().map(|c| c.position), Some(3));
        assert_eq!(next.len(), done.chained - 2);

        let newest_first = QuarantineOrder::IdDesc;
        let set_aside = f.store.list_quarantine(&page(newest_first, 2, None)).await.unwrap();
        assert_eq!(set_aside.len(), 3);
        assert!(set_aside.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let key = vec![Value::Int(set_aside[1].id)];
        let older = f.store.list_quarantine(&page(newest_first, 2, Some(key))).await.unwrap();
        assert_eq!(older.first(), set_aside.get(2));
        assert_eq!(older.len(), done.quarantined.len() - 2);
    }

    async fn a_policy_is_activated_once_with_its_entry(backend: Backend) {
        let f = migrated(&backend).await;
        let (record, entry) = policy_record("v7", t0());
        assert!(f.store.activate_policy(&record, &entry).await.unwrap());
        assert!(!f.store.activate_policy(&record, &entry).await.unwrap(), "already the active one");
        assert_eq!(f.store.active_policy_version().await.unwrap().as_deref(), Some("v7"));
        assert_eq!(f.store.get_policy("v7").await.unwrap(), Some(record));
        assert_eq!(f.store.get_policy("v8").await.unwrap(), None);
        assert_eq!(inbox_entries(&*f.store).await, 1);
    }

    async fn purging_forgets_the_request_ids_created_before_the_cutoff(backend: Backend) {
        let f = migrated(&backend).await;
        let (old, new) = (request("req-old", t0()), request("req-new", minutes(10)));
        for (n, record) in [(1, &old), (2, &new)] {
            let (lead, entries) = new_lead(n, &format!("lead-{n}@acme.fr"), record.created_at);
            insert(&*f.store, &lead, &entries, Some(record)).await;
        }
        assert_eq!(f.store.purge_idempotency(minutes(5)).await.unwrap(), 1);
        assert_eq!(f.store.find_idempotency(&old.key).await.unwrap(), None);
        assert_eq!(f.store.find_idempotency(&new.key).await.unwrap(), Some(new));
        assert_eq!(f.store.purge_idempotency(minutes(5)).await.unwrap(), 0);
    }

    async fn a_write_refused_for_room_or_permission_holds_writes_refused_until_a_probe_commits(
        backend: Backend
    ) {
        const CAP: u64 = 1024 * 1024;
        let db = TestDatabase::create(&backend).await;
        let store = open(&db, Some(CAP)).await;
        store.migrate().await.unwrap();
        assert!(!store.writes_refused());
        refuse_writes(&db, true, CAP).await;

        // Writes go on until the database refuses one (on PostgreSQL, the first ones may find
        // their session ended: that says nothing about room or permission).
        let mut refused = None;
        for n in 1..=1000 {
            let (lead, entries) = new_lead(n, &format!("lead-{n}@acme.fr"), t0());
            let write = LeadWrite { lead: &lead, entries: &entries, idempotency: None, unless_suppressed: &[] };
            match store.insert_lead(write).await {
                Ok(outcome) => assert_eq!(outcome, WriteOutcome::Written),
                Err(error) if error.refuses_writes() => {
                    refused = Some((lead.id, error));
                    break;
                }
                Err(StoreError::Unavailable(_)) => assert!(!store.writes_refused()),
                Err(other) => panic!("{other:?}"),
            }
        }
        let (id, error) = refused.expect("the database refuses a write");
        assert!(store.writes_refused(), "after {error:?}");
        assert_eq!(store.get_lead(id).await.unwrap(), None, "nothing of the refused write");
        assert!(store.probe_write().await.is_err(), "still refusing");
        assert!(store.writes_refused());

        refuse_writes(&db, false, CAP).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.probe_write().await.is_err() {
            assert!(Instant::now() < deadline, "a probe commits once writes fit again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!store.writes_refused());
        let (lead, entries) = new_lead(5000, "after@acme.fr", t0());
        assert_eq!(insert(&*store, &lead, &entries, None).await, WriteOutcome::Written);
    }

    async fn check_migrated_is_unavailable_until_every_migration_is_applied(backend: Backend) {
        let db = TestDatabase::create(&backend).await;
        let store = open(&db, None).await;
        match store.check_migrated().await {
            Err(StoreError::Unavailable(message)) => assert!(message.contains("migrations not applied"), "{message}"),
            other => panic!("a fresh database is not migrated: {other:?}"),
        }
        store.migrate().await.unwrap();
        store.check_migrated().await.unwrap();

        db.try_execute("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
            .await
            .unwrap();
        match store.check_migrated().await {
            Err(StoreError::Unavailable(message)) => {
                assert!(message.contains("1 migrations not applied yet"), "{message}");
                assert!(message.contains("leadgate migrate"), "{message}");
            }
            other => panic!("one migration is missing: {other:?}"),
        }
    }

    /// The facts a funnel report reads come from the log's columns: for every entry of a lead in
    /// the period, in position order, the same as its body says (SLA clocks started, touched and
    /// breached, disqualification reasons), with the channel filter the report applies.
    async fn the_funnel_reads_the_facts_of_each_entry_of_the_period(backend: Backend) {
        let f = migrated(&backend).await;
        let keys = test_audit_keys();
        let policy = Policy::default_policy();
        let ctx = |now| Context {
            now,
            actor: "store-test",
            request_id: None,
            policy: &policy,
        };
        // Microseconds in every time: the columns keep them as the bodies do.
        let at = |m: i64| minutes(m) + Span::microseconds(123_456);
        let mut facts_written = 0;
        for (n, channel) in [SourceChannel::Website, SourceChannel::TradeShow, SourceChannel::Email]
            .into_iter()
            .enumerate()
        {
            for variant in 0..4u8 {
                let start = at(n as i64 * 60 + i64::from(variant) * 10);
                let mut profile = fit_profile(&format!("lead{n}-{variant}@acme-industrie.fr"));
                profile.source.channel = channel;
                let demo = [EventInput {
                    kind: EngagementKind::DemoRequest,
                    occurred_at: Some(start),
                    subject: String::new(),
                }];
                let id = LeadId::from_uuid(Uuid::from_u128(u128::from(variant) + 10 * n as u128 + 1));
                let created = engine::create(id, profile, &demo, &ctx(start)).unwrap();
                assert_eq!(
                    insert(f.store.as_ref(), &created.lead, &keys.seal_all(&created.entries), None).await,
                    WriteOutcome::Written
                );
                let mut lead = created.lead;
                let command = match variant {
                    // Touched in time; touched after the breach; disqualified; left alone.
                    0 | 1 => Some(Command::RecordContactAttempt(ContactAttempt {
                        channel: ContactChannel::Phone,
                        outcome: ContactOutcome::Connected,
                        attempt_at: None,
                        agent: "rep-1".into(),
                    })),
                    2 => Some(Command::Override(OverrideRequest {
                        state: LeadState::Disqualified,
                        reason: "no budget this year".into(),
                        disqualification: Some(DisqualificationReason::NoBudget),
                        revisit_at: None,
                    })),
                    _ => None,
                };
                if let Some(command) = command {
                    let when = start + Span::minutes(if variant == 1 { 30 } else { 2 });
                    let applied = engine::apply(&lead, command, &ctx(when)).unwrap();
                    let entries = keys.seal_all(&applied.entries);
                    assert_eq!(
                        update(f.store.as_ref(), &applied.lead, &entries, None, lead.revision).await,
                        WriteOutcome::Written
                    );
                    lead = applied.lead;
                }
                if variant == 2 {
                    // An email opened after the disqualification: an entry a funnel leaves out.
                    let open = Command::RecordEngagement {
                        events: vec![EventInput {
                            kind: EngagementKind::EmailOpen,
                            occurred_at: None,
                            subject: String::new(),
                        }],
                    };
                    let applied = engine::apply(&lead, open, &ctx(start + Span::minutes(3))).unwrap();
                    let entries = keys.seal_all(&applied.entries);
                    assert_eq!(
                        update(f.store.as_ref(), &applied.lead, &entries, None, lead.revision).await,
                        WriteOutcome::Written
                    );
                    lead = applied.lead;
                }
                facts_written += usize::from(lead.sla.is_some());
            }
        }
        assert!(facts_written > 0, "the trail has SLA clocks");
        // A lead recorded long after the period, then one recorded in it but chained after: a
        // late entry, read from its own index after the others.
        for (n, minute) in [(90u128, 125 + 24 * 60), (91, 60)] {
            let demo = [EventInput {
                kind: EngagementKind::DemoRequest,
                occurred_at: Some(at(minute)),
                subject: String::new(),
            }];
            let profile = fit_profile(&format!("late{n}@acme-industrie.fr"));
            let created = engine::create(LeadId::from_uuid(Uuid::from_u128(n)), profile, &demo, &ctx(at(minute))).unwrap();
            assert_eq!(
                insert(f.store.as_ref(), &created.lead, &keys.seal_all(&created.entries), None).await,
                WriteOutcome::Written
            );
        }
        f.store.sequence(1000, &admission(&keys)).await.unwrap();
        let chained = f.store.chain_range(0, 1000).await.unwrap();

        // The period leaves out the first lead's entries and the last hour's.
        let (start, end) = (at(5), at(125));
        assert!(
            chained.iter().any(|c| c.entry.recorded_at < end && c.time_max > end + Span::hours(1)),
            "a late entry of the period"
        );
        for channels in [vec![], vec![SourceChannel::TradeShow, SourceChannel::Email]] {
            let expected: Vec<EntryFacts> = chained
                .iter()
                .filter(|c| c.entry.recorded_at >= start && c.entry.recorded_at < end)
                .filter(|c| channels.is_empty() || c.entry.source_channel.is_some_and(|s| channels.contains(&s)))
                .filter_map(|c| EntryFacts::of(&c.entry))
                .filter(EntryFacts::counts)
                .collect();
            let read: Vec<EntryFacts> = f
                .store
                .funnel_entries(start, end, &channels)
                .collect::<Result<_, _>>()
                .await
                .unwrap();
            assert_eq!(read, expected, "channels {channels:?}");
            assert!(read.len() < chained.len());
        }
        let all: Vec<EntryFacts> = chained.iter().filter_map(|c| EntryFacts::of(&c.entry)).collect();
        assert!(all.iter().any(|e| !e.counts()), "entries a funnel leaves out");
        assert!(all.iter().any(|e| e.sla.is_some_and(|s| s.breached)), "a breach");
        assert!(all.iter().any(|e| e.sla.is_some_and(|s| s.first_touch_at.is_some())), "a touch");
        assert!(all.iter().any(|e| e.disqualification == Some(DisqualificationReason::NoBudget)));
    }
}
