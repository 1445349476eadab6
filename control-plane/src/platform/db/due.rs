//! "What falls due by then?" queries, which the billing clock asks several stores: each selects
//! `mode, id, customer_id, due` from its table joined to `customers c`, narrowed to one
//! [`Scope`] of customers. The scope's filter, its binding and the row shape live here once.

use tollgate_shared::Mode;

use crate::platform::db::sql::{self, Conn, Value};

/// Whose time a billing-clock pass reads: customers on real time, or those of one test clock.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    RealTime,
    TestClock(&'a str),
}

impl<'a> Scope<'a> {
    /// The condition on `c` (the customers table) that selects the scope; it binds `$1`.
    fn filter(self) -> &'static str {
        match self {
            Scope::RealTime => "c.test_clock IS NULL AND $1 IS NULL",
            Scope::TestClock(_) => "c.test_clock = $1",
        }
    }

    fn clock(self) -> Option<&'a str> {
        match self {
            Scope::RealTime => None,
            Scope::TestClock(id) => Some(id),
        }
    }
}

/// One item that falls due: what it is (`id` in its table), whose, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueItem {
    pub mode: Mode,
    pub id: String,
    pub customer_id: String,
    pub at: i64,
}

/// Runs a due-items query. `sql` says `{scope}` where the scope's condition goes, binds its own
/// parameters from `$2` on (`binds`, in order), and selects `mode, id, customer_id, due`.
pub async fn due_items(
    conn: &mut Conn,
    scope: Scope<'_>,
    sql: &str,
    binds: Vec<Value>,
) -> Result<Vec<DueItem>, sqlx::Error> {
    let mut query = sql::query(sql.replace("{scope}", scope.filter())).bind(scope.clock());
    for value in binds {
        query = query.bind(value);
    }
    query
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| {
            Ok(DueItem {
                mode: r.try_get("mode")?,
                id: r.try_get("id")?,
                customer_id: r.try_get("customer_id")?,
                at: r.try_get("due")?,
            })
        })
        .collect()
}
