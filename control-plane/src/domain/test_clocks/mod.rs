//! Test clocks (Stripe's semantics): a clock is created at a frozen time; customers created
//! with `testClock` live at that time; advancing moves it forward only.
//!
//! * [`store`] — the `test_clocks` table.

pub mod store;
