//! Customers: created explicitly or by checkout, looked up by the caller's own `customerId`.
//!
//! * [`routes`] — `/api/v1/customers/…`, including customer-token minting.

pub mod routes;

use serde::Serialize;
use serde_json::Value;
use sqlx::{Row, SqliteConnection};
use tollgate_shared::Mode;

use crate::clock::rfc3339;
use crate::db::WriteTx;
use crate::entitlements;
use crate::error::{Invalid, invalid};

#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("Customer '{0}' not found")]
    NotFound(String),
    #[error("customer '{0}' already exists")]
    Exists(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerView {
    pub id: String,
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub created_on: String,
    pub modified_on: String,
}

pub fn check_email(email: &str) -> Result<(), Invalid> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid("email", "not a valid email address"))
    }
}

pub fn check_customer_id(id: &str) -> Result<(), Invalid> {
    let ok = !id.is_empty() && id.chars().count() <= 255 && !id.chars().any(|c| c.is_control());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "customerId",
            "must be 1-255 characters without control characters",
        ))
    }
}

pub fn check_metadata(metadata: &Value) -> Result<(), Invalid> {
    match metadata {
        Value::Object(map) if map.len() <= 50 && metadata.to_string().len() <= 8 * 1024 => Ok(()),
        Value::Object(_) => Err(invalid("metadata", "at most 50 keys and 8 KiB")),
        _ => Err(invalid("metadata", "must be a JSON object")),
    }
}

pub struct NewCustomer<'a> {
    pub customer_id: &'a str,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub metadata: &'a Value,
    pub test_clock: Option<&'a str>,
}

/// Inserts a customer and compiles their (default) entitlements in the same transaction.
pub async fn insert(
    tx: &mut WriteTx,
    mode: Mode,
    now: i64,
    new: NewCustomer<'_>,
) -> Result<CustomerView, CustomerError> {
    let exists = sqlx::query("SELECT 1 FROM customers WHERE mode = ? AND customer_id = ?")
        .bind(mode.as_str())
        .bind(new.customer_id)
        .fetch_optional(tx.conn())
        .await?
        .is_some();
    if exists {
        return Err(CustomerError::Exists(new.customer_id.to_owned()));
    }
    sqlx::query(
        "INSERT INTO customers (id, mode, customer_id, name, email, metadata, created_at, modified_at, test_clock)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(mode.as_str())
    .bind(new.customer_id)
    .bind(new.name)
    .bind(new.email)
    .bind(new.metadata.to_string())
    .bind(now)
    .bind(now)
    .bind(new.test_clock)
    .execute(tx.conn())
    .await?;
    entitlements::recompile(tx, now, mode, &[new.customer_id.to_owned()]).await?;
    let view = get(tx.conn(), mode, new.customer_id).await?;
    crate::webhooks::emit(tx, mode, now, "customer.created", &view).await?;
    Ok(view)
}

pub async fn find(
    conn: &mut SqliteConnection,
    mode: Mode,
    customer_id: &str,
) -> Result<Option<CustomerView>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, customer_id, name, email, metadata, created_at, modified_at FROM customers WHERE mode = ? AND customer_id = ?",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| view(&r)).transpose()
}

pub async fn get(
    conn: &mut SqliteConnection,
    mode: Mode,
    customer_id: &str,
) -> Result<CustomerView, CustomerError> {
    find(conn, mode, customer_id)
        .await?
        .ok_or_else(|| CustomerError::NotFound(customer_id.to_owned()))
}

pub async fn find_by_email(
    conn: &mut SqliteConnection,
    mode: Mode,
    email: &str,
) -> Result<Option<CustomerView>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, customer_id, name, email, metadata, created_at, modified_at FROM customers
         WHERE mode = ? AND email = ? ORDER BY created_at LIMIT 1",
    )
    .bind(mode.as_str())
    .bind(email)
    .fetch_optional(conn)
    .await?;
    row.map(|r| view(&r)).transpose()
}

fn view(r: &sqlx::sqlite::SqliteRow) -> Result<CustomerView, sqlx::Error> {
    let metadata: String = r.try_get("metadata")?;
    Ok(CustomerView {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        name: r.try_get("name")?,
        email: r.try_get("email")?,
        metadata: serde_json::from_str(&metadata).unwrap_or(Value::Object(Default::default())),
        created_on: rfc3339(r.try_get("created_at")?),
        modified_on: rfc3339(r.try_get("modified_at")?),
    })
}

pub async fn list(
    conn: &mut SqliteConnection,
    mode: Mode,
    email: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<CustomerView>, i64), sqlx::Error> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM customers WHERE mode = ? AND (? IS NULL OR email = ?)",
    )
    .bind(mode.as_str())
    .bind(email)
    .bind(email)
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query(
        "SELECT id, customer_id, name, email, metadata, created_at, modified_at FROM customers
         WHERE mode = ? AND (? IS NULL OR email = ?) ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
    )
    .bind(mode.as_str())
    .bind(email)
    .bind(email)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    let items = rows.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    Ok((items, count))
}
