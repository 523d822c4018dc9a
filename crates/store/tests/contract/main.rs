//! The store's contract: every `Store` method, run against SQLite (a temporary file)
//! and PostgreSQL (a database made for the test, when `CLINIC_AUTH_TEST_POSTGRES_URL`
//! names a server), so that the two backends are held to the same behaviour: round
//! trips, and the guarantees the trait documents (once-only use, exact limits under
//! concurrent calls, one transaction per change and its audit event).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

/// Runs each named `async fn(TestStore)` on SQLite and, when configured, PostgreSQL.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::harness::{Backend, TestStore};

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    let store = TestStore::open(Backend::Sqlite).await.expect("SQLite store");
                    super::$name(store).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    if let Some(store) = TestStore::open(Backend::Postgres).await {
                        super::$name(store).await;
                    }
                }
            }
        )*
    };
}

mod accounts;
mod answers;
mod audit;
mod codes;
mod coverage;
mod email_changes;
mod factors;
mod flows;
mod harness;
mod oidc;
mod ops;
mod orgs;
mod passkeys;
mod sessions;
mod store;
mod throttle;
