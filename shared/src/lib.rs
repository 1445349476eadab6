//! Everything the control plane and the edge must agree on or share, and nothing that needs a
//! database. The edge links this crate and never the control plane's storage stack.
//!
//! * [`entitlement`] — the compiled, per-customer view the edge serves (Kelviq's shape).
//! * [`sync`] — the versioned snapshot/delta frames streamed from control plane to edges.
//! * [`keys`] — API key kinds, modes, hashing and `Authorization` header parsing.
//! * [`token`] — short-lived, Ed25519-signed customer tokens minted by the control plane.
//! * [`error`] — the `{"error":{code,type,message}}` envelope both planes answer with.
//! * [`server`] — the HTTP/1 accept loop both serve with: timeouts, a connection cap, TLS.

pub mod entitlement;
pub mod error;
pub mod keys;
pub mod server;
pub mod sync;
pub mod token;

pub use entitlement::{CustomerEntitlements, Entitlement, FeatureType};
pub use error::{ErrorEnvelope, ErrorKind};
pub use keys::{KeyKind, Mode};
