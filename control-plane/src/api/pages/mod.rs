//! TODO
pub mod assets;
pub mod checkout;
pub mod portal;
