//! The `customers` and `payment_methods` tables: every statement on them. Also a customer's
//! "now": their test clock's time if they live on one, else the server's — the one notion of
//! time every billing rule uses for them.

use crate::platform::db::sql;

use crate::platform::db::sql::Conn;
use serde_json::Value;
use tollgate_shared::Mode;

use crate::domain::customers::model::{CustomerError, CustomerView, NewCustomer};
use crate::platform::clock::rfc3339;
use crate::platform::db::Uow;
use crate::platform::db::uow::Subject;
use crate::platform::events::EventKind;
use crate::platform::ids;
use crate::platform::money::Currency;

const COLUMNS: &str =
    "id, customer_id, name, email, metadata, created_at, modified_at, archived_at";

fn view(r: &sql::Row) -> Result<CustomerView, sqlx::Error> {
    let metadata: String = r.try_get("metadata")?;
    Ok(CustomerView {
        id: r.try_get("id")?,
        customer_id: r.try_get("customer_id")?,
        name: r.try_get("name")?,
        email: r.try_get("email")?,
        metadata: serde_json::from_str(&metadata).unwrap_or(Value::Object(Default::default())),
        created_on: rfc3339(r.try_get("created_at")?),
        modified_on: rfc3339(r.try_get("modified_at")?),
        archived: r.try_get::<Option<i64>>("archived_at")?.is_some(),
        archived_on: r.try_get::<Option<i64>>("archived_at")?.map(rfc3339),
    })
}

/// Inserts a customer; the unit of work compiles their (default) entitlements and emits
/// `customer.created`.
pub async fn insert(
    uow: &mut Uow,
    mode: Mode,
    new: NewCustomer<'_>,
) -> Result<CustomerView, CustomerError> {
    let inserted = sql::query(
        "INSERT INTO customers (id, mode, customer_id, name, email, metadata, created_at, modified_at, test_clock)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) ON CONFLICT (mode, customer_id) DO NOTHING",
    )
    .bind(ids::uuid())
    .bind(mode.as_str())
    .bind(new.customer_id)
    .bind(new.name)
    .bind(new.email)
    .bind(new.metadata.to_string())
    .bind(new.created_at)
    .bind(new.test_clock)
    .execute(uow.conn())
    .await?;
    if inserted == 0 {
        return Err(CustomerError::Exists(new.customer_id.to_owned()));
    }
    uow.touch(mode, new.customer_id);
    uow.emit(
        mode,
        EventKind::CustomerCreated,
        Subject::Customer(new.customer_id.to_owned()),
        new.created_at,
    );
    get(uow.conn(), mode, new.customer_id).await
}

/// The customer, created with nothing but its id when it does not exist yet (checkout,
/// `subscribe` and 4geeks create customers on the fly).
pub async fn find_or_create(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    email: Option<&str>,
) -> Result<CustomerView, CustomerError> {
    if let Some(found) = find(uow.conn(), mode, customer_id).await? {
        if found.archived {
            return Err(CustomerError::Archived(customer_id.to_owned()));
        }
        return Ok(found);
    }
    let empty = Value::Object(Default::default());
    let created_at = uow.now();
    insert(
        uow,
        mode,
        NewCustomer {
            customer_id,
            name: None,
            email,
            metadata: &empty,
            test_clock: None,
            created_at,
        },
    )
    .await
}

pub async fn find(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
) -> Result<Option<CustomerView>, sqlx::Error> {
    sql::query(format!(
        "SELECT {COLUMNS} FROM customers WHERE mode = $1 AND customer_id = $2"
    ))
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_optional(conn)
    .await?
    .map(|r| view(&r))
    .transpose()
}

pub async fn get(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
) -> Result<CustomerView, CustomerError> {
    find(conn, mode, customer_id)
        .await?
        .ok_or_else(|| CustomerError::NotFound(customer_id.to_owned()))
}

/// Inside a unit of work: the customer row, locked against other replicas' writers until the
/// unit commits (PostgreSQL); on SQLite the writer is alone anyway. Every write that decides
/// on a customer's subscriptions takes this first, so concurrent decisions queue up.
pub async fn lock(uow: &mut Uow, mode: Mode, customer_id: &str) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "SELECT 1 FROM customers WHERE mode = $1 AND customer_id = $2{}",
        uow.backend().for_update()
    );
    Ok(sql::query(sql)
        .bind(mode.as_str())
        .bind(customer_id)
        .fetch_optional(uow.conn())
        .await?
        .is_some())
}

/// Like [`lock`], but gives up at once when another writer holds the customer (PostgreSQL's
/// `SKIP LOCKED`): background work claims items this way, so replicas never wait on each
/// other nor do the same item twice. `false` also when there is no such customer.
pub async fn try_lock(uow: &mut Uow, mode: Mode, customer_id: &str) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "SELECT 1 FROM customers WHERE mode = $1 AND customer_id = $2{}",
        uow.backend().skip_locked()
    );
    Ok(sql::query(sql)
        .bind(mode.as_str())
        .bind(customer_id)
        .fetch_optional(uow.conn())
        .await?
        .is_some())
}

pub async fn find_by_email(
    conn: &mut Conn,
    mode: Mode,
    email: &str,
) -> Result<Option<CustomerView>, sqlx::Error> {
    sql::query(format!(
        "SELECT {COLUMNS} FROM customers WHERE mode = $1 AND email = $2 AND archived_at IS NULL
         ORDER BY created_at, id LIMIT 1"
    ))
    .bind(mode.as_str())
    .bind(email)
    .fetch_optional(conn)
    .await?
    .map(|r| view(&r))
    .transpose()
}

pub async fn list(
    conn: &mut Conn,
    mode: Mode,
    email: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<CustomerView>, i64), sqlx::Error> {
    let count: i64 = sql::query(
        "SELECT COUNT(*) FROM customers WHERE mode = $1 AND ($2 IS NULL OR email = $2) AND archived_at IS NULL",
    )
            .bind(mode.as_str())
            .bind(email)
            .scalar(&mut *conn)
            .await?;
    let rows = sql::query(format!(
        "SELECT {COLUMNS} FROM customers WHERE mode = $1 AND ($2 IS NULL OR email = $2)
           AND archived_at IS NULL
         ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(mode.as_str())
    .bind(email)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    let items = rows.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    Ok((items, count))
}

/// Changes name, email and metadata (each `None` keeps the stored value).
pub async fn update(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    name: Option<&str>,
    email: Option<&str>,
    metadata: Option<&Value>,
) -> Result<CustomerView, CustomerError> {
    let current = get(uow.conn(), mode, customer_id).await?;
    let now = uow.now();
    sql::query(
        "UPDATE customers SET name = $1, email = $2, metadata = $3, modified_at = $4
         WHERE mode = $5 AND customer_id = $6",
    )
    .bind(name.map(str::to_owned).or(current.name))
    .bind(email.map(str::to_owned).or(current.email))
    .bind(metadata.cloned().unwrap_or(current.metadata).to_string())
    .bind(now)
    .bind(mode.as_str())
    .bind(customer_id)
    .execute(uow.conn())
    .await?;
    uow.emit(
        mode,
        EventKind::CustomerUpdated,
        Subject::Customer(customer_id.to_owned()),
        now,
    );
    get(uow.conn(), mode, customer_id).await
}

/// Archives a customer (Kelviq's `DELETE`): the row and its history stay; lists leave it out
/// and it compiles to the default plans (the unit recompiles it). `false` when it already was.
pub async fn archive(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    at: i64,
) -> Result<bool, sqlx::Error> {
    let changed = sql::query(
        "UPDATE customers SET archived_at = $1, modified_at = $1
         WHERE mode = $2 AND customer_id = $3 AND archived_at IS NULL",
    )
    .bind(at)
    .bind(mode.as_str())
    .bind(customer_id)
    .execute(uow.conn())
    .await?;
    if changed > 0 {
        uow.touch(mode, customer_id);
    }
    Ok(changed > 0)
}

/// Whether the customer is archived (`false` for one that does not exist).
pub async fn is_archived(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sql::query(
        "SELECT 1 FROM customers WHERE mode = $1 AND customer_id = $2 AND archived_at IS NOT NULL",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// When the customer was created and what time it is for them (`real_now`, or their test
/// clock's frozen time). `None` when there is no such customer.
pub async fn clock(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
    real_now: i64,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let row: Option<(i64, Option<i64>)> = sql::query(
        "SELECT c.created_at, t.frozen_time FROM customers c LEFT JOIN test_clocks t ON t.id = c.test_clock
         WHERE c.mode = $1 AND c.customer_id = $2",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_optional_as(conn)
    .await?;
    Ok(row.map(|(created, frozen)| (created, frozen.unwrap_or(real_now))))
}

/// Inside a unit of work: "now" for one customer (their test clock's time, or the unit's).
pub async fn now_of(uow: &mut Uow, mode: Mode, customer_id: &str) -> Result<i64, sqlx::Error> {
    let real_now = uow.now();
    now_for(uow.conn(), mode, customer_id, real_now).await
}

/// "Now" for one customer: their test clock's frozen time if they live on one, else `real_now`.
pub async fn now_for(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
    real_now: i64,
) -> Result<i64, sqlx::Error> {
    Ok(clock(conn, mode, customer_id, real_now)
        .await?
        .map_or(real_now, |(_, now)| now))
}

// ---- payment methods -------------------------------------------------------------------------

/// The behaviour of the customer's newest card on file (`succeeds` / `fails_later`).
pub async fn card_on_file(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sql::query(
        "SELECT behaviour FROM payment_methods WHERE mode = $1 AND customer_id = $2
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .scalar_optional(conn)
    .await
}

/// Puts a card on file; returns its id.
pub async fn attach_card(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    brand: &str,
    last4: &str,
    behaviour: &str,
    at: i64,
) -> Result<String, sqlx::Error> {
    let id = ids::new("pm");
    sql::query(
        "INSERT INTO payment_methods (id, mode, customer_id, brand, last4, behaviour, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(brand)
    .bind(last4)
    .bind(behaviour)
    .bind(at)
    .execute(uow.conn())
    .await?;
    Ok(id)
}

/// Puts a card on file (as the default) unless the customer already has it: a card saved at
/// the processor that two paths report (the page's post and the processor's event).
pub async fn put_card_if_new(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    (brand, last4, reference): (&str, &str, &str),
) -> Result<bool, sqlx::Error> {
    if !lock(uow, mode, customer_id).await? {
        return Ok(false);
    }
    let known: i64 = sql::query(
        "SELECT COUNT(*) FROM payment_methods WHERE mode = $1 AND customer_id = $2 AND behaviour = $3",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(reference)
    .scalar(uow.conn())
    .await?;
    if known > 0 {
        return Ok(false);
    }
    let at = now_of(uow, mode, customer_id).await?;
    attach_card(uow, mode, customer_id, brand, last4, reference, at).await?;
    Ok(true)
}

/// Removes the card on file whose stored reference ends with `:{method}` (a Stripe payment
/// method the processor says was detached).
pub async fn detach_processor_card(
    uow: &mut Uow,
    mode: Mode,
    method: &str,
) -> Result<u64, sqlx::Error> {
    let suffix = format!(":{method}");
    sql::query(
        "DELETE FROM payment_methods WHERE mode = $1
           AND substr(behaviour, length(behaviour) - length($2) + 1) = $2",
    )
    .bind(mode.as_str())
    .bind(suffix)
    .execute(uow.conn())
    .await
}

/// A saved card as Kelviq lists it, with its customer.
#[derive(Debug, Clone)]
pub struct Card {
    pub number: i64,
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub brand: String,
    pub last4: String,
    pub created_at: i64,
    /// The newest card of its customer: the one charges use.
    pub is_default: bool,
}

/// Saved cards, newest first, of one customer (by id or email) or of every customer of the
/// mode; archived customers' cards are not listed.
pub async fn cards(
    conn: &mut Conn,
    mode: Mode,
    customer_id: Option<&str>,
    email: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Card>, i64), sqlx::Error> {
    let filter = "p.mode = $1 AND c.archived_at IS NULL AND ($2 IS NULL OR p.customer_id = $2)
        AND ($3 IS NULL OR c.email = $3)";
    let from =
        "payment_methods p JOIN customers c ON c.mode = p.mode AND c.customer_id = p.customer_id";
    let count: i64 = sql::query(format!("SELECT COUNT(*) FROM {from} WHERE {filter}"))
        .bind(mode.as_str())
        .bind(customer_id)
        .bind(email)
        .scalar(&mut *conn)
        .await?;
    let rows = sql::query(format!(
        "SELECT p.number, p.customer_id, c.name, c.email, p.brand, p.last4, p.created_at,
           (SELECT COUNT(*) FROM payment_methods n WHERE n.mode = p.mode AND n.customer_id = p.customer_id
              AND (n.created_at > p.created_at OR (n.created_at = p.created_at AND n.id > p.id))) AS newer
         FROM {from} WHERE {filter} ORDER BY p.created_at DESC, p.id DESC LIMIT $4 OFFSET $5"
    ))
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(email)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    let cards = rows
        .iter()
        .map(|r| {
            Ok(Card {
                number: r.try_get("number")?,
                customer_id: r.try_get("customer_id")?,
                name: r.try_get("name")?,
                email: r.try_get("email")?,
                brand: r.try_get("brand")?,
                last4: r.try_get("last4")?,
                created_at: r.try_get("created_at")?,
                is_default: r.try_get::<i64>("newer")? == 0,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok((cards, count))
}

pub async fn detach_cards(uow: &mut Uow, mode: Mode, customer_id: &str) -> Result<(), sqlx::Error> {
    sql::query("DELETE FROM payment_methods WHERE mode = $1 AND customer_id = $2")
        .bind(mode.as_str())
        .bind(customer_id)
        .execute(uow.conn())
        .await?;
    Ok(())
}

// ---- credit balance --------------------------------------------------------------------------
// Kept per currency (`customer_balances`): a credit made in yen never pays a dollar invoice.

/// The customer's credit in `currency` (minor units; 0 when none).
pub async fn balance(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
    currency: Currency,
) -> Result<i64, sqlx::Error> {
    Ok(sql::query(
        "SELECT balance_minor FROM customer_balances
         WHERE mode = $1 AND customer_id = $2 AND currency = $3",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(currency)
    .scalar_optional::<i64>(conn)
    .await?
    .unwrap_or(0))
}

/// Every currency the customer holds credit in, with the amount.
pub async fn balances(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
) -> Result<Vec<(Currency, i64)>, sqlx::Error> {
    sql::query(
        "SELECT currency, balance_minor FROM customer_balances
         WHERE mode = $1 AND customer_id = $2 AND balance_minor <> 0 ORDER BY currency",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_all_as(conn)
    .await
}

/// Adds `delta` (negative: spends) to the customer's credit in `currency`, in one statement so
/// concurrent writers cannot lose an update. Amounts are capped far below 2^62, so the sum
/// cannot overflow.
pub async fn add_balance(
    uow: &mut Uow,
    mode: Mode,
    customer_id: &str,
    currency: Currency,
    delta: i64,
) -> Result<(), sqlx::Error> {
    const BOUND: i64 = 1 << 62;
    sql::query(
        "INSERT INTO customer_balances (mode, customer_id, currency, balance_minor)
         VALUES ($3, $4, $5, $1)
         ON CONFLICT (mode, customer_id, currency) DO UPDATE SET balance_minor =
           CASE WHEN customer_balances.balance_minor + $1 > $2 THEN $2
                WHEN customer_balances.balance_minor + $1 < -$2 THEN -$2
                ELSE customer_balances.balance_minor + $1 END",
    )
    .bind(delta.clamp(-BOUND, BOUND))
    .bind(BOUND)
    .bind(mode.as_str())
    .bind(customer_id)
    .bind(currency)
    .execute(uow.conn())
    .await?;
    Ok(())
}

/// The newest card on file as people see it: `(brand, last4)`.
pub async fn card_summary(
    conn: &mut Conn,
    mode: Mode,
    customer_id: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sql::query(
        "SELECT brand, last4 FROM payment_methods WHERE mode = $1 AND customer_id = $2
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(mode.as_str())
    .bind(customer_id)
    .fetch_optional_as(conn)
    .await
}
