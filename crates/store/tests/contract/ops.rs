//! What operations ask of the store: pool usage, live sessions, pending migrations, a
//! consistent SQLite copy, and closing.

use clinic_auth_core::UnixTime;
use clinic_auth_store::{PoolUsage, StoreError};

use crate::harness::{Backend, NOW, TestStore};

contract!(
    pool_usage_counts_open_and_idle_connections,
    live_sessions_are_counted_within_both_timeouts,
    a_migrated_store_has_no_pending_migration,
    sqlite_copies_itself_consistently_and_postgresql_says_pg_dump,
);

async fn pool_usage_counts_open_and_idle_connections(t: TestStore) {
    t.ping().await.unwrap();
    let PoolUsage { open, idle, max } = t.pool_usage().await.unwrap();
    assert!(open >= 1 && idle <= open && open <= max, "open {open}, idle {idle}, max {max}");
}

async fn live_sessions_are_counted_within_both_timeouts(t: TestStore) {
    let org = t.org("riverside").await;
    let m = t.member(&org, "m@riverside.test").await;
    t.session(&m, "a").await;
    t.session(&m, "b").await;
    // Sessions were made and last seen at NOW.
    assert_eq!(t.count_live_sessions(NOW.plus_secs(-60), NOW.plus_secs(-3600)).await.unwrap(), 2);
    assert_eq!(t.count_live_sessions(NOW.plus_secs(1), NOW.plus_secs(-3600)).await.unwrap(), 0, "idle");
    assert_eq!(t.count_live_sessions(NOW.plus_secs(-60), NOW.plus_secs(1)).await.unwrap(), 0, "too old");
    assert_eq!(t.count_live_sessions(UnixTime(0), UnixTime(0)).await.unwrap(), 2);
}

async fn a_migrated_store_has_no_pending_migration(t: TestStore) {
    assert_eq!(t.pending_migrations().await.unwrap(), Vec::<i64>::new());
    t.raw("DELETE FROM _sqlx_migrations WHERE version = 8").await;
    assert_eq!(t.pending_migrations().await.unwrap(), vec![8]);
}

async fn sqlite_copies_itself_consistently_and_postgresql_says_pg_dump(t: TestStore) {
    let org = t.org("riverside").await;
    t.member(&org, "m@riverside.test").await;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let result = t.sqlite_backup_into(copy.to_str().unwrap()).await;
    if t.backend == Backend::Postgres {
        assert!(matches!(result, Err(StoreError::Unsupported(why)) if why.contains("pg_dump")), "{result:?}");
        t.close().await.unwrap();
        return;
    }
    result.unwrap();
    // The copy is a whole store of its own: same rows, an intact trail.
    let url = format!("sqlite:{}", copy.display());
    let restored = clinic_auth_store::connect(&url, crate::harness::chain_keys()).await.unwrap();
    assert_eq!(restored.pending_migrations().await.unwrap(), Vec::<i64>::new());
    assert_eq!(restored.list_orgs().await.unwrap().len(), 1);
    assert!(restored.verify_audit(&Default::default()).await.unwrap().breaks.is_empty());
    restored.close().await.unwrap();
    // A copy never overwrites.
    assert!(t.sqlite_backup_into(copy.to_str().unwrap()).await.is_err());
    t.close().await.unwrap();
    assert!(t.ping().await.is_err(), "closed");
}
