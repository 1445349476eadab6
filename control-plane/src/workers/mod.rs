//! TODO
pub mod billing_clock;
pub mod gauges;
pub mod maintenance;
pub mod recompile;
pub mod sync_listen;
pub mod webhooks;
