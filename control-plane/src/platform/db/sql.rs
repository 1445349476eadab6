//! One way for stores to run a statement, whichever connection they are handed ([`Conn`]):
//!
//! * a pooled read connection or the PostgreSQL writer's connection — through sqlx;
//! * the SQLite writer's connection — through rusqlite, on the writer's own thread. sqlx runs
//!   each SQLite connection on a worker thread of its own, so every statement would cost two
//!   thread hops; the writer runs thousands of small statements a second, and those hops were
//!   most of its time (BENCHMARKS.md, "The write path").
//!
//! Statements use `$1` placeholders on both engines. Values are owned ([`Value`]), typed even
//! when null, because PostgreSQL wants to know a parameter's type.

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Row as _};

use crate::platform::db::Backend;

/// A connection a store can run statements on.
pub enum Conn {
    /// From a read pool.
    Pooled(PoolConnection<Any>),
    /// A standalone sqlx connection (the PostgreSQL writer's).
    Any(AnyConnection),
    /// The SQLite writer's connection.
    Lite(Box<rusqlite::Connection>),
}

impl Conn {
    pub fn backend(&self) -> Backend {
        match self {
            Conn::Pooled(c) => crate::platform::db::backend_of(c),
            Conn::Any(c) => crate::platform::db::backend_of(c),
            Conn::Lite(_) => Backend::Sqlite,
        }
    }

    /// The sqlx connection underneath, for what the facade does not do (streams, transactions
    /// of a read connection). `None` for the SQLite writer.
    pub fn any_mut(&mut self) -> Option<&mut AnyConnection> {
        match self {
            Conn::Pooled(c) => Some(&mut **c),
            Conn::Any(c) => Some(c),
            Conn::Lite(_) => None,
        }
    }

    /// Runs statements that take no parameters and return nothing (`BEGIN`, `SAVEPOINT`…),
    /// several separated by `;`.
    pub async fn batch(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Conn::Lite(c) => c.execute_batch(sql).map_err(lite_error),
            other => {
                let any = other.any_mut().ok_or_else(no_connection)?;
                // A bare string runs as a simple query: several statements are allowed.
                sqlx::Executor::execute(any, sql).await.map(|_| ())
            }
        }
    }

    /// Closes the connection.
    pub async fn close(self) -> Result<(), sqlx::Error> {
        use sqlx::Connection;
        match self {
            Conn::Pooled(c) => {
                drop(c);
                Ok(())
            }
            Conn::Any(c) => c.close().await,
            Conn::Lite(c) => c.close().map_err(|(_, e)| lite_error(e)),
        }
    }
}

fn no_connection() -> sqlx::Error {
    sqlx::Error::Protocol("no connection".into())
}

/// The type a null stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Blob,
}

/// A parameter or a column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null(Kind),
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(v)
    }
}

/// Types whose nulls know what they stand for.
pub trait Nullable {
    const KIND: Kind;
}

impl Nullable for i64 {
    const KIND: Kind = Kind::Int;
}
impl Nullable for &str {
    const KIND: Kind = Kind::Text;
}
impl Nullable for String {
    const KIND: Kind = Kind::Text;
}
impl Nullable for &String {
    const KIND: Kind = Kind::Text;
}
impl Nullable for Vec<u8> {
    const KIND: Kind = Kind::Blob;
}

impl<T: Into<Value> + Nullable> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        match v {
            Some(v) => v.into(),
            None => Value::Null(T::KIND),
        }
    }
}

impl<T: Clone + Into<Value> + Nullable> From<&Option<T>> for Value {
    fn from(v: &Option<T>) -> Value {
        v.clone().into()
    }
}

/// A value decoded from a column.
pub trait Decode: Sized {
    fn decode(v: &Value) -> Result<Self, String>;
}

impl Decode for i64 {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}

impl Decode for String {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl Decode for Vec<u8> {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.clone().into_bytes()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}

/// A row's mode: a value that is neither `test` nor `live` is a decode error, never a default.
impl Decode for tollgate_shared::Mode {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => {
                tollgate_shared::Mode::parse(s).ok_or_else(|| format!("'{s}' is not a mode"))
            }
            other => Err(format!("expected a mode, found {other:?}")),
        }
    }
}

impl Decode for crate::platform::money::Currency {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => crate::platform::money::Currency::parse(s)
                .ok_or_else(|| format!("'{s}' is not a currency")),
            other => Err(format!("expected a currency, found {other:?}")),
        }
    }
}

impl From<crate::platform::money::Currency> for Value {
    fn from(v: crate::platform::money::Currency) -> Value {
        Value::Text(v.as_str().to_owned())
    }
}

impl From<&crate::platform::money::Currency> for Value {
    fn from(v: &crate::platform::money::Currency) -> Value {
        Value::Text(v.as_str().to_owned())
    }
}

impl Decode for crate::platform::period::ChargePeriod {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => crate::platform::period::ChargePeriod::parse(s)
                .ok_or_else(|| format!("'{s}' is not a charge period")),
            other => Err(format!("expected a charge period, found {other:?}")),
        }
    }
}

impl Decode for Value {
    fn decode(v: &Value) -> Result<Self, String> {
        Ok(v.clone())
    }
}

impl<T: Decode> Decode for Option<T> {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null(_) => Ok(None),
            other => T::decode(other).map(Some),
        }
    }
}

/// A row, decoded to owned values.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    pub fn try_get<T: Decode>(&self, column: &str) -> Result<T, sqlx::Error> {
        let index = self
            .columns
            .iter()
            .position(|c| c == column)
            .ok_or_else(|| sqlx::Error::ColumnNotFound(column.to_owned()))?;
        self.get_at(index)
    }

    pub fn get_at<T: Decode>(&self, index: usize) -> Result<T, sqlx::Error> {
        let value = self
            .values
            .get(index)
            .ok_or(sqlx::Error::ColumnIndexOutOfBounds {
                index,
                len: self.values.len(),
            })?;
        T::decode(value).map_err(|e| sqlx::Error::ColumnDecode {
            index: self
                .columns
                .get(index)
                .cloned()
                .unwrap_or_else(|| index.to_string()),
            source: e.into(),
        })
    }
}

/// Rows decoded into a type.
pub trait FromRow: Sized {
    fn from_row(row: &Row) -> Result<Self, sqlx::Error>;
}

macro_rules! tuple_from_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Decode),+> FromRow for ($($t,)+) {
            fn from_row(row: &Row) -> Result<Self, sqlx::Error> {
                Ok(($(row.get_at::<$t>($i)?,)+))
            }
        }
    };
}
tuple_from_row!(A 0);
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);

/// A statement and its parameters.
#[must_use]
pub struct Query {
    sql: Cow<'static, str>,
    args: Vec<Value>,
}

pub fn query(sql: impl Into<Cow<'static, str>>) -> Query {
    Query {
        sql: sql.into(),
        args: Vec::new(),
    }
}

enum Want {
    Nothing,
    Rows,
}

struct Outcome {
    rows: Vec<Row>,
    affected: u64,
}

impl Query {
    pub fn bind(mut self, v: impl Into<Value>) -> Query {
        self.args.push(v.into());
        self
    }

    async fn run(self, conn: &mut Conn, want: Want) -> Result<Outcome, sqlx::Error> {
        match conn {
            Conn::Lite(c) => run_lite(c, &self.sql, &self.args, want),
            other => {
                let any = other.any_mut().ok_or_else(no_connection)?;
                run_any(any, &self.sql, self.args, want).await
            }
        }
    }

    /// Runs it; returns how many rows it changed.
    pub async fn execute(self, conn: &mut Conn) -> Result<u64, sqlx::Error> {
        Ok(self.run(conn, Want::Nothing).await?.affected)
    }

    pub async fn fetch_all(self, conn: &mut Conn) -> Result<Vec<Row>, sqlx::Error> {
        Ok(self.run(conn, Want::Rows).await?.rows)
    }

    pub async fn fetch_optional(self, conn: &mut Conn) -> Result<Option<Row>, sqlx::Error> {
        Ok(self.run(conn, Want::Rows).await?.rows.into_iter().next())
    }

    pub async fn fetch_one(self, conn: &mut Conn) -> Result<Row, sqlx::Error> {
        self.fetch_optional(conn)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    pub async fn fetch_all_as<T: FromRow>(self, conn: &mut Conn) -> Result<Vec<T>, sqlx::Error> {
        self.fetch_all(conn)
            .await?
            .iter()
            .map(T::from_row)
            .collect()
    }

    pub async fn fetch_optional_as<T: FromRow>(
        self,
        conn: &mut Conn,
    ) -> Result<Option<T>, sqlx::Error> {
        self.fetch_optional(conn)
            .await?
            .map(|r| T::from_row(&r))
            .transpose()
    }

    /// The first column of the first row.
    pub async fn scalar<T: Decode>(self, conn: &mut Conn) -> Result<T, sqlx::Error> {
        self.fetch_one(conn).await?.get_at(0)
    }

    /// The first column of the first row, if there is a row.
    pub async fn scalar_optional<T: Decode>(
        self,
        conn: &mut Conn,
    ) -> Result<Option<T>, sqlx::Error> {
        self.fetch_optional(conn)
            .await?
            .map(|r| r.get_at(0))
            .transpose()
    }

    /// The first column of every row.
    pub async fn scalars<T: Decode>(self, conn: &mut Conn) -> Result<Vec<T>, sqlx::Error> {
        self.fetch_all(conn)
            .await?
            .iter()
            .map(|r| r.get_at(0))
            .collect()
    }
}

async fn run_any(
    conn: &mut AnyConnection,
    sql: &str,
    args: Vec<Value>,
    want: Want,
) -> Result<Outcome, sqlx::Error> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = match a {
            Value::Null(Kind::Int) => q.bind(None::<i64>),
            Value::Null(Kind::Text) => q.bind(None::<String>),
            Value::Null(Kind::Blob) => q.bind(None::<Vec<u8>>),
            Value::Int(i) => q.bind(i),
            Value::Real(f) => q.bind(f),
            Value::Text(s) => q.bind(s),
            Value::Blob(b) => q.bind(b),
        };
    }
    match want {
        Want::Nothing => Ok(Outcome {
            rows: Vec::new(),
            affected: q.execute(conn).await?.rows_affected(),
        }),
        Want::Rows => {
            let rows = q.fetch_all(conn).await?;
            let columns: Arc<[String]> = match rows.first() {
                Some(r) => r
                    .columns()
                    .iter()
                    .map(|c| sqlx::Column::name(c).to_owned())
                    .collect(),
                None => Arc::from([]),
            };
            let rows = rows
                .iter()
                .map(|r| {
                    let values = (0..columns.len())
                        .map(|i| any_value(r, i))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Row {
                        columns: columns.clone(),
                        values,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            Ok(Outcome { rows, affected: 0 })
        }
    }
}

/// One column of an sqlx row as a [`Value`]. SQLite types values, not columns, so decoding
/// tries the kinds we store in turn.
fn any_value(row: &sqlx::any::AnyRow, i: usize) -> Result<Value, sqlx::Error> {
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return Ok(v.map_or(Value::Null(Kind::Int), Value::Int));
    }
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return Ok(v.map_or(Value::Null(Kind::Text), Value::Text));
    }
    if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
        return Ok(v.map_or(Value::Null(Kind::Blob), Value::Blob));
    }
    row.try_get::<Option<f64>, _>(i)
        .map(|v| v.map_or(Value::Null(Kind::Int), Value::Real))
}

fn run_lite(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Value],
    want: Want,
) -> Result<Outcome, sqlx::Error> {
    let mut stmt = conn.prepare_cached(sql).map_err(lite_error)?;
    for i in 1..=stmt.parameter_count() {
        // `$N` names bind argument N, wherever they appear; `?` binds in order.
        let n = match stmt.parameter_name(i) {
            Some(name) => name
                .trim_start_matches(['$', '?'])
                .parse::<usize>()
                .map_err(|_| sqlx::Error::Protocol(format!("unsupported parameter {name}")))?,
            None => i,
        };
        let arg = args.get(n - 1).ok_or_else(|| {
            sqlx::Error::Protocol(format!("statement wants parameter {n}, got {}", args.len()))
        })?;
        let bound = match arg {
            Value::Null(_) => stmt.raw_bind_parameter(i, rusqlite::types::Null),
            Value::Int(v) => stmt.raw_bind_parameter(i, v),
            Value::Real(v) => stmt.raw_bind_parameter(i, v),
            Value::Text(v) => stmt.raw_bind_parameter(i, v),
            Value::Blob(v) => stmt.raw_bind_parameter(i, v),
        };
        bound.map_err(lite_error)?;
    }
    match want {
        Want::Nothing => {
            let affected = stmt.raw_execute().map_err(lite_error)?;
            Ok(Outcome {
                rows: Vec::new(),
                affected: affected as u64,
            })
        }
        Want::Rows => {
            let columns: Arc<[String]> =
                stmt.column_names().into_iter().map(str::to_owned).collect();
            let mut rows = stmt.raw_query();
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(lite_error)? {
                let mut values = Vec::with_capacity(columns.len());
                for i in 0..columns.len() {
                    use rusqlite::types::ValueRef;
                    values.push(match r.get_ref(i).map_err(lite_error)? {
                        ValueRef::Null => Value::Null(Kind::Int),
                        ValueRef::Integer(v) => Value::Int(v),
                        ValueRef::Real(v) => Value::Real(v),
                        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                    });
                }
                out.push(Row {
                    columns: columns.clone(),
                    values,
                });
            }
            Ok(Outcome {
                rows: out,
                affected: 0,
            })
        }
    }
}

/// A SQLite error as sqlx reports database errors, code and all, so the writer classifies
/// both engines' errors the same way (busy → retry; constraint → the caller's fault).
#[derive(Debug)]
pub struct LiteError {
    message: String,
    code: Option<String>,
    kind: sqlx::error::ErrorKind,
}

impl std::fmt::Display for LiteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LiteError {}

impl sqlx::error::DatabaseError for LiteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.as_deref().map(Cow::Borrowed)
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        match &self.kind {
            sqlx::error::ErrorKind::UniqueViolation => sqlx::error::ErrorKind::UniqueViolation,
            sqlx::error::ErrorKind::ForeignKeyViolation => {
                sqlx::error::ErrorKind::ForeignKeyViolation
            }
            sqlx::error::ErrorKind::NotNullViolation => sqlx::error::ErrorKind::NotNullViolation,
            sqlx::error::ErrorKind::CheckViolation => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}

pub fn lite_error(e: rusqlite::Error) -> sqlx::Error {
    use rusqlite::ffi::ErrorCode;
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let kind = match (f.code, f.extended_code) {
                (ErrorCode::ConstraintViolation, 2067 | 1555) => {
                    sqlx::error::ErrorKind::UniqueViolation
                }
                (ErrorCode::ConstraintViolation, 787) => {
                    sqlx::error::ErrorKind::ForeignKeyViolation
                }
                (ErrorCode::ConstraintViolation, 1299) => sqlx::error::ErrorKind::NotNullViolation,
                (ErrorCode::ConstraintViolation, 275) => sqlx::error::ErrorKind::CheckViolation,
                _ => sqlx::error::ErrorKind::Other,
            };
            sqlx::Error::Database(Box::new(LiteError {
                message: msg.clone().unwrap_or_else(|| e.to_string()),
                code: Some(f.extended_code.to_string()),
                kind,
            }))
        }
        _ => sqlx::Error::Protocol(e.to_string()),
    }
}
