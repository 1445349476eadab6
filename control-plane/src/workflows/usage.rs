//! Recording a usage report inside a unit of work.
//!
//! The fast path touches three rows: the customer's stored compile (read: the meter's limit and
//! the end of its current window, `resetAt`), the window's counter (one upsert that returns the
//! new usage), and — at commit, by the unit of work — the stored compile again, with just this
//! meter patched. No full compile runs. Only when the window has ended and the billing clock has
//! not yet rolled the compile over does a report work out the new window itself and ask the
//! unit of work for a full compile.

use chrono::DateTime;
use tollgate_shared::{Entitlement, FeatureType, Mode};

use crate::domain::usage::store as counters;

use crate::domain::catalog::store as catalog;
use crate::domain::customers::model::CustomerError;
use crate::domain::customers::store as customers;
use crate::domain::entitlements::compile;
use crate::domain::entitlements::model::patch_meter;
use crate::domain::entitlements::store as entitlements;
use crate::domain::entitlements::store::StoredCompile;
use crate::domain::subscriptions::store as subscriptions;
use crate::domain::usage::model::{NewEvent, Recorded, UsageError};
use crate::domain::usage::store::{NEVER, Report};
use crate::domain::usage::window::window_from;
use crate::platform::db::Uow;
use crate::platform::validate::invalid;

/// Records `report` for one METER of one customer. Returns the meter as it now stands.
pub async fn record(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    feature_id: &str,
    report: Report,
) -> Result<Entitlement, UsageError> {
    let real_now = uow.now();
    let (created, now, compiled) =
        entitlements::stored_with_clock(uow.conn(), mode, customer_id, real_now)
            .await?
            .ok_or_else(|| CustomerError::NotFound(customer_id.to_owned()))?;
    let find = |c: &Option<StoredCompile>| {
        c.as_ref()
            .and_then(|c| c.entitlements.iter().find(|e| e.feature_id == feature_id))
            .cloned()
    };
    let (compiled, mut entry, recompiled) = match find(&compiled) {
        Some(entry) => (compiled, entry, false),
        None => {
            // The stored compile may predate a catalog edit: an edit's customers are recompiled
            // after it, in chunks (workers::recompile), so a meter added a moment ago can be
            // missing here. Compile this customer now rather than call the feature unknown.
            let fresh = compile::customer(uow.conn(), mode, customer_id, real_now).await?;
            let fresh = Some(StoredCompile {
                entitlements: fresh.entitlements,
                next_change_at: fresh.next_change_at,
            });
            match find(&fresh) {
                Some(entry) => (fresh, entry, true),
                None => return Err(UsageError::FeatureNotFound(feature_id.to_owned())),
            }
        }
    };
    if entry.feature_type != FeatureType::Meter {
        return Err(invalid(
            "featureId",
            format!(
                "'{feature_id}' is a {} feature; usage is reported for METER features",
                entry.feature_type.as_str()
            ),
        )
        .into());
    }
    let window_end = match entry.reset_at.as_deref() {
        None => Some(NEVER),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|d| d.timestamp())
            .filter(|end| now < *end),
    };
    let value = match window_end {
        Some(end) => {
            let value = counters::record(uow, mode, customer_id, feature_id, end, report).await?;
            if let Some(mut compile) = compiled {
                // The compile was read above: patch it here rather than read it again at commit.
                if recompiled || entry.current_usage != Some(value) {
                    patch_meter(&mut compile.entitlements, feature_id, value);
                    uow.patched(
                        mode,
                        customer_id,
                        compile.entitlements,
                        compile.next_change_at,
                    );
                }
            }
            value
        }
        None => {
            // The window has ended and the compile not yet rolled over: find the current one.
            let feature = catalog::feature_def(uow.conn(), mode, feature_id)
                .await?
                .ok_or_else(|| UsageError::FeatureNotFound(feature_id.to_owned()))?;
            let billing = billing_window(uow, mode, customer_id, feature_id).await?;
            let (_, end) = window_from(created, feature.reset_period.as_deref(), billing, now);
            let value = counters::record(
                uow,
                mode,
                customer_id,
                feature_id,
                end.unwrap_or(NEVER),
                report,
            )
            .await?;
            entry.reset_at = end.map(crate::platform::clock::rfc3339);
            uow.touch(mode, customer_id);
            value
        }
    };
    patch_meter(std::slice::from_mut(&mut entry), feature_id, value);
    Ok(entry)
}

/// The current period of the earliest-started granting subscription that grants `feature`.
async fn billing_window(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    feature_id: &str,
) -> Result<Option<(i64, Option<i64>)>, sqlx::Error> {
    for s in subscriptions::granting(uow.conn(), mode, customer_id).await? {
        let grants = catalog::grants(uow.conn(), mode, &s.plan).await?;
        if grants
            .iter()
            .any(|g| g.has_access && g.feature_id == feature_id)
        {
            return Ok(Some((s.period_start, s.period_end)));
        }
    }
    Ok(None)
}

/// Stores a reported event once per key and counts it on every METER whose `eventName` it has.
pub async fn record_event(
    uow: &mut Uow,
    mode: Mode,
    e: &NewEvent<'_>,
) -> Result<Recorded, UsageError> {
    // Events of a customer that does not exist (or is archived) are refused, counted or not.
    let known = customers::find(uow.conn(), mode, e.customer_id)
        .await?
        .is_some_and(|c| !c.archived);
    if !known {
        return Err(CustomerError::NotFound(e.customer_id.to_owned()).into());
    }
    let hash = e.hash();
    let now = uow.now();
    if !counters::insert_event(uow, mode, e, &hash, now).await? {
        let stored = counters::event_hash(uow.conn(), mode, e.idempotency_key).await?;
        return Ok(if stored.as_deref() == Some(hash.as_str()) {
            Recorded::Duplicate
        } else {
            Recorded::Conflict
        });
    }
    let meters = catalog::meters_counting(uow.conn(), mode, e.event_name).await?;
    let mut moved = Vec::with_capacity(meters.len());
    for feature in &meters {
        moved.push(record(uow, mode, e.customer_id, feature, Report::Delta(1)).await?);
    }
    if meters.len() > 1 {
        // Each report patched the compile it read, which did not hold the others' patches:
        // compile once from the counters instead.
        uow.touch(mode, e.customer_id);
    }
    Ok(Recorded::New(moved))
}
