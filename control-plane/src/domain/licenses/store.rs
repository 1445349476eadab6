//! The `licenses` and `license_instances` tables: every statement on them.

use serde_json::Value;
use tollgate_shared::Mode;

use crate::domain::licenses::model::{License, new_key};
use crate::domain::subscriptions::model::SubscriptionLicense;
use crate::platform::clock::rfc3339;
use crate::platform::db::Uow;
use crate::platform::db::sql;
use crate::platform::db::sql::Conn;
use crate::platform::ids;

const COLUMNS: &str = "id, mode, license_key, customer_id, subscription_id, plan_identifier, activation_limit, enabled,
    created_at, activated_at";

/// Gives a subscription the license its plan grants (`limit`), or takes it away: a
/// subscription on a plan with a limit has exactly one key, kept across plan changes (its limit
/// follows the plan); one on a plan without a limit has its key disabled.
pub async fn ensure_for_subscription(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    subscription_id: &str,
    plan: &str,
    limit: Option<i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let existing: Option<String> =
        sql::query("SELECT id FROM licenses WHERE mode = $1 AND subscription_id = $2")
            .bind(mode.as_str())
            .bind(subscription_id)
            .scalar_optional(uow.conn())
            .await?;
    match (existing, limit) {
        (Some(id), Some(limit)) => {
            sql::query(
                "UPDATE licenses SET plan_identifier = $1, activation_limit = $2, enabled = 1 WHERE id = $3",
            )
            .bind(plan)
            .bind(limit)
            .bind(&id)
            .execute(uow.conn())
            .await?;
        }
        (Some(id), None) => {
            sql::query("UPDATE licenses SET enabled = 0 WHERE id = $1")
                .bind(&id)
                .execute(uow.conn())
                .await?;
        }
        (None, Some(limit)) => {
            sql::query(
                "INSERT INTO licenses (id, mode, license_key, customer_id, subscription_id, plan_identifier,
                   activation_limit, enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)",
            )
            .bind(ids::new("lic"))
            .bind(mode.as_str())
            .bind(new_key())
            .bind(customer_id)
            .bind(subscription_id)
            .bind(plan)
            .bind(limit)
            .bind(now)
            .execute(uow.conn())
            .await?;
        }
        (None, None) => {}
    }
    Ok(())
}

/// The license with this key in `mode`; inside a unit of work it is locked against other
/// replicas' writers (activations at the limit must not both pass).
pub async fn by_key_locked(
    uow: &mut Uow,
    mode: Mode,
    key: &str,
) -> Result<Option<License>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM licenses WHERE mode = $1 AND license_key = $2{}",
        uow.backend().for_update()
    );
    sql::query(sql)
        .bind(mode.as_str())
        .bind(key)
        .fetch_optional_as(uow.conn())
        .await
}

pub async fn by_key(
    conn: &mut Conn,
    mode: Mode,
    key: &str,
) -> Result<Option<License>, sqlx::Error> {
    sql::query(format!(
        "SELECT {COLUMNS} FROM licenses WHERE mode = $1 AND license_key = $2"
    ))
    .bind(mode.as_str())
    .bind(key)
    .fetch_optional_as(conn)
    .await
}

/// Instances active now.
pub async fn active_count(conn: &mut Conn, license_id: &str) -> Result<i64, sqlx::Error> {
    sql::query(
        "SELECT COUNT(*) FROM license_instances WHERE license_id = $1 AND deactivated_at IS NULL",
    )
    .bind(license_id)
    .scalar(conn)
    .await
}

/// Whether `instance` is an active instance of the license.
pub async fn instance_active(
    conn: &mut Conn,
    license_id: &str,
    instance: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sql::query(
        "SELECT 1 FROM license_instances WHERE license_id = $1 AND id = $2 AND deactivated_at IS NULL",
    )
    .bind(license_id)
    .bind(instance)
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// A new active instance; the license's first activation is remembered.
pub async fn activate(
    uow: &mut Uow,
    license: &License,
    name: Option<&str>,
    metadata: Option<&Value>,
    at: i64,
) -> Result<String, sqlx::Error> {
    let id = ids::uuid();
    sql::query(
        "INSERT INTO license_instances (id, mode, license_id, name, metadata, activated_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(license.mode.as_str())
    .bind(&license.id)
    .bind(name)
    .bind(metadata.map(Value::to_string))
    .bind(at)
    .execute(uow.conn())
    .await?;
    sql::query("UPDATE licenses SET activated_at = COALESCE(activated_at, $1) WHERE id = $2")
        .bind(at)
        .bind(&license.id)
        .execute(uow.conn())
        .await?;
    Ok(id)
}

/// Ends an active instance. `false` when there is no such active instance.
pub async fn deactivate(
    uow: &mut Uow,
    license_id: &str,
    instance: &str,
    at: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sql::query(
        "UPDATE license_instances SET deactivated_at = $1
         WHERE license_id = $2 AND id = $3 AND deactivated_at IS NULL",
    )
    .bind(at)
    .bind(license_id)
    .bind(instance)
    .execute(uow.conn())
    .await?
        > 0)
}

/// The metadata an instance was activated with.
pub async fn instance_metadata(
    conn: &mut Conn,
    license_id: &str,
    instance: &str,
) -> Result<Option<Value>, sqlx::Error> {
    let text: Option<Option<String>> =
        sql::query("SELECT metadata FROM license_instances WHERE license_id = $1 AND id = $2")
            .bind(license_id)
            .bind(instance)
            .scalar_optional(conn)
            .await?;
    Ok(text.flatten().and_then(|t| serde_json::from_str(&t).ok()))
}

/// The keys issued with a subscription, as its view lists them.
pub async fn for_subscription(
    conn: &mut Conn,
    mode: Mode,
    subscription_id: &str,
) -> Result<Vec<SubscriptionLicense>, sqlx::Error> {
    let licenses: Vec<License> = sql::query(format!(
        "SELECT {COLUMNS} FROM licenses WHERE mode = $1 AND subscription_id = $2 ORDER BY created_at, id"
    ))
    .bind(mode.as_str())
    .bind(subscription_id)
    .fetch_all_as(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(licenses.len());
    for l in licenses {
        let usage = active_count(conn, &l.id).await?;
        out.push(SubscriptionLicense {
            id: l.id,
            license_key: l.key,
            activated_on: l.activated_at.map(rfc3339),
            expires_on: None,
            activation_usage: usage,
            activation_limit: l.activation_limit,
            enabled: l.enabled,
        });
    }
    Ok(out)
}
