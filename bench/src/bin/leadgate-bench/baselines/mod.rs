//! What leadgate is measured against: a bare tonic server; pgbench running the PostgreSQL
//! store's own write of a new lead; one SQLite writer running the SQLite store's.

pub mod bare;
pub mod pgbench;
pub mod sqlite;

use crate::reader::Reader;

/// The real lead whose documents the write baselines write: its document, its submission's
/// audit body, the stored answer to its SubmitLead.
pub struct Template {
    pub document: String,
    pub body: String,
    pub response: String,
}

impl Template {
    /// Takes a real lead's documents from leadgate's database at `url`.
    pub async fn read(url: &str) -> Result<Template, String> {
        let mut db = Reader::open(url).await?;
        Ok(Template {
            document: db.text("SELECT document FROM leads LIMIT 1").await?,
            body: db
                .text("SELECT body FROM audit_log WHERE kind = 'LEAD_SUBMITTED' LIMIT 1")
                .await?,
            response: db.text("SELECT response FROM idempotency_keys LIMIT 1").await?,
        })
    }
}
