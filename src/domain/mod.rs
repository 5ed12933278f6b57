//! The pure rules of leadgate: what a lead is, how it is scored, where it stands, what the audit
//! trail records. No I/O, no async, no clock: time is always a parameter.

pub mod account;
pub mod audit;
pub mod duration;
pub mod engine;
pub mod facts;
pub mod funnel;
pub mod hex;
pub mod lead;
pub mod lifecycle;
pub(crate) mod names;
pub mod policy;
pub mod query;
pub(crate) mod scoring;
pub mod sla;
pub mod texts;
pub(crate) mod validation;
pub mod values;
