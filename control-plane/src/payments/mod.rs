//! Payment processors: the boundary between Tollgate and whoever moves the money. Today the
//! only processor is the test-mode card simulator ([`test_cards`], Stripe's test cards); live
//! mode declines. A processor is called by workflows, never from inside a store, and (once a
//! network processor lands) from a worker outside the writer's unit of work, through an outbox
//! row (docs/ARCHITECTURE.md, "A Stripe payment processor").

pub mod test_cards;
