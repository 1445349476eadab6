//! TODO
pub mod clock;
pub mod db;
pub mod egress;
pub mod events;
pub mod http;
pub mod ids;
pub mod money;
pub mod observe;
pub mod period;
pub mod schema;
pub mod settings;
pub mod validate;
