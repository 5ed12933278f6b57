//! leadgate: the single qualification authority for B2B leads, served over gRPC.
//!
//! # Layout
//!
//! Data flows one way: `grpc` → `app` → `domain` (decide) → `store` (persist).
//!
//! - [`domain`]: the pure rules; no I/O, no clock (time is a parameter).
//!   - `values`, `lead`, `facts`: what a lead is, its scores, reasons and SLA clock;
//!     `validation`: field violations by API path.
//!   - `lifecycle`: the state transition table; `policy`: the qualification policy (TOML);
//!     `account`: accounts (the key that finds a lead's, their states and transition table),
//!     committee roles and the committee's verdict on authority, the rollup kept by differences;
//!     `scoring`, `sla`, `funnel`: fit and engagement points, due times, the funnel report.
//!   - `engine`: the decisions (`create`, `apply`), their typed audit inputs (`inputs`), `explain`,
//!     contact and company corrections (`profile`), merging a duplicate into another lead
//!     (`merge`), the pseudonymous record an erasure leaves (`erasure`).
//!   - `audit`: entries, the hash chain, seals, verification; `query`: typed list filters,
//!     orders and page tokens per resource (a new filter field is a variant in
//!     `query::resources` and its column in `store::list`).
//!   - `hex`, `duration`, `names` (the `named_enum!` closed sets): small shared helpers.
//! - [`app`]: use cases. Loads state, runs the engine, commits the change with its audit entries
//!   and idempotency record in one transaction (`leads`), retries lost races; imports, a batch of
//!   submissions written in one transaction with a request id per row (`import`); audit queries and
//!   watches (`audit`, `watch`, `heads`), policies, reports; personal data (`privacy`: erasure,
//!   the suppression list, export, retention; `texts`: the audit's free text sealed per lead);
//!   accounts kept from the chained trail (`accounts`, the account projection); the background
//!   work (`background`: audit sequencer, SLA/revisit sweeper, retention sweep, account
//!   projection, idempotency purge, write probe); writes paced to the sequencer (`pacing`).
//! - [`store`]: the [`store::Store`] trait and one body for both backends (`shared`, generic over
//!   sqlx's database; `sqlite` and `postgres` say what differs), its statements (`sql`,
//!   `statements`, `list`), the write transaction (`tx`), SQLite's group commit (`group_commit`,
//!   which also carries an import's batch as one item);
//!   migrations in
//!   `migrations/{postgres,sqlite}`.
//! - [`grpc`]: generated code and the `Rpc` names (from the protos, by build.rs), the services
//!   (`leads`, `audit`, `policy`, `reports`), proto ↔ domain conversion (`convert`), error →
//!   status mapping (`status`), authentication and limits per call (`guard`), per-RPC logs and
//!   metrics (`observe`), the message codec (`codec`).
//! - [`auth`]: credentials to identities (bearer tokens, JWT, client certificates) and the roles
//!   of each RPC (`roles`).
//! - [`server`]: health, reflection, TLS and handshake limits, serving and draining.
//! - [`cli`]: the command line (`args`), operator commands (`ops`: serve, migrate, policy, auth)
//!   and the commands that talk to a running server (`client`; `client::import` reads CSV and
//!   JSONL files for `leads import`).
//! - [`telemetry`]: logs and traces; `metrics`: the Prometheus exporter and its gauges.
//!
//! The benchmark and the soak test are the workspace member `bench/`; the fuzz targets live in
//! `fuzz/`.

pub mod app;
pub mod auth;
pub mod cli;
pub mod domain;
pub mod grpc;
pub(crate) mod metrics;
pub mod server;
pub mod store;
pub mod telemetry;
