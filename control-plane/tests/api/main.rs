//! Integration tests: the real `control-plane` and `edge` binaries on random loopback ports,
//! each control plane with its own SQLite file or PostgreSQL database, talked to over HTTP.
//! Every test runs on both engines (`both!`: `name::sqlite`, `name::postgres`). One test binary, modules
//! by subject (zero-to-production's layout).

#![allow(clippy::unwrap_used)] // test helpers panic with context on purpose

#[macro_use]
mod helpers;

mod bad_input;
mod billing;
mod browser;
mod cancellation;
mod checkout_page;
mod copy;
mod durability;
mod e2e;
mod fourgeeks;
mod hardening;
mod hosted_pages;
mod kelviq;
mod kelviq_bad_input;
mod kelviq_surface;
mod payments;
mod portal;
mod portal_page;
mod read_your_writes;
mod replays;
mod replicas;
mod stripe;
mod sync;
mod webhooks;
