//! HTTP plumbing every route shares, and nothing else: the error type, its envelope and the one
//! map from errors to statuses ([`error`]), rendered responses ([`reply`]), request extractors
//! and pagination ([`extract`]), what the hosted pages share — security headers and rendering
//! ([`hosted`]), the rate limiters ([`rate_limit`]) — and documentation-only schemas
//! ([`schema`]). A leaf: nothing here imports a
//! domain.

pub mod error;
pub mod extract;
pub mod hosted;
pub mod rate_limit;
pub mod reply;
pub mod schema;
