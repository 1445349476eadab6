//! The pages people open in a browser: the hosted checkout ([`checkout`]) and the customer
//! portal ([`portal`]), plain HTML forms under a strict Content-Security-Policy, and their
//! stylesheet and icon ([`assets`]).

pub mod assets;
pub mod checkout;
pub mod portal;
