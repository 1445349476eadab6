//! `control-plane copy --from sqlite://… --to postgres://…`: moves a whole embedded database
//! up to PostgreSQL — every table, both modes, keys still hashed, the change log and its
//! version counter intact, so edges synced before the move resume after it with `since`.
//!
//! The target is migrated first and must hold no data. Rows go over in chunks, inside one
//! target transaction: a failed copy leaves the target as empty as it was.

use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::platform::db::sql;

use crate::platform::db::sql::{Conn, Kind, Value};
use crate::platform::db::{Backend, Db, PoolSizes};

/// Every table, in an order that keeps related rows together. `_sqlx_migrations` is not copied:
/// the target has its own history.
pub const TABLES: &[&str] = &[
    "settings",
    "api_keys",
    "features",
    "plans",
    "prices",
    "plan_features",
    "test_clocks",
    "customers",
    "payment_methods",
    "customer_balances",
    "catalog_recompiles",
    "checkout_sessions",
    "subscriptions",
    "customer_entitlements",
    "change_log",
    "idempotency_keys",
    "invoices",
    "invoice_lines",
    "usage_counters",
    "webhook_endpoints",
    "webhook_events",
    "webhook_deliveries",
    "portal_sessions",
    "usage_events",
    "refunds",
    "payment_intents",
    "processor_events",
    "licenses",
    "license_instances",
];

/// Rows per INSERT statement.
const CHUNK: usize = 200;

/// Copies `from` into `to`. Returns rows copied per table.
pub async fn run(from: &str, to: &str) -> anyhow::Result<Vec<(String, u64)>> {
    if Backend::of_url(from) != Some(Backend::Sqlite) {
        bail!("--from must be a sqlite:// URL");
    }
    if Backend::of_url(to) != Some(Backend::Postgres) {
        bail!("--to must be a postgres:// URL");
    }
    let source = Db::open(from, PoolSizes { read: 1, sync: 1 })
        .await
        .context("opening the source")?;
    let target = Db::open(to, PoolSizes { read: 1, sync: 1 })
        .await
        .context("opening (and migrating) the target")?;
    let mut src = source.read().await?;
    let mut dst = target.connect_writer().await?;
    // A table added by a migration but missing from TABLES would be silently left behind.
    let present: Vec<String> = sql::query(
        "SELECT name FROM sqlite_master WHERE type = 'table'
           AND name NOT LIKE 'sqlite_%' AND name NOT IN ('_sqlx_migrations', 'sync_state')",
    )
    .scalars(&mut src)
    .await?;
    if let Some(unknown) = present.iter().find(|t| !TABLES.contains(&t.as_str())) {
        bail!("table {unknown} is not in copy::TABLES; this build cannot copy it");
    }
    for table in TABLES {
        let n: i64 = sql::query(format!("SELECT COUNT(*) FROM {table}"))
            .scalar(&mut dst)
            .await?;
        if n > 0 {
            bail!(
                "the target already holds data ({n} rows in {table}); copy into an empty database"
            );
        }
    }
    let started = Instant::now();
    dst.batch("BEGIN").await?;
    let result = copy_all(&mut src, &mut dst).await;
    match result {
        Ok(counts) => {
            dst.batch("COMMIT").await?;
            eprintln!(
                "copied {} rows in {:.1} s",
                counts.iter().map(|(_, n)| n).sum::<u64>(),
                started.elapsed().as_secs_f64()
            );
            Ok(counts)
        }
        Err(e) => {
            let _ = dst.batch("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn copy_all(src: &mut Conn, dst: &mut Conn) -> anyhow::Result<Vec<(String, u64)>> {
    let mut counts = Vec::new();
    for table in TABLES {
        let described: Vec<(String, String)> = sql::query(
            "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(*table)
        .fetch_all_as(dst)
        .await?;
        let columns: Vec<String> = described.iter().map(|(c, _)| c.clone()).collect();
        let kinds: Vec<Kind> = described
            .iter()
            .map(|(_, t)| match t.as_str() {
                "text" | "character varying" => Kind::Text,
                "bytea" => Kind::Blob,
                _ => Kind::Int,
            })
            .collect();
        if columns.is_empty() {
            bail!("the target has no table {table}");
        }
        let total: i64 = sql::query(format!("SELECT COUNT(*) FROM {table}"))
            .scalar(src)
            .await?;
        let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0)).with_style(
            ProgressStyle::with_template("{msg:24} {bar:40} {pos}/{len} rows")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(table.to_string());
        let list = columns.join(", ");
        // Keyset pages in rowid order keep memory bounded whatever the table's size.
        let mut last_rowid: i64 = 0;
        let mut copied: u64 = 0;
        loop {
            let rows = sql::query(format!(
                "SELECT rowid AS tollgate_rowid, {list} FROM {table} WHERE rowid > $1 ORDER BY rowid LIMIT $2"
            ))
            .bind(last_rowid)
            .bind(CHUNK as i64)
            .fetch_all(src)
            .await?;
            if rows.is_empty() {
                break;
            }
            let mut insert = format!("INSERT INTO {table} ({list}) VALUES ");
            let mut query_args: Vec<Value> = Vec::with_capacity(rows.len() * columns.len());
            for (r, row) in rows.iter().enumerate() {
                if r > 0 {
                    insert.push_str(", ");
                }
                insert.push('(');
                for (c, column) in columns.iter().enumerate() {
                    if c > 0 {
                        insert.push_str(", ");
                    }
                    query_args.push(coerce(row.try_get::<Value>(column)?, kinds[c])?);
                    insert.push_str(&format!("${}", query_args.len()));
                }
                insert.push(')');
                last_rowid = row.try_get("tollgate_rowid")?;
            }
            let mut q = sql::query(insert);
            for a in query_args {
                q = q.bind(a);
            }
            q.execute(dst).await?;
            copied += rows.len() as u64;
            bar.set_position(copied);
        }
        bar.finish();
        counts.push((table.to_string(), copied));
    }
    // The version counter, and the sequences behind invoice line ids and card numbers.
    let version: i64 = sql::query("SELECT version FROM sync_state WHERE id = 1")
        .scalar(src)
        .await?;
    sql::query("UPDATE sync_state SET version = $1 WHERE id = 1")
        .bind(version)
        .execute(dst)
        .await?;
    dst.batch(
        "SELECT setval('invoice_lines_id_seq', GREATEST((SELECT COALESCE(MAX(id), 0) FROM invoice_lines), 1))",
    )
    .await?;
    dst.batch(
        "SELECT setval('payment_methods_number_seq', GREATEST((SELECT COALESCE(MAX(number), 0) FROM payment_methods), 1))",
    )
    .await?;
    Ok(counts)
}

/// SQLite types values, PostgreSQL columns: a value is made the column's type (and a null
/// gets the column's type, which PostgreSQL insists on).
fn coerce(v: Value, kind: Kind) -> anyhow::Result<Value> {
    Ok(match (v, kind) {
        (Value::Null(_), k) => Value::Null(k),
        (Value::Text(t), Kind::Blob) => Value::Blob(t.into_bytes()),
        (Value::Blob(b), Kind::Text) => Value::Text(String::from_utf8_lossy(&b).into_owned()),
        (Value::Text(t), Kind::Int) => Value::Int(
            t.parse()
                .with_context(|| format!("'{t}' is not an integer"))?,
        ),
        (Value::Real(f), Kind::Int) => Value::Int(f as i64),
        (v, _) => v,
    })
}
