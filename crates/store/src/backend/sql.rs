//! One SQL text for both databases. Every statement is written once, with numbered
//! `$N` parameters, and runs through [`Query`]: on PostgreSQL as written, on SQLite
//! with the parameters rewritten to `?N`. The few types here (a pool, a transaction,
//! a statement, a row) are enums of the two drivers' own types, so the store's code
//! above them is written once and neither backend can get SQL the other lacks.

use std::pin::Pin;

use futures_util::{Stream, TryStreamExt};
use sqlx::{Database, Decode, Encode, Executor, IntoArguments, Postgres, Type};

use super::lite::{Lite, LiteOn, LiteRow, LiteStmt, LiteTx};

/// A connection pool of either backend.
#[derive(Debug, Clone)]
pub enum Pool {
    /// SQLite lets one connection write at a time. Every write of this process goes
    /// through the one writer connection, queued (first come, first served) rather
    /// than in SQLite's busy handler, which sleeps and retries; reads go to readers,
    /// which in WAL mode never wait for the writer. See [`Lite`].
    Sqlite(Lite),
    Postgres(sqlx::PgPool),
}

/// An open transaction; dropped without [`Tx::commit`], it rolls back. It carries
/// what its audit events add to the operator's counters, counted once it commits.
pub struct Tx {
    conn: TxConn,
    tallies: Vec<clinic_auth_core::audit::tally::Tally>,
}

enum TxConn {
    Sqlite(LiteTx),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// A row of either backend, or a PostgreSQL row sent as one JSON object
/// (`to_jsonb(t)`): how several tables come back in one statement (see
/// `load_answer`). Its columns decode as the table's own would.
pub enum Row {
    Sqlite(LiteRow),
    Postgres(sqlx::postgres::PgRow),
    Json(serde_json::Map<String, serde_json::Value>),
}

/// A statement with its arguments so far, and where it will run.
pub enum Query<'c> {
    Sqlite(LiteStmt<'c>),
    Postgres(Stmt<'c, Postgres>),
}

/// The rows a statement returns, one at a time.
pub type RowStream<'c> = Pin<Box<dyn Stream<Item = Result<Row, sqlx::Error>> + Send + 'c>>;

impl Pool {
    /// A statement run on any free connection of the pool (outside a transaction).
    /// On SQLite a `SELECT` runs on a reader, anything else on the writer.
    pub fn query(&self, sql: &'static str) -> Query<'_> {
        match self {
            Pool::Sqlite(lite) => Query::Sqlite(LiteStmt::new(sqlite_sql(sql), LiteOn::Pool(lite))),
            Pool::Postgres(p) => Query::Postgres(Stmt::postgres(sql, On::Pool(p))),
        }
    }

    /// A write transaction. SQLite's takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a transaction that read first and wrote later could otherwise
    /// fail to upgrade its lock when another connection wrote meanwhile.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(lite) => Tx { conn: TxConn::Sqlite(lite.begin().await?), tallies: Vec::new() },
            Pool::Postgres(p) => Tx { conn: TxConn::Postgres(p.begin().await?), tallies: Vec::new() },
        })
    }

    /// A read-only transaction: every query in it reads one snapshot (SQLite's read
    /// transactions in WAL mode do; PostgreSQL's is made REPEATABLE READ). It never
    /// holds SQLite's writer.
    pub async fn begin_read(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(lite) => Tx { conn: TxConn::Sqlite(lite.begin_read()?), tallies: Vec::new() },
            Pool::Postgres(p) => {
                let mut t = p.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *t).await?;
                Tx { conn: TxConn::Postgres(t), tallies: Vec::new() }
            }
        })
    }
}

/// Reads that together judge one request. On SQLite they share one read transaction:
/// one connection and one snapshot, so pages the first read fetched serve the rest (a
/// read transaction that begins after another connection committed starts with an
/// empty page cache, and under steady sign-ins one nearly always has). On PostgreSQL
/// they run on the pool, where a transaction would add two round trips.
pub enum Reads<'p> {
    Pool(&'p Pool),
    Tx(Tx),
}

impl Pool {
    pub fn reads(&self) -> Result<Reads<'_>, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(lite) => Reads::Tx(Tx { conn: TxConn::Sqlite(lite.begin_read()?), tallies: Vec::new() }),
            Pool::Postgres(_) => Reads::Pool(self),
        })
    }
}

impl Reads<'_> {
    pub fn query(&mut self, sql: &'static str) -> Query<'_> {
        match self {
            Reads::Pool(p) => p.query(sql),
            Reads::Tx(t) => t.query(sql),
        }
    }
}

impl Tx {
    /// A statement run inside this transaction.
    pub fn query(&mut self, sql: &'static str) -> Query<'_> {
        match &mut self.conn {
            TxConn::Sqlite(t) => Query::Sqlite(LiteStmt::new(sqlite_sql(sql), LiteOn::Tx(t))),
            TxConn::Postgres(t) => Query::Postgres(Stmt::postgres(sql, On::Conn(&mut **t))),
        }
    }

    /// Whether each statement costs a round trip to a database server (PostgreSQL),
    /// rather than microseconds in this process (SQLite).
    pub fn statements_are_round_trips(&self) -> bool {
        matches!(self.conn, TxConn::Postgres(_))
    }

    /// Counts `tallies` when (and only if) this transaction commits.
    pub fn count_on_commit(&mut self, tallies: Vec<clinic_auth_core::audit::tally::Tally>) {
        self.tallies.extend(tallies);
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.conn {
            TxConn::Sqlite(t) => t.commit().await?,
            TxConn::Postgres(t) => t.commit().await?,
        }
        for t in self.tallies {
            let labels: Vec<metrics::Label> = t.labels.iter().map(|(k, v)| metrics::Label::new(*k, *v)).collect();
            metrics::counter!(t.name, labels).increment(t.by);
        }
        Ok(())
    }
}

impl Row {
    /// The value of `column`, as `T` (a type both backends decode).
    pub fn try_get<'r, T>(&'r self, column: &str) -> Result<T, sqlx::Error>
    where
        T: rusqlite::types::FromSql + Decode<'r, Postgres> + Type<Postgres> + FromJson,
    {
        match self {
            Row::Sqlite(r) => r.try_get(column),
            Row::Postgres(r) => sqlx::Row::try_get(r, column),
            Row::Json(m) => {
                let v = m.get(column).ok_or_else(|| sqlx::Error::ColumnNotFound(column.to_owned()))?;
                T::from_json(v).ok_or_else(|| sqlx::Error::ColumnDecode {
                    index: column.to_owned(),
                    source: format!("unexpected JSON for {}", std::any::type_name::<T>()).into(),
                })
            }
        }
    }

    /// A row from PostgreSQL's `to_jsonb(t)::text`.
    pub fn from_json_text(text: &str) -> Result<Row, sqlx::Error> {
        match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(m)) => Ok(Row::Json(m)),
            _ => Err(sqlx::Error::Protocol("a row sent as JSON was not an object".into())),
        }
    }
}

/// A column's value from a row sent as JSON, as PostgreSQL's `to_jsonb` writes it.
pub trait FromJson: Sized {
    fn from_json(v: &serde_json::Value) -> Option<Self>;
}

impl FromJson for i64 {
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        v.as_i64()
    }
}

impl FromJson for bool {
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        v.as_bool()
    }
}

impl FromJson for String {
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        v.as_str().map(str::to_owned)
    }
}

/// `bytea` arrives in its text form, `\x` and two hex digits a byte.
impl FromJson for Vec<u8> {
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        hex::decode(v.as_str()?.strip_prefix("\\x")?).ok()
    }
}

impl<T: FromJson> FromJson for Option<T> {
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        if v.is_null() { Some(None) } else { T::from_json(v).map(Some) }
    }
}

impl<'c> Query<'c> {
    /// Binds the next `$N` parameter (a type both backends encode).
    pub fn bind<'t, T>(self, value: T) -> Self
    where
        T: rusqlite::ToSql + Encode<'t, Postgres> + Type<Postgres>,
    {
        match self {
            Query::Sqlite(s) => Query::Sqlite(s.bind(value)),
            Query::Postgres(s) => Query::Postgres(s.bind(value)),
        }
    }

    /// Runs the statement; the number of rows it changed.
    pub async fn execute(self) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Query::Sqlite(s) => s.execute().await?,
            Query::Postgres(s) => s.execute().await?.rows_affected(),
        })
    }

    pub async fn fetch_one(self) -> Result<Row, sqlx::Error> {
        match self {
            Query::Sqlite(s) => s.fetch_one().await.map(Row::Sqlite),
            Query::Postgres(s) => s.fetch_one().await.map(Row::Postgres),
        }
    }

    pub async fn fetch_optional(self) -> Result<Option<Row>, sqlx::Error> {
        Ok(match self {
            Query::Sqlite(s) => s.fetch_optional().await?.map(Row::Sqlite),
            Query::Postgres(s) => s.fetch_optional().await?.map(Row::Postgres),
        })
    }

    pub async fn fetch_all(self) -> Result<Vec<Row>, sqlx::Error> {
        Ok(match self {
            Query::Sqlite(s) => s.fetch_all().await?.into_iter().map(Row::Sqlite).collect(),
            Query::Postgres(s) => s.fetch_all().await?.into_iter().map(Row::Postgres).collect(),
        })
    }

    /// The rows as they arrive, without holding them all.
    pub fn fetch(self) -> RowStream<'c> {
        match self {
            Query::Sqlite(s) => Box::pin(s.fetch().map_ok(Row::Sqlite)),
            Query::Postgres(s) => Box::pin(s.fetch().map_ok(Row::Postgres)),
        }
    }
}

/// Where a statement runs: any free connection of a pool, or one connection (a
/// transaction's).
enum On<'c, DB: Database> {
    Pool(&'c sqlx::Pool<DB>),
    Conn(&'c mut DB::Connection),
}

/// A statement of one backend, and where it runs.
pub struct Stmt<'c, DB: Database> {
    query: sqlx::query::Query<'static, DB, DB::Arguments>,
    on: On<'c, DB>,
}

impl<'c> Stmt<'c, Postgres> {
    fn postgres(sql: &'static str, on: On<'c, Postgres>) -> Self {
        Stmt { query: sqlx::query(sql), on }
    }
}

impl<'c, DB> Stmt<'c, DB>
where
    DB: Database,
    DB::Arguments: IntoArguments<DB>,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
{
    fn bind<'t, T: Encode<'t, DB> + Type<DB>>(self, value: T) -> Self {
        Stmt { query: self.query.bind(value), on: self.on }
    }

    async fn execute(self) -> Result<DB::QueryResult, sqlx::Error> {
        match self.on {
            On::Pool(p) => self.query.execute(p).await,
            On::Conn(c) => self.query.execute(c).await,
        }
    }

    async fn fetch_one(self) -> Result<DB::Row, sqlx::Error> {
        match self.on {
            On::Pool(p) => self.query.fetch_one(p).await,
            On::Conn(c) => self.query.fetch_one(c).await,
        }
    }

    async fn fetch_optional(self) -> Result<Option<DB::Row>, sqlx::Error> {
        match self.on {
            On::Pool(p) => self.query.fetch_optional(p).await,
            On::Conn(c) => self.query.fetch_optional(c).await,
        }
    }

    async fn fetch_all(self) -> Result<Vec<DB::Row>, sqlx::Error> {
        match self.on {
            On::Pool(p) => self.query.fetch_all(p).await,
            On::Conn(c) => self.query.fetch_all(c).await,
        }
    }

    fn fetch(self) -> Pin<Box<dyn Stream<Item = Result<DB::Row, sqlx::Error>> + Send + 'c>> {
        match self.on {
            On::Pool(p) => self.query.fetch(p),
            On::Conn(c) => self.query.fetch(c),
        }
    }
}

/// A statement's SQLite spelling, rewritten once per thread and statement: every
/// statement text is a `&'static str`, so its address names it.
fn sqlite_sql(sql: &'static str) -> std::sync::Arc<str> {
    thread_local! {
        static SPELLED: std::cell::RefCell<std::collections::HashMap<(usize, usize), std::sync::Arc<str>>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    SPELLED.with(|m| {
        m.borrow_mut().entry((sql.as_ptr() as usize, sql.len())).or_insert_with(|| to_sqlite_params(sql).into()).clone()
    })
}

/// `$1` → `?1`. Our SQL has no `$` inside string literals.
fn to_sqlite_params(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::{FromJson, Row, to_sqlite_params};
    use crate::backend::lite::is_read;

    proptest! {
        /// PostgreSQL's `to_jsonb` writes `bytea` as `\x` and lowercase hex.
        #[test]
        fn bytes_sent_as_json_decode_to_themselves(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(Vec::<u8>::from_json(&json!(format!("\\x{text}"))), Some(bytes));
        }

        /// Anything else is refused, never a panic.
        #[test]
        fn any_json_string_decodes_or_is_refused(s in prop_oneof!["\\PC*", "\\\\x[0-9a-fA-Fg+ -]{0,9}"]) {
            let decoded = Vec::<u8>::from_json(&json!(s));
            let hex_digits = s.strip_prefix("\\x").filter(|h| h.len() % 2 == 0 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            prop_assert_eq!(decoded.is_some(), hex_digits.is_some());
        }
    }

    #[test]
    fn a_row_sent_as_json_decodes_by_column() {
        let row = Row::from_json_text(r#"{"n": 7, "s": "x", "none": null, "flag": true, "b": "\\x00ff"}"#).unwrap();
        assert_eq!(row.try_get::<i64>("n").unwrap(), 7);
        assert_eq!(row.try_get::<String>("s").unwrap(), "x");
        assert_eq!(row.try_get::<Option<i64>>("none").unwrap(), None);
        assert_eq!(row.try_get::<Option<String>>("s").unwrap().as_deref(), Some("x"));
        assert!(row.try_get::<bool>("flag").unwrap());
        assert_eq!(row.try_get::<Vec<u8>>("b").unwrap(), [0, 255]);
        assert!(matches!(row.try_get::<i64>("missing"), Err(sqlx::Error::ColumnNotFound(_))));
        assert!(matches!(row.try_get::<i64>("s"), Err(sqlx::Error::ColumnDecode { .. })));
        assert!(i64::from_json(&Value::Null).is_none(), "a null is not a number");
        assert!(Row::from_json_text("[1]").is_err() && Row::from_json_text("{").is_err());
    }

    #[test]
    fn only_selects_go_to_the_readers() {
        assert!(is_read("SELECT 1"));
        assert!(is_read("\n   select * FROM t"));
        for w in ["INSERT INTO t VALUES (1)", "UPDATE t SET a = 1", "DELETE FROM t", "VACUUM INTO 'x'", "SEL", ""] {
            assert!(!is_read(w), "{w}");
        }
    }

    #[test]
    fn each_statement_is_spelled_for_sqlite_once() {
        static S: &str = "SELECT a FROM t WHERE b = $1 AND c = $2";
        let (first, again) = (super::sqlite_sql(S), super::sqlite_sql(S));
        assert_eq!(&*first, "SELECT a FROM t WHERE b = ?1 AND c = ?2");
        assert!(std::sync::Arc::ptr_eq(&first, &again), "the second use rewrote the statement again");
    }

    #[test]
    fn numbered_parameters_become_sqlite_style() {
        assert_eq!(to_sqlite_params("a = $1 AND b = $12 OR c = $1"), "a = ?1 AND b = ?12 OR c = ?1");
        assert_eq!(to_sqlite_params("price$ = $"), "price$ = $");
    }
}
