//! Tollgate's control plane: owns the catalog, customers, checkout and subscriptions, compiles
//! every customer's entitlements in the same transaction as the change, and streams them to
//! the edges. Runs on SQLite (embedded, the default) or PostgreSQL (several replicas).
//!
//! The folders are floors, and each imports only the floors below it (docs/ARCHITECTURE.md;
//! `scripts/check-floors.py` and `../shared/tools/import_cycles.py --modules` check it in CI):
//!
//! ```text
//! app                      composition root: startup, keys, the catalog file, workers, serve
//! api                      state, routes, dialects, pages, the OpenAPI document
//! workers   write          background loops | the unit-of-work engine and what it derives
//! workflows                the only code that spans domains (one unit of work each)
//! payments                 payment processors (today: the test-card simulator)
//! domain                   <name>/model.rs (pure) + store.rs (the only SQL on its tables)
//! platform                 db, http plumbing, clock, ids, settings, validated types
//! ```
//!
//! * [`platform`] — the leaves.
//! * [`domain`] — catalog, customers, subscriptions, invoices, usage, entitlements, webhooks,
//!   licenses, refunds, checkout and portal sessions, idempotency, auth, sync, …
//! * [`payments`] — the processor boundary.
//! * [`workflows`] — subscribe/change, start, end, cancel, resume, checkout, renewal, refund,
//!   the update preview's I/O half.
//! * [`write`] — the writer task: group commit, savepoints, derived side effects. It imports
//!   `platform` and the domains' stores only.
//! * [`workers`] — the billing clock, recompiles, webhook delivery, maintenance.
//! * [`api`] — what a request touches before it reaches a workflow.
//! * [`app`] — [`app::Application`]: build, run, shut down.

pub mod api;
pub mod app;
pub mod domain;
pub mod payments;
pub mod platform;
pub mod workers;
pub mod workflows;
pub mod write;
