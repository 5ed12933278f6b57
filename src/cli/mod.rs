//! The binary's commands: the command line in [`args`], operator commands (`serve`, `migrate`,
//! `policy`) in `ops`, commands for people that talk to a running server in [`client`].

pub mod args;
pub mod client;
mod ops;

pub use ops::{hash_token, migrate, new_audit_key, new_token, policy_check, serve};
