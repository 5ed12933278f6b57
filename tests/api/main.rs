//! Integration tests: the real server on a random port, spoken to over gRPC, on a fresh
//! database per test. Contract tests run once on SQLite and once on PostgreSQL.

mod helpers;

mod accounts;
mod audit;
mod cli;

mod funnel;
mod health;
mod import;
mod import_cli;
mod input;
mod leads;
mod lifecycle;
mod limits;
mod merge;
mod origin;
mod policy;
mod privacy;
mod process;
mod scenarios;
mod search;
mod security;
mod sla;
mod storage;
mod streams;
mod update;
