//! TODO
pub mod caller;
pub mod dialects;
pub mod idempotency;
pub mod openapi;
pub mod pages;
pub mod router;
pub mod routes;
pub mod state;
