//! HTTP plumbing every route shares, and nothing else: the error type and its envelope
//! ([`error`]), rendered responses ([`reply`]), request extractors and pagination
//! ([`extract`]), and documentation-only schemas ([`schema`]). A leaf: nothing here imports a
//! domain.

pub mod error;
pub mod extract;
pub mod reply;
pub mod schema;
