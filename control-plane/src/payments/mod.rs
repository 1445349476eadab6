//! TODO
pub mod test_cards;
