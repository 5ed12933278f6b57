//! What leadgate is measured against: a bare tonic server, and pgbench running the statements
//! one SubmitLead writes.

pub mod bare;
pub mod pgbench;
