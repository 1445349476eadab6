//! HTTP plumbing every route shares, and nothing else: the error type and its envelope
//! ([`error`]), rendered responses ([`reply`]), request extractors and pagination
//! ([`extract`]), what the hosted pages share — security headers, stylesheet, rendering
//! ([`hosted`]) — and documentation-only schemas ([`schema`]). A leaf: nothing here imports a
//! domain.

pub mod error;
pub mod extract;
pub mod hosted;
pub mod reply;
pub mod schema;
