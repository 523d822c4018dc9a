//! What an operator asks of the database itself: how busy the connection pool is,
//! how many sessions are live, whether every migration is applied, and (SQLite) a
//! consistent copy of the whole database while the server runs.

use clinic_auth_core::UnixTime;

use super::Db;
use super::sql::Pool;
use crate::{PoolUsage, StoreResult};

impl Db {
    pub(super) async fn pool_usage(&self) -> StoreResult<PoolUsage> {
        let (size, idle, max) = match &self.pool {
            Pool::Sqlite(lite) => lite.usage(),
            Pool::Postgres(p) => (p.size(), p.num_idle(), p.options().get_max_connections()),
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX);
        Ok(PoolUsage { open: size, idle: idle.min(size), max })
    }

    /// Sessions neither idle since `idle_cutoff` nor older than `absolute_cutoff`.
    pub(super) async fn count_live_sessions(
        &self,
        idle_cutoff: UnixTime,
        absolute_cutoff: UnixTime,
    ) -> StoreResult<u64> {
        let row = self
            .query("SELECT COUNT(*) AS n FROM sessions WHERE last_seen_at >= $1 AND created_at >= $2")
            .bind(idle_cutoff.0)
            .bind(absolute_cutoff.0)
            .fetch_one()
            .await?;
        Ok(u64::try_from(row.try_get::<i64>("n")?).unwrap_or(0))
    }

    /// The versions of this build's migrations that the database has not applied
    /// (all of them for an empty database).
    pub(super) async fn pending_migrations(&self) -> StoreResult<Vec<i64>> {
        let wanted: Vec<i64> = match &self.pool {
            Pool::Sqlite(_) => sqlx::migrate!("./migrations/sqlite").iter().map(|m| m.version).collect(),
            Pool::Postgres(_) => sqlx::migrate!("./migrations/postgres").iter().map(|m| m.version).collect(),
        };
        let applied: Vec<i64> = match self.query("SELECT version FROM _sqlx_migrations WHERE success").fetch_all().await
        {
            Ok(rows) => rows.iter().map(|r| r.try_get::<i64>("version")).collect::<Result<_, _>>()?,
            // No migrations table: nothing applied yet.
            Err(_) => Vec::new(),
        };
        Ok(wanted.into_iter().filter(|v| !applied.contains(v)).collect())
    }

    /// Writes a consistent copy of the SQLite database to `path` (which must not
    /// exist) with `VACUUM INTO`: one read transaction, so writes that commit during
    /// the copy are either wholly in it or not at all.
    pub(super) async fn sqlite_backup_into(&self, path: &str) -> StoreResult<()> {
        match &self.pool {
            Pool::Sqlite(lite) => {
                // On a reader: the copy is one read transaction, and writes go on.
                Ok(lite.vacuum_into(path).await?)
            }
            Pool::Postgres(_) => Err(crate::StoreError::Unsupported("a file backup of PostgreSQL: use pg_dump")),
        }
    }

    pub(super) async fn close(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::Sqlite(lite) => lite.close().await,
            Pool::Postgres(p) => p.close().await,
        }
        Ok(())
    }
}
