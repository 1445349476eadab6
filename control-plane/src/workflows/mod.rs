//! TODO
pub mod checkout;
pub mod collect;
pub mod portal;
pub mod renew;
pub mod subscribe;
pub mod usage;
pub mod views;
