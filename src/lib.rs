//! leadgate: the single qualification authority for B2B leads, served over gRPC.
//!
//! # Layout
//!
//! Data flows one way: `grpc` → `app` → `domain` (decide) → `store` (persist).
//!
//! - [`domain`]: the pure rules. Lead values, the lifecycle table, the policy, scoring, the
//!   decision engine, SLA clocks, the audit chain's hashing, list queries. No I/O, no clock.
//! - [`app`]: use cases. Loads state, runs the engine, writes the change with its audit entries
//!   and idempotency record in one transaction; retries lost races; runs the background work
//!   (audit sequencer, SLA/revisit sweeper, idempotency purge).
//! - [`store`]: one [`store::Store`] trait, PostgreSQL and SQLite implementations, migrations
//!   in `migrations/{postgres,sqlite}`.
//! - [`grpc`]: generated code, service implementations, proto ↔ domain conversion, error →
//!   status mapping, the per-RPC observation layer.
//! - [`server`]: health, reflection, serving and draining; [`config`] and [`telemetry`]: settings
//!   and logs; [`cli`]: what the binary's commands do.

pub mod app;
pub mod auth;
pub mod cli;
pub mod domain;
pub mod grpc;
pub(crate) mod metrics;
pub mod server;
pub mod store;
pub mod telemetry;
