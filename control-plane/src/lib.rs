//! Tollgate's control plane: owns the catalog, customers, checkout and subscriptions, compiles
//! every customer's entitlements in the same transaction as the change, and streams them to
//! the edges. Runs on SQLite (embedded, the default) or PostgreSQL (several replicas).
//!
//! The layering (docs/ARCHITECTURE.md): routes → domain decisions → stores → the unit of work.
//! Nothing imports upward; `../shared/tools/import_cycles.py` finds no cycle.
//!
//! Leaves (import no domain):
//! * [`db`] — engines, migrations, the read pools, and the unit of work ([`db::Uow`]).
//! * [`http`] — the error type and envelope, rendered replies, extractors, doc-only schemas.
//! * [`validate`] — validated request values (`Quantity`, `TrialDays`, `RedirectUrl`…).
//! * [`clock`], [`ids`], [`settings`].
//!
//! Domains (each `model` pure, `store` owning its tables, `routes` thin):
//! * [`catalog`] — features, plans, prices, money and charge periods; the catalog file.
//! * [`customers`] — customers, cards on file, credit, a customer's "now".
//! * [`subscriptions`] — rows, PayKit's decision table (`lifecycle`), applying decisions.
//! * [`checkout`] — sessions, the hosted page, the test-mode payment provider.
//! * [`portal`] — the hosted customer portal: sessions, pages, what its forms do.
//! * [`billing`] — proration, invoices, the billing clock and test clocks.
//! * [`usage`] — meters and their windows.
//! * [`entitlements`] — compiling what a customer may use (SPEC §6).
//! * [`webhooks`] — endpoints, the outbox, delivery.
//! * [`auth`] — keys, callers, bootstrap; [`idempotency`] — stored answers.
//! * [`refunds`] — refunds of paid invoices (credit notes) and the transactions list.
//! * [`licenses`] — license keys a plan grants, their activations.
//! * [`dialects`] — Kelviq, PayKit and 4geeks side by side.
//!
//! Above the domains:
//! * [`write`] — the writer task: group commit, savepoints, and the side effects it derives.
//! * [`sync`] — the change log and the snapshot/delta stream to edges.
//! * [`state`], [`app`] (startup, router, shutdown), [`error`] (domain errors → HTTP),
//!   [`observe`] (health, metrics, tracing), [`openapi`], [`maintenance`] (pruning),
//!   [`copy`] (an embedded database moved up to PostgreSQL).

pub mod api;
pub mod app;
pub mod domain;
pub mod payments;
pub mod platform;
pub mod workers;
pub mod workflows;
pub mod write;
