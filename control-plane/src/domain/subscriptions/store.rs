//! The `subscriptions` table: every statement on it. Writes take the unit of work and touch the
//! customer whose grants they change, so the unit recompiles them before commit.

use tollgate_shared::Mode;

use crate::domain::catalog::model::PlanPrice;
use crate::domain::subscriptions::model::{
    Cycle, GRANTING, Status, Subscription, SubscriptionView, select_list,
};
use crate::platform::db::due::{DueItem, Scope, due_items};
use crate::platform::db::sql;
use crate::platform::db::sql::{Conn, FromRow};
use crate::platform::db::{Backend, Uow};
use crate::platform::money::Currency;
use crate::platform::period::ChargePeriod;

/// The plan's display name comes from the catalog (the identifier when the plan is gone).
const VIEW_NAME: &str = "(SELECT p.name FROM plans p WHERE p.mode = s.mode AND p.identifier = s.plan_identifier) AS plan_name";

fn with_name(r: &sql::Row) -> Result<SubscriptionView, sqlx::Error> {
    let sub = <Subscription as FromRow>::from_row(r)?;
    let name: Option<String> = r.try_get("plan_name")?;
    let name = name.unwrap_or_else(|| sub.plan.clone());
    Ok(SubscriptionView::new(&sub, name))
}

pub async fn get(
    conn: &mut Conn,
    mode: Mode,
    id: &str,
) -> Result<Option<Subscription>, sqlx::Error> {
    let cols = select_list(None);
    sql::query(format!(
        "SELECT {cols} FROM subscriptions WHERE mode = $1 AND id = $2"
    ))
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional_as(conn)
    .await
}

/// Inside a unit of work: the row, locked against other replicas until commit (PostgreSQL).
/// `None` when it is missing or, with `skip_locked`, when another writer holds it.
pub async fn get_locked(
    uow: &mut Uow,
    mode: Mode,
    id: &str,
    skip_locked: bool,
) -> Result<Option<Subscription>, sqlx::Error> {
    let lock = if skip_locked {
        uow.backend().skip_locked()
    } else {
        uow.backend().for_update()
    };
    let cols = select_list(None);
    sql::query(format!(
        "SELECT {cols} FROM subscriptions WHERE mode = $1 AND id = $2{lock}"
    ))
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional_as(uow.conn())
    .await
}

pub async fn view(
    conn: &mut Conn,
    mode: Mode,
    id: &str,
) -> Result<Option<SubscriptionView>, sqlx::Error> {
    sql::query(format!(
        "SELECT {}, {VIEW_NAME} FROM subscriptions s WHERE s.mode = $1 AND s.id = $2",
        select_list(Some("s"))
    ))
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional(conn)
    .await?
    .map(|r| with_name(&r))
    .transpose()
}

#[derive(Default)]
pub struct ListFilter<'a> {
    pub customer_id: Option<&'a str>,
    pub status: Option<Status>,
    pub plan: Option<&'a str>,
    /// Kelviq's date filters, as `[from, to)` bounds in unix seconds.
    pub started_from: Option<i64>,
    pub started_to: Option<i64>,
    pub modified_from: Option<i64>,
    pub modified_to: Option<i64>,
}

pub async fn list(
    conn: &mut Conn,
    mode: Mode,
    f: &ListFilter<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<SubscriptionView>, i64), sqlx::Error> {
    let filter =
        "s.mode = $1 AND ($2 IS NULL OR s.customer_id = $2) AND ($3 IS NULL OR s.status = $3)
        AND ($4 IS NULL OR s.plan_identifier = $4)
        AND ($5 IS NULL OR s.started_at >= $5) AND ($6 IS NULL OR s.started_at < $6)
        AND ($7 IS NULL OR s.modified_at >= $7) AND ($8 IS NULL OR s.modified_at < $8)";
    let status = f.status.map(Status::as_str);
    let count: i64 = sql::query(format!(
        "SELECT COUNT(*) FROM subscriptions s WHERE {filter}"
    ))
    .bind(mode.as_str())
    .bind(f.customer_id)
    .bind(status)
    .bind(f.plan)
    .bind(f.started_from)
    .bind(f.started_to)
    .bind(f.modified_from)
    .bind(f.modified_to)
    .scalar(&mut *conn)
    .await?;
    let rows = sql::query(format!(
        "SELECT {}, {VIEW_NAME} FROM subscriptions s WHERE {filter}
         ORDER BY s.created_at DESC, s.id DESC LIMIT $9 OFFSET $10",
        select_list(Some("s"))
    ))
    .bind(mode.as_str())
    .bind(f.customer_id)
    .bind(status)
    .bind(f.plan)
    .bind(f.started_from)
    .bind(f.started_to)
    .bind(f.modified_from)
    .bind(f.modified_to)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    Ok((
        rows.iter().map(with_name).collect::<Result<Vec<_>, _>>()?,
        count,
    ))
}

/// A customer's subscriptions that also meet `condition` (whose own parameters start at `$3`,
/// bound from `values`), in `order`: the one query behind the per-customer reads below.
async fn of_customer(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
    condition: &str,
    values: Vec<sql::Value>,
    order: &str,
) -> Result<Vec<Subscription>, sqlx::Error> {
    let cols = select_list(None);
    let mut query = sql::query(format!(
        "SELECT {cols} FROM subscriptions WHERE mode = $1 AND customer_id = $2 AND {condition}
         ORDER BY {order}"
    ))
    .bind(mode.as_str())
    .bind(customer_id);
    for value in values {
        query = query.bind(value);
    }
    query.fetch_all_as(conn).await
}

/// The granting subscription a customer has in a group (the newest, should there be two).
pub async fn current_in_group(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
    group: &str,
) -> Result<Option<Subscription>, sqlx::Error> {
    let condition = format!("grp = $3 AND status IN {GRANTING}");
    let newest = "created_at DESC, id DESC LIMIT 1";
    let found = of_customer(
        conn,
        mode,
        customer_id,
        &condition,
        vec![group.into()],
        newest,
    );
    Ok(found.await?.into_iter().next())
}

/// Every granting subscription of a customer, oldest period start first.
pub async fn granting(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
) -> Result<Vec<Subscription>, sqlx::Error> {
    let condition = format!("status IN {GRANTING}");
    let order = "current_period_start, id";
    of_customer(conn, mode, customer_id, &condition, Vec::new(), order).await
}

/// Every subscription of a customer that has not ended (granting or awaiting a checkout).
pub async fn live(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
) -> Result<Vec<Subscription>, sqlx::Error> {
    let condition = "status <> 'canceled'";
    of_customer(
        conn,
        mode,
        customer_id,
        condition,
        Vec::new(),
        "created_at, id",
    )
    .await
}

/// A customer's `incomplete` subscriptions in a group (each awaiting a checkout).
pub async fn incomplete_in_group(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
    group: &str,
) -> Result<Vec<Subscription>, sqlx::Error> {
    let condition = "grp = $3 AND status = 'incomplete'";
    let order = "created_at, id";
    of_customer(
        conn,
        mode,
        customer_id,
        condition,
        vec![group.into()],
        order,
    )
    .await
}

/// Customers with a granting subscription to `plan`.
pub async fn customers_on_plan(
    conn: &mut Conn,
    mode: Mode,
    plan: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sql::query(format!(
        "SELECT DISTINCT customer_id FROM subscriptions WHERE mode = $1 AND plan_identifier = $2
         AND status IN {GRANTING}"
    ))
    .bind(mode.as_str())
    .bind(plan)
    .scalars(conn)
    .await
}

/// Customers with a granting subscription to one of `plans`, after `after` in id order, at most
/// `limit`: one chunk of a catalog recompile.
pub async fn customers_on_plans_after(
    conn: &mut Conn,
    mode: Mode,
    plans: &[String],
    after: &str,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    if plans.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (0..plans.len()).map(|i| format!("${}", i + 4)).collect();
    let mut query = sql::query(format!(
        "SELECT DISTINCT customer_id FROM subscriptions
         WHERE mode = $1 AND customer_id > $2 AND status IN {GRANTING} AND plan_identifier IN ({})
         ORDER BY customer_id LIMIT $3",
        marks.join(", ")
    ))
    .bind(mode.as_str())
    .bind(after)
    .bind(limit);
    for plan in plans {
        query = query.bind(plan.as_str());
    }
    query.scalars(conn).await
}

/// Subscriptions to `plan` that have not ended (they pin its group and default-ness).
pub async fn count_live_on_plan(
    conn: &mut Conn,
    mode: Mode,
    plan: &str,
) -> Result<i64, sqlx::Error> {
    sql::query(
        "SELECT COUNT(*) FROM subscriptions WHERE mode = $1 AND plan_identifier = $2 AND status <> 'canceled'",
    )
    .bind(mode.as_str())
    .bind(plan)
    .scalar(conn)
    .await
}

/// An `incomplete` subscription, waiting for its checkout to be paid.
pub async fn insert_incomplete(
    uow: &mut Uow,
    mode: Mode,
    id: &str,
    customer_id: &str,
    price: &PlanPrice,
    quantity: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO subscriptions (id, mode, customer_id, plan_identifier, grp, charge_period, amount_minor, currency,
           quantity, status, started_at, current_period_start, cycle_anchor, created_at, modified_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'incomplete', $10, $10, $10, $10, $10)",
    )
    .bind(id)
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(&price.plan)
    .bind(&price.group)
    .bind(price.charge_period.as_str())
    .bind(price.amount_minor)
    .bind(price.currency)
    .bind(quantity)
    .bind(now)
    .execute(uow.conn())
    .await?;
    Ok(())
}

/// What a started subscription looks like at its start.
pub struct Start<'a> {
    pub id: &'a str,
    pub customer_id: &'a str,
    pub price: &'a PlanPrice,
    pub quantity: i64,
    pub status: Status,
    pub period_end: Option<i64>,
    pub trial_end: Option<i64>,
    pub anchor: i64,
}

/// Starts (inserts, or activates a pending row in place) a granting subscription. The caller
/// has ended any other granting subscription in the group first.
pub async fn start(uow: &mut Uow, mode: Mode, now: i64, s: Start<'_>) -> Result<(), sqlx::Error> {
    sql::query(
        "INSERT INTO subscriptions (id, mode, customer_id, plan_identifier, grp, charge_period, amount_minor, currency,
           quantity, status, started_at, current_period_start, current_period_end, trial_end, created_at, modified_at,
           cycle_anchor, cycle_index)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $11, $11, $14, 0)
         ON CONFLICT (id) DO UPDATE SET plan_identifier = excluded.plan_identifier, grp = excluded.grp,
           charge_period = excluded.charge_period, amount_minor = excluded.amount_minor, currency = excluded.currency,
           quantity = excluded.quantity, status = excluded.status, started_at = excluded.started_at,
           current_period_start = excluded.current_period_start, current_period_end = excluded.current_period_end,
           trial_end = excluded.trial_end, modified_at = excluded.modified_at, cycle_anchor = excluded.cycle_anchor,
           cycle_index = 0",
    )
    .bind(s.id)
    .bind(mode.as_str())
    .bind(s.customer_id)
    .bind(&s.price.plan)
    .bind(&s.price.group)
    .bind(s.price.charge_period.as_str())
    .bind(s.price.amount_minor)
    .bind(s.price.currency)
    .bind(s.quantity)
    .bind(s.status.as_str())
    .bind(now)
    .bind(s.period_end)
    .bind(s.trial_end)
    .bind(s.anchor)
    .execute(uow.conn())
    .await?;
    uow.touch(mode, s.customer_id);
    Ok(())
}

/// Ends every granting subscription of a customer in a group: one plan per group. Returns the
/// ids it ended.
pub async fn end_granting_in_group(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    group: &str,
    now: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let ids: Vec<String> = sql::query(format!(
        "SELECT id FROM subscriptions WHERE mode = $1 AND customer_id = $2 AND grp = $3 AND status IN {GRANTING}"
    ))
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(group)
    .scalars(uow.conn())
    .await?;
    for id in &ids {
        sql::query(
            "UPDATE subscriptions SET status = 'canceled', canceled_at = $1, ended_at = $1, modified_at = $1
             WHERE mode = $2 AND id = $3",
        )
        .bind(now)
        .bind(mode.as_str())
        .bind(id)
        .execute(uow.conn())
        .await?;
    }
    if !ids.is_empty() {
        uow.touch(mode, customer_id);
    }
    Ok(ids)
}

/// Whether a change to a subscription row can move its customer's grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grants {
    /// Status, plan or quantity changed: the customer is recompiled before commit.
    Move,
    /// Only what is scheduled, or dunning bookkeeping: the grants stay as they are.
    Stay,
}

/// The one way a single subscription row changes: `SET {set}` (its placeholders `$1…$n` bound
/// to `values`, in order), `modified_at = at`, on `sub` only; and when the change can move
/// grants, the customer is touched for recompiling, so no caller can forget it.
async fn update(
    uow: &mut Uow,
    sub: &Subscription,
    set: &str,
    values: Vec<sql::Value>,
    at: i64,
    grants: Grants,
) -> Result<(), sqlx::Error> {
    let n = values.len();
    let mut query = sql::query(format!(
        "UPDATE subscriptions SET {set}, modified_at = ${} WHERE mode = ${} AND id = ${}",
        n + 1,
        n + 2,
        n + 3
    ));
    for value in values {
        query = query.bind(value);
    }
    query
        .bind(at)
        .bind(sub.mode.as_str())
        .bind(sub.id.as_str())
        .execute(uow.conn())
        .await?;
    if grants == Grants::Move {
        uow.touch(sub.mode, &sub.customer_id);
    }
    Ok(())
}

/// Marks a subscription ended at `at` (no more retries).
pub async fn mark_ended(uow: &mut Uow, sub: &Subscription, at: i64) -> Result<(), sqlx::Error> {
    update(
        uow,
        sub,
        "status = 'canceled', ended_at = $1, canceled_at = COALESCE(canceled_at, $1), next_retry_at = NULL",
        vec![at.into()],
        at,
        Grants::Move,
    )
    .await
}

/// One pending change per subscription: a new one replaces the old.
pub async fn schedule(
    uow: &mut Uow,
    sub: &Subscription,
    target: &PlanPrice,
    quantity: i64,
    to_free: bool,
    now: i64,
) -> Result<(), sqlx::Error> {
    update(
        uow,
        sub,
        "scheduled_plan = $1, scheduled_period = $2, scheduled_quantity = $3,
           cancel_at_period_end = $4, cancel_at = NULL,
           canceled_at = CASE WHEN $4 = 1 THEN $5 ELSE NULL END",
        vec![
            target.plan.as_str().into(),
            target.charge_period.as_str().into(),
            quantity.into(),
            i64::from(to_free).into(),
            now.into(),
        ],
        now,
        Grants::Stay,
    )
    .await
}

/// Clears a scheduled change or cancellation (resume).
pub async fn clear_pending(uow: &mut Uow, sub: &Subscription, now: i64) -> Result<(), sqlx::Error> {
    update(
        uow,
        sub,
        "scheduled_plan = NULL, scheduled_period = NULL, scheduled_quantity = NULL,
           cancel_at_period_end = 0, cancel_at = NULL, canceled_at = NULL",
        Vec::new(),
        now,
        Grants::Stay,
    )
    .await
}

/// Cancels at the period's end (`at == None`) or at a given time.
pub async fn cancel_later(
    uow: &mut Uow,
    sub: &Subscription,
    at: Option<i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (set, values) = match at {
        Some(at) => (
            "cancel_at = $1, canceled_at = $2",
            vec![at.into(), now.into()],
        ),
        None => (
            "cancel_at_period_end = 1, canceled_at = $1",
            vec![now.into()],
        ),
    };
    update(uow, sub, set, values, now, Grants::Stay).await
}

/// An immediate plan, period or quantity change. `cycle` says whether the current period goes
/// on, a new cycle starts now, or a trial runs from now to a date (then the first charged
/// cycle is anchored there, as when a subscription starts with a trial).
pub async fn change_now(
    uow: &mut Uow,
    sub: &Subscription,
    target: &PlanPrice,
    quantity: i64,
    cycle: Cycle,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (start, end, anchor, index) = match cycle {
        Cycle::Same => (
            sub.period_start,
            sub.period_end,
            sub.cycle_anchor,
            sub.cycle_index,
        ),
        Cycle::New => (now, target.charge_period.first_period_end(now), now, 0),
        Cycle::TrialUntil(at) => (now, Some(at), at, 0),
    };
    let (status, trial_end) = match cycle {
        Cycle::Same => (sub.status, sub.trial_end),
        // A trial that ends now ends with the new paid cycle.
        Cycle::New if sub.status == Status::Trialing => (Status::Active, Some(now)),
        Cycle::New => (sub.status, sub.trial_end),
        Cycle::TrialUntil(at) => (Status::Trialing, Some(at)),
    };
    update(
        uow,
        sub,
        "plan_identifier = $1, charge_period = $2, amount_minor = $3, currency = $4,
           quantity = $5, scheduled_plan = NULL, scheduled_period = NULL, scheduled_quantity = NULL,
           cancel_at_period_end = 0, cancel_at = NULL, canceled_at = NULL, current_period_start = $6,
           current_period_end = $7, cycle_anchor = $8, cycle_index = $9, status = $10, trial_end = $11",
        vec![
            target.plan.as_str().into(),
            target.charge_period.as_str().into(),
            target.amount_minor.into(),
            target.currency.as_str().into(),
            quantity.into(),
            start.into(),
            end.into(),
            anchor.into(),
            index.into(),
            status.as_str().into(),
            trial_end.into(),
        ],
        now,
        Grants::Move,
    )
    .await
}

/// The next period after a period end: plan, price and cycle as renewed, and the dunning state
/// the charge left behind.
pub struct Renewal<'a> {
    pub status: Status,
    pub plan: &'a str,
    pub period: ChargePeriod,
    pub amount: i64,
    pub currency: Currency,
    pub quantity: i64,
    pub period_start: i64,
    pub period_end: Option<i64>,
    pub anchor: i64,
    pub index: i64,
    pub dunning_invoice: Option<&'a str>,
    pub dunning_started_at: Option<i64>,
    pub next_retry_at: Option<i64>,
}

pub async fn renew(
    uow: &mut Uow,
    sub: &Subscription,
    r: Renewal<'_>,
    at: i64,
) -> Result<(), sqlx::Error> {
    update(
        uow,
        sub,
        "status = $1, plan_identifier = $2, charge_period = $3, amount_minor = $4, currency = $5,
           quantity = $6, current_period_start = $7, current_period_end = $8, cycle_anchor = $9,
           cycle_index = $10, scheduled_plan = NULL, scheduled_period = NULL, scheduled_quantity = NULL,
           dunning_invoice = $11, dunning_attempts = 0, dunning_started_at = $12, next_retry_at = $13",
        vec![
            r.status.as_str().into(),
            r.plan.into(),
            r.period.as_str().into(),
            r.amount.into(),
            r.currency.into(),
            r.quantity.into(),
            r.period_start.into(),
            r.period_end.into(),
            r.anchor.into(),
            r.index.into(),
            r.dunning_invoice.into(),
            r.dunning_started_at.into(),
            r.next_retry_at.into(),
        ],
        at,
        Grants::Move,
    )
    .await
}

/// A subscription whose first invoice waits for its payment intent: `incomplete`, granting
/// nothing, until the intent succeeds ([`activate_paid`]).
pub async fn await_payment(
    uow: &mut Uow,
    mode: Mode,
    id: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    sql::query(
        "UPDATE subscriptions SET status = 'incomplete', modified_at = $1 WHERE mode = $2 AND id = $3",
    )
    .bind(at)
    .bind(mode.as_str())
    .bind(id)
    .execute(uow.conn())
    .await?;
    Ok(())
}

/// Its first payment failed: the `incomplete` subscription never starts.
pub async fn expire_incomplete(
    uow: &mut Uow,
    sub: &Subscription,
    at: i64,
) -> Result<(), sqlx::Error> {
    update(
        uow,
        sub,
        "status = 'incomplete_expired', ended_at = $1, next_retry_at = NULL",
        vec![at.into()],
        at,
        Grants::Move,
    )
    .await
}

/// Its first invoice was paid: the `incomplete` subscription starts.
pub async fn activate_paid(uow: &mut Uow, sub: &Subscription, at: i64) -> Result<(), sqlx::Error> {
    update(uow, sub, "status = 'active'", Vec::new(), at, Grants::Move).await
}

/// A renewal's charge failed: `past_due`, its invoice the one dunning retries.
pub async fn start_dunning(
    uow: &mut Uow,
    sub: &Subscription,
    invoice: &str,
    next_retry_at: Option<i64>,
    at: i64,
) -> Result<(), sqlx::Error> {
    update(
        uow,
        sub,
        "status = 'past_due', dunning_invoice = $1, dunning_attempts = 0, dunning_started_at = $2,
           next_retry_at = $3",
        vec![invoice.into(), at.into(), next_retry_at.into()],
        at,
        Grants::Move,
    )
    .await
}

/// A dunning retry is with the payments worker: no other retry is due until it settles.
pub async fn pause_retries(uow: &mut Uow, sub: &Subscription, at: i64) -> Result<(), sqlx::Error> {
    update(
        uow,
        sub,
        "next_retry_at = NULL",
        Vec::new(),
        at,
        Grants::Stay,
    )
    .await
}

/// Dunning recovered: the retried invoice was paid.
pub async fn recovered(uow: &mut Uow, sub: &Subscription, at: i64) -> Result<(), sqlx::Error> {
    update(
        uow,
        sub,
        "status = 'active', dunning_invoice = NULL, dunning_attempts = 0, next_retry_at = NULL",
        Vec::new(),
        at,
        Grants::Move,
    )
    .await
}

/// Dunning goes on: another retry at `next_retry_at`.
pub async fn retry_later(
    uow: &mut Uow,
    sub: &Subscription,
    attempts: i64,
    next_retry_at: i64,
    at: i64,
) -> Result<(), sqlx::Error> {
    update(
        uow,
        sub,
        "dunning_attempts = $1, next_retry_at = $2",
        vec![attempts.into(), next_retry_at.into()],
        at,
        Grants::Stay,
    )
    .await
}

/// Granting subscriptions with something due at or before `until`, soonest first.
pub async fn due(
    conn: &mut Conn,
    scope: Scope<'_>,
    until: i64,
    limit: i64,
) -> Result<Vec<DueItem>, sqlx::Error> {
    const NEVER: i64 = i64::MAX;
    let least = match conn.backend() {
        Backend::Sqlite => "MIN",
        Backend::Postgres => "LEAST",
    };
    let sql = format!(
        "SELECT mode, id, customer_id, due FROM (
           SELECT s.mode, s.id, s.customer_id, {least}(COALESCE(s.current_period_end, {NEVER}),
                  COALESCE(s.cancel_at, {NEVER}), COALESCE(s.next_retry_at, {NEVER})) AS due
           FROM subscriptions s JOIN customers c ON c.mode = s.mode AND c.customer_id = s.customer_id
           WHERE s.status IN {GRANTING} AND {{scope}}) d
         WHERE due <= $2 ORDER BY due, id LIMIT $3"
    );
    due_items(conn, scope, &sql, vec![until.into(), limit.into()]).await
}

// ---- 4geeks' reads: subscriptions named by their price id -----------------------------------

const PRICE_LISTED: &str =
    "s.id, s.customer_id, s.status, s.current_period_start, s.current_period_end,
    s.trial_end, s.created_at, (SELECT p.id FROM prices p WHERE p.mode = s.mode
    AND p.plan_identifier = s.plan_identifier AND p.charge_period = s.charge_period) AS price_id";

/// A subscription as 4geeks lists it: with the id of the price it is on.
#[derive(Debug, Clone)]
pub struct PriceListed {
    pub id: String,
    pub customer_id: String,
    pub status: String,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub trial_end: Option<i64>,
    pub created_at: i64,
    pub price_id: Option<String>,
}

fn price_listed(r: &sql::Row) -> Result<PriceListed, sqlx::Error> {
    Ok(PriceListed {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        status: r.try_get("status")?,
        current_period_start: r.try_get("current_period_start")?,
        current_period_end: r.try_get("current_period_end")?,
        trial_end: r.try_get("trial_end")?,
        created_at: r.try_get("created_at")?,
        price_id: r.try_get("price_id")?,
    })
}

/// Which subscriptions [`page_by_price`] lists.
#[derive(Debug, Clone, Copy)]
pub struct ByPrice<'a> {
    pub status: Option<&'a str>,
    pub price_id: Option<&'a str>,
    /// Asks for nothing (the other mode's subscriptions, say): an empty page, counted as such.
    pub none: bool,
}

/// A page of `mode`'s subscriptions, newest first, and how many there are in all.
pub async fn page_by_price(
    conn: &mut Conn,
    mode: Mode,
    by: ByPrice<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<PriceListed>, i64), sqlx::Error> {
    let filter = "s.mode = $1 AND ($2 IS NULL OR s.status = $2) AND ($3 IS NULL OR EXISTS (SELECT 1 FROM prices p
        WHERE p.mode = s.mode AND p.id = $3 AND p.plan_identifier = s.plan_identifier AND p.charge_period = s.charge_period)) AND $4 = 0";
    let count: i64 = sql::query(format!(
        "SELECT COUNT(*) FROM subscriptions s WHERE {filter}"
    ))
    .bind(mode.as_str())
    .bind(by.status)
    .bind(by.price_id)
    .bind(i64::from(by.none))
    .scalar(&mut *conn)
    .await?;
    let rows = sql::query(format!(
        "SELECT {PRICE_LISTED} FROM subscriptions s WHERE {filter} ORDER BY s.created_at DESC, s.id DESC LIMIT $5 OFFSET $6"
    ))
    .bind(mode.as_str())
    .bind(by.status)
    .bind(by.price_id)
    .bind(i64::from(by.none))
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    let rows = rows.iter().map(price_listed).collect::<Result<_, _>>()?;
    Ok((rows, count))
}

/// Up to `limit` subscriptions to `plan`, newest first.
pub async fn on_plan_by_price(
    conn: &mut Conn,
    mode: Mode,
    plan: &str,
    limit: i64,
) -> Result<Vec<PriceListed>, sqlx::Error> {
    sql::query(format!(
        "SELECT {PRICE_LISTED} FROM subscriptions s WHERE s.mode = $1 AND s.plan_identifier = $2
         ORDER BY s.created_at DESC, s.id DESC LIMIT $3"
    ))
    .bind(mode.as_str())
    .bind(plan)
    .bind(limit)
    .fetch_all(conn)
    .await?
    .iter()
    .map(price_listed)
    .collect()
}

/// One subscription with the id of its price.
pub async fn by_price(
    conn: &mut Conn,
    mode: Mode,
    id: &str,
) -> Result<Option<PriceListed>, sqlx::Error> {
    sql::query(format!(
        "SELECT {PRICE_LISTED} FROM subscriptions s WHERE s.mode = $1 AND s.id = $2"
    ))
    .bind(mode.as_str())
    .bind(id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(price_listed)
    .transpose()
}
