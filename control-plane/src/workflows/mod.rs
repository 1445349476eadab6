//! TODO
pub mod cancel;
pub mod checkout;
pub mod collect;
pub mod customers;
pub mod direct;
pub mod portal;
pub mod refund;
pub mod renew;
pub mod subscribe;
pub mod update;
pub mod usage;
pub mod views;
