//! The pages people open in a browser: the hosted checkout ([`checkout`]), the customer
//! portal ([`portal`]), the payment authentication step ([`authenticate`]), plain HTML forms under a strict Content-Security-Policy, and their
//! stylesheet and icon ([`assets`]).

pub mod assets;
pub mod authenticate;
pub mod card_entry;
pub mod checkout;
pub mod portal;
