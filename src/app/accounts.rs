//! The account projection: accounts kept from the chained audit trail. A run reads the entries
//! after the projection's position, the leads they name and those leads' stored contributions,
//! applies each lead as it now stands (`domain::account::Projection`: the account it left and the
//! one it joined move by its difference alone), and writes the accounts it touched, the contacts
//! and the new position in one transaction, only if the position is still the one it started
//! from: one run at a time across replicas, each entry read once.

use std::collections::{BTreeMap, BTreeSet};

use super::{App, AppResult, now};
use crate::domain::account::{self, AccountKey, Contribution, Projection};
use crate::domain::values::LeadId;
use crate::store::{AccountProjectionWrite, AccountRecord};

/// Chained entries read per run.
pub const PROJECTION_BATCH: usize = 500;

impl App {
    /// One run of the account projection: how many chained entries it took in (0: none new, or
    /// another replica's run went first).
    pub async fn project_accounts(&self) -> AppResult<usize> {
        let from = self.store.account_position().await?;
        let entries = self.store.chain_range(from, PROJECTION_BATCH).await?;
        let Some(last) = entries.last() else {
            return Ok(0);
        };
        let to = last.position;
        let ids: BTreeSet<LeadId> = entries.iter().filter_map(|e| e.entry.lead).collect();
        let ids: Vec<LeadId> = ids.into_iter().collect();
        let leads = self.store.get_leads(&ids).await?;
        let rules = &self.policy.rules;
        let views: Vec<(LeadId, Option<(AccountKey, Contribution)>)> = leads
            .iter()
            .map(|lead| (lead.id, account::contact_of(lead, None, rules)))
            .collect();
        let stored = self.store.account_contacts(&ids).await?;
        let keys: BTreeSet<AccountKey> = stored
            .iter()
            .map(|c| c.key.clone())
            .chain(
                views
                    .iter()
                    .filter_map(|(_, v)| v.as_ref().map(|(k, _)| k.clone())),
            )
            .collect();
        let keys: Vec<AccountKey> = keys.into_iter().collect();
        let existing = self.store.accounts(&keys).await?;
        let created: BTreeMap<AccountKey, _> =
            existing.iter().map(|a| (a.key.clone(), a.created_at)).collect();
        let mut projection = Projection {
            contacts: stored
                .into_iter()
                .map(|c| (c.lead, (c.key, c.contribution)))
                .collect(),
            accounts: existing.into_iter().map(|a| (a.key, a.view)).collect(),
        };
        for (lead, view) in &views {
            projection.apply(*lead, view.clone(), &rules.accounts);
        }
        let now = now();
        let records: Vec<AccountRecord> = keys
            .iter()
            .filter_map(|key| {
                projection.accounts.get(key).map(|view| AccountRecord {
                    key: key.clone(),
                    view: view.clone(),
                    created_at: created.get(key).copied().unwrap_or(now),
                    updated_at: now,
                })
            })
            .collect();
        let written = self
            .store
            .write_account_projection(AccountProjectionWrite {
                from,
                to,
                accounts: &records,
                contacts: &views,
            })
            .await?;
        Ok(if written { entries.len() } else { 0 })
    }
}
