//! TODO
pub mod checkout;
pub mod portal;
