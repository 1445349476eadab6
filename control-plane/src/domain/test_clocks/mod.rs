//! Test clocks (Stripe's semantics): a clock is created at a frozen time; customers created
//! with `testClock` live at that time; advancing moves it forward only and returns after every
//! renewal, trial end, scheduled change, retry and meter reset due in between has run.
//!
//! * [`store`] — the `test_clocks` table.
//! * [`routes`] — `/api/v1/test-clocks/…`.
pub mod store;
