//! Reads of single leads, coalesced: requests that arrive while earlier reads are in flight are
//! served together by one `SELECT ... WHERE id IN (...)`. Every read still reaches the database
//! after it was asked for, so nothing is cached and nothing can be stale; many concurrent readers
//! cost one round trip (and, on SQLite, one hop to the connection's thread) instead of one each.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::domain::lead::Lead;
use crate::domain::values::LeadId;
use crate::store::{Store, StoreResult};

/// Leads asked for in one query at most.
const MAX_BATCH: usize = 128;
/// Queries in flight at once; while one is, new requests gather into the next batch (more in
/// flight means smaller batches: measured, one gives the most reads per second).
const IN_FLIGHT: usize = 1;

type Reply = oneshot::Sender<StoreResult<Option<Lead>>>;

/// Hands single-lead reads to the batching task.
#[derive(Clone)]
pub struct Loader {
    requests: mpsc::UnboundedSender<(LeadId, Reply)>,
}

impl Loader {
    /// Starts the batching task (it ends when every `Loader` is dropped).
    pub fn start(store: Arc<dyn Store>) -> Loader {
        let (requests, mut incoming) = mpsc::unbounded_channel::<(LeadId, Reply)>();
        let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    return;
                };
                let Some(first) = incoming.recv().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match incoming.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
                let store = store.clone();
                tokio::spawn(async move {
                    let ids: Vec<LeadId> = batch.iter().map(|(id, _)| *id).collect();
                    match store.get_leads(&ids).await {
                        Ok(leads) => {
                            let mut found: HashMap<LeadId, Lead> =
                                leads.into_iter().map(|l| (l.id, l)).collect();
                            let mut readers: HashMap<LeadId, usize> = HashMap::new();
                            for (id, _) in &batch {
                                *readers.entry(*id).or_default() += 1;
                            }
                            for (id, reply) in batch {
                                // The last reader of a lead takes it; earlier ones get copies.
                                let readers = readers.get_mut(&id).expect("counted above");
                                *readers -= 1;
                                let lead = if *readers == 0 {
                                    found.remove(&id)
                                } else {
                                    found.get(&id).cloned()
                                };
                                let _ = reply.send(Ok(lead));
                            }
                        }
                        Err(error) => {
                            for (_, reply) in batch {
                                let _ = reply.send(Err(error.clone()));
                            }
                        }
                    }
                    drop(permit);
                });
            }
        });
        Loader { requests }
    }

    /// One lead, read together with whatever else is being read.
    pub async fn get(&self, id: LeadId) -> StoreResult<Option<Lead>> {
        let (reply, answer) = oneshot::channel();
        if self.requests.send((id, reply)).is_err() {
            return Err(crate::store::StoreError::Unavailable(
                "the lead reader has stopped".into(),
            ));
        }
        answer.await.unwrap_or_else(|_| {
            Err(crate::store::StoreError::Unavailable(
                "the lead reader has stopped".into(),
            ))
        })
    }
}
