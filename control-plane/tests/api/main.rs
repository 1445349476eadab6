//! Integration tests: the real `control-plane` and `edge` binaries on random loopback ports,
//! each control plane with its own SQLite file, talked to over HTTP. One test binary, modules
//! by subject (zero-to-production's layout).

#![allow(clippy::unwrap_used)] // test helpers panic with context on purpose

mod bad_input;
mod billing;
mod cancellation;
mod checkout_page;
mod durability;
mod e2e;
mod fourgeeks;
mod helpers;
mod sync;
mod webhooks;
