//! Workflows: the only code that spans domains. Each runs inside one unit of work (it takes
//! `&mut Uow`), asks a pure decision in a domain model, and carries it out through the domains'
//! stores. Routes, dialects, pages and workers call them; they call nothing above themselves.
//!
//! * [`subscribe`] — the one door for changes (`change`), starting and ending subscriptions,
//!   PayKit's `subscribe`, 4geeks' checkout link.
//! * [`direct`] — starts and one-time charges on the card on file (Kelviq `create`, `charges`).
//! * [`update`] — Kelviq's `update`, and the preview's I/O half.
//! * [`cancel`] — cancel and resume, for every door.
//! * [`checkout`] — opening a checkout session and completing a paid one.
//! * [`renew`] — the billing clock's units: renewals, dunning, cancel dates, expiries, meters.
//! * [`collect`] — writing an invoice and collecting it (credit, then a payment intent).
//! * [`settle`] — applying what the processor said about a payment intent.
//! * [`refund`], [`customers`] (archive), [`portal`] (the portal's forms), [`usage`] (reports
//!   and reported events), [`views`] (a subscription as Kelviq's SDKs read it).

pub mod cancel;
pub mod checkout;
pub mod collect;
pub mod customers;
pub mod direct;
pub mod portal;
pub mod refund;
pub mod renew;
pub mod settle;
pub mod subscribe;
pub mod update;
pub mod usage;
pub mod views;
