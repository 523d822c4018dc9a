//! The two backends. Their SQL is the same text (numbered `$N` parameters, rewritten
//! to SQLite's `?N` by [`sql::Query`]), and the code around it is written once, for
//! both: each aggregate's module adds its methods to [`Db`] (`orgs`, `accounts` with
//! password links, `email_changes` ("Change email"), `flows`, `factors` with pending factors, the recovery code and the
//! bypass, `codes`, `passkeys` with ceremonies, `sessions`, `throttle` with factor
//! failures, `audit`, `oidc` for OpenID Connect), and `forward` writes each store's
//! `Store` impl from them. Only connection set-up and migrations differ.

mod accounts;
mod answers;
mod audit;
mod codes;
mod email_changes;
mod factors;
mod flows;
mod forward;
mod lite;
mod oidc;
mod ops;
mod orgs;
mod passkeys;
mod sessions;
mod sql;
mod throttle;

use std::str::FromStr;
use std::sync::Arc;

use clinic_auth_core::UnixTime;
use clinic_auth_core::audit::ChainKeys;

use crate::{NewAuditEvent, StoreError, StoreResult};
use lite::Lite;
use sql::{Pool, Query, Row, Tx};

/// The embedded default: one SQLite file, in WAL mode.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: Db,
}

/// PostgreSQL, for several server instances sharing one database.
#[derive(Debug, Clone)]
pub struct PgStore {
    db: Db,
}

impl SqliteStore {
    pub async fn connect(url: &str, keys: ChainKeys) -> StoreResult<SqliteStore> {
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
        let lite = Lite::open(opts.get_filename())?;
        Ok(SqliteStore { db: Db { pool: Pool::Sqlite(lite), keys: Arc::new(keys) } })
    }
}

/// How long a PostgreSQL connection may sit idle before it is pinged on acquire.
const PING_WHEN_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(30);

impl PgStore {
    pub async fn connect(url: &str, keys: ChainKeys) -> StoreResult<PgStore> {
        // Sized to the cores: more connections than PostgreSQL can run at once only
        // queue inside the database (and on its locks) instead of in the pool.
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(u32::try_from(cores * 4).unwrap_or(16).clamp(8, 32))
            .acquire_timeout(std::time::Duration::from_secs(10))
            // A ping on every acquire is a round trip per statement run outside a
            // transaction. A connection that was just used is alive; one idle for a
            // while is checked before use (the server or a proxy may have closed it).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > PING_WHEN_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect(url)
            .await?;
        Ok(PgStore { db: Db { pool: Pool::Postgres(pool), keys: Arc::new(keys) } })
    }
}

/// What a store is: a pool of its backend, and the keys of the audit chains. The
/// aggregates' modules add its methods (one `impl Db` each).
#[derive(Debug, Clone)]
struct Db {
    pool: Pool,
    keys: Arc<ChainKeys>,
}

impl Db {
    /// A statement run outside any transaction.
    fn query(&self, sql: &'static str) -> Query<'_> {
        self.pool.query(sql)
    }

    async fn begin(&self) -> StoreResult<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// A read-only transaction that sees one snapshot.
    async fn begin_read(&self) -> StoreResult<Tx> {
        Ok(self.pool.begin_read().await?)
    }

    /// Appends `audit` to its chain in `tx`, and commits: the change and the event
    /// that records it are written together or not at all.
    async fn commit_audited(&self, mut tx: Tx, audit: &NewAuditEvent) -> StoreResult<()> {
        self.write_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a change made only if a guarded statement found its row (`applies`): then
    /// appends `audit` and commits (true); otherwise rolls back (false).
    async fn commit_audited_if(&self, tx: Tx, applies: bool, audit: &NewAuditEvent) -> StoreResult<bool> {
        if !applies {
            return Ok(false);
        }
        self.commit_audited(tx, audit).await?;
        Ok(true)
    }

    fn backend_name(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    async fn migrate(&self) -> StoreResult<()> {
        // Whether migration 0006 (keyed hashes) is applied by this run: only then is
        // its re-key request genuine. No migrations table yet: a new database.
        let had_0006 = self
            .query("SELECT COUNT(*) AS n FROM _sqlx_migrations WHERE version = 6")
            .fetch_one()
            .await
            .ok()
            .and_then(|r| r.try_get::<i64>("n").ok())
            .is_some_and(|n| n > 0);
        match &self.pool {
            Pool::Sqlite(lite) => {
                // sqlx's migrator, on a connection of its own for the run.
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(lite.path())
                    .foreign_keys(true)
                    .busy_timeout(std::time::Duration::from_secs(10));
                let conn = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
                let ran = sqlx::migrate!("./migrations/sqlite").run(&conn).await;
                conn.close().await;
                ran?
            }
            Pool::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await?,
        }
        self.rekey_audit_if_pending(!had_0006).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.query("SELECT 1").execute().await?;
        Ok(())
    }

    /// Deletes expired login flows, codes, ceremonies, pending factors and password
    /// links (unused a week past their expiry), sessions idle since `idle_cutoff`, and
    /// OpenID Connect's expired rows.
    async fn purge_expired(&self, now: UnixTime, idle_cutoff: UnixTime) -> StoreResult<u64> {
        let mut n = 0;
        n += self.query("DELETE FROM login_flows WHERE expires_at <= $1").bind(now.0).execute().await?;
        n += self.query("DELETE FROM sessions WHERE last_seen_at < $1").bind(idle_cutoff.0).execute().await?;
        n += self.query("DELETE FROM code_challenges WHERE expires_at <= $1").bind(now.0).execute().await?;
        n += self.query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1").bind(now.0).execute().await?;
        n += self.query("DELETE FROM pending_factors WHERE expires_at <= $1").bind(now.0).execute().await?;
        n += self
            .query("DELETE FROM password_links WHERE expires_at <= $1 AND used_at IS NULL")
            .bind(now.0 - 7 * 24 * 3600)
            .execute()
            .await?;
        n += self
            .query("DELETE FROM email_changes WHERE expires_at <= $1")
            .bind(now.0 - 7 * 24 * 3600)
            .execute()
            .await?;
        n += self.purge_expired_oidc(now).await?;
        Ok(n)
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn parse_with<T, E>(s: &str, f: impl FnOnce(&str) -> Result<T, E>, what: &str) -> StoreResult<T> {
    f(s).map_err(|_| corrupt(what))
}

/// A stored count as `u32` (saturating: counts only grow towards a limit).
fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The count in `column` of a row that a counting statement returned, if it did.
fn counted(row: Option<Row>, column: &str) -> StoreResult<Option<u32>> {
    Ok(row.map(|r| r.try_get::<i64>(column)).transpose()?.map(count))
}

/// A unique-key violation becomes `Conflict`, a foreign-key one `MissingReference`.
fn on_constraint(e: sqlx::Error, conflict: &'static str, missing: &'static str) -> StoreError {
    if let Some(db) = e.as_database_error() {
        if db.is_unique_violation() {
            return StoreError::Conflict(conflict);
        }
        if db.is_foreign_key_violation() {
            return StoreError::MissingReference(missing);
        }
    }
    StoreError::Database(e)
}
