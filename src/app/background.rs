//! Work every replica runs beside the requests: chaining audit entries (and following the chain's
//! head for the watchers), recording what falls due (SLA breaches, nurture revisits),
//! keeping accounts from the chain (`accounts`) and forgetting expired idempotency keys.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{App, now};
use crate::store::{DueLead, Sequenced};

/// Entries chained per sequencer transaction.
const SEQUENCE_BATCH: usize = 1000;
/// How often the sequencer looks for entries other replicas wrote.
const SEQUENCE_POLL: Duration = Duration::from_millis(100);
/// Leads swept per pass.
const SWEEP_BATCH: usize = 200;
/// How often expired idempotency keys are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);
/// Pause after a database error before trying again.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Starts the background tasks; they stop when `stop` is cancelled.
pub fn spawn_background(app: &App, stop: CancellationToken) -> Vec<JoinHandle<()>> {
    let mut handles = vec![
        tokio::spawn(sequencer(app.clone(), stop.clone())),
        tokio::spawn(sweeper(app.clone(), stop.clone())),
        tokio::spawn(purger(app.clone(), stop.clone())),
        tokio::spawn(retention(app.clone(), stop.clone())),
        tokio::spawn(gauges(app.clone(), stop.clone())),
        tokio::spawn(accounts(app.clone(), stop.clone())),
    ];
    handles.extend(super::heads::follow_heads(app, stop));
    handles
}

/// How often gauges read from the database are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

async fn gauges(app: App, stop: CancellationToken) {
    loop {
        let pool = app.store.pool_stats();
        crate::metrics::pool(pool.in_use, pool.idle, pool.max);
        if let Ok(inbox) = app.store.inbox_stats().await {
            let age = inbox
                .oldest
                .map_or(0.0, |t| (now() - t).num_milliseconds().max(0) as f64 / 1000.0);
            crate::metrics::sequencer_lag(inbox.entries, age);
        }
        if let Ok(counts) = app.store.leads_by_state().await {
            for state in crate::domain::lifecycle::LeadState::ALL {
                let n = counts.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
                crate::metrics::leads(state.as_str(), n);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(GAUGE_INTERVAL) => {}
            _ = stop.cancelled() => break,
        }
    }
}

async fn sequencer(app: App, stop: CancellationToken) {
    // When the inbox was last counted (on a replica that chained nothing, the chain may be
    // behind all the same: another replica chains).
    let mut counted = tokio::time::Instant::now();
    loop {
        let sequenced = app.store.sequence(SEQUENCE_BATCH, &app.admission()).await;
        let pause = match &sequenced {
            Ok(done) => {
                report(&app, done);
                let taken = done.chained + done.quarantined.len();
                let busy = taken == SEQUENCE_BATCH;
                if busy {
                    // A full run: more may be waiting than one run takes (an import's batches).
                    let waiting = app.store.inbox_stats().await.map_or(0, |i| i.entries);
                    app.pacer
                        .observe(taken.max(usize::try_from(waiting).unwrap_or(0)));
                } else if taken > 0 {
                    app.pacer.observe(taken);
                } else if counted.elapsed() >= SEQUENCE_POLL {
                    counted = tokio::time::Instant::now();
                    let waiting = app.store.inbox_stats().await.map_or(0, |i| i.entries);
                    app.pacer.observe(usize::try_from(waiting).unwrap_or(0));
                }
                if busy { Duration::ZERO } else { SEQUENCE_POLL }
            }
            Err(error) => {
                tracing::warn!(%error, "audit sequencer failed; retrying");
                ERROR_BACKOFF
            }
        };
        if pause.is_zero() {
            continue;
        }
        tokio::select! {
            _ = app.entries_written.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => break,
        }
    }
    // Writers wait no more: the replica is stopping.
    app.pacer.observe(0);
    // Chain what this replica wrote last, so the trail is complete on a clean stop.
    match app.store.sequence(SEQUENCE_BATCH, &app.admission()).await {
        Ok(done) => report(&app, &done),
        Err(error) => tracing::warn!(%error, "final audit sequencing failed; the next start chains the rest"),
    }
}

/// Wakes watchers after entries were chained; counts and logs rows set aside.
fn report(app: &App, done: &Sequenced) {
    if done.chained > 0 {
        app.heads.chained();
        crate::metrics::entries_chained(done.chained);
    }
    for (inbox_id, refusal) in &done.quarantined {
        crate::metrics::entries_quarantined(refusal.code());
        tracing::error!(
            inbox_id,
            reason = refusal.code(),
            detail = %refusal,
            "audit inbox row quarantined, not chained: leadgate did not write it or cannot read it"
        );
    }
}

async fn sweeper(app: App, stop: CancellationToken) {
    // Each pass walks every due lead once, oldest due first, page after page: a lead that cannot
    // be swept (its sweep fails each time) is passed over, never in the way of the others.
    let mut after: Option<DueLead> = None;
    loop {
        let more = match app.store.leads_due(now(), after.as_ref(), SWEEP_BATCH).await {
            Ok(due) => {
                for lead in &due {
                    if let Err(error) = app.sweep_lead(lead.id).await {
                        tracing::warn!(%error, lead = %lead.id, "sweeping a lead failed");
                    }
                }
                after = due.last().copied();
                due.len() == SWEEP_BATCH
            }
            Err(error) => {
                tracing::warn!(%error, "looking for due leads failed");
                false
            }
        };
        if more && !stop.is_cancelled() {
            continue;
        }
        after = None;
        tokio::select! {
            _ = tokio::time::sleep(app.settings.sweep_interval) => {}
            _ = stop.cancelled() => break,
        }
    }
}

/// How often the account projection looks for newly chained entries when it has caught up.
const PROJECTION_POLL: Duration = Duration::from_millis(250);

async fn accounts(app: App, stop: CancellationToken) {
    loop {
        let pause = match app.project_accounts().await {
            Ok(read) if read == super::accounts::PROJECTION_BATCH => Duration::ZERO,
            Ok(_) => PROJECTION_POLL,
            Err(error) => {
                tracing::warn!(%error, "the account projection failed; retrying");
                ERROR_BACKOFF
            }
        };
        if pause.is_zero() && !stop.is_cancelled() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => break,
        }
    }
}

async fn retention(app: App, stop: CancellationToken) {
    loop {
        match app.erase_inactive_leads().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(erased = n, "personal data of inactive leads erased (retention)"),
            Err(error) => tracing::warn!(%error, "the retention sweep failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(app.settings.retention_interval) => {}
            _ = stop.cancelled() => break,
        }
    }
}

async fn purger(app: App, stop: CancellationToken) {
    loop {
        let before = now()
            - chrono::Duration::from_std(app.settings.idempotency_retention).unwrap_or(chrono::Duration::MAX);
        match app.store.purge_idempotency(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired idempotency keys purged"),
            Err(error) => tracing::warn!(%error, "purging idempotency keys failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PURGE_INTERVAL) => {}
            _ = stop.cancelled() => break,
        }
    }
}
