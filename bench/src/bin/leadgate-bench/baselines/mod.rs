//! What leadgate is measured against: a bare tonic server; pgbench running the PostgreSQL
//! store's own write of a new lead; one SQLite writer running the SQLite store's.

pub mod bare;
pub mod pgbench;
pub mod sqlite;
