//! The hosted customer portal (Kelviq's `portal.create_session`): a short-lived link where a
//! customer sees their plan, next invoice and invoices, switches plan under PayKit's rules
//! (an upgrade's proration shown before it is confirmed; a downgrade or a cancellation at
//! period end), resumes, and replaces their card.
//!
//! * [`model`] — sessions, tokens (random, stored hashed, expiring), the forms' values. Pure.
//! * [`store`] — the `portal_sessions` table.
//! * [`actions`] — what each form does, through the subscription lifecycle, in a unit of work.
//! * [`routes`] — `POST /api/v1/portal/session/`.
//! * [`page`] — the HTML pages (templates in `control-plane/templates/portal*.html`).
pub mod model;
pub mod store;
