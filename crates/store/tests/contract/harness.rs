//! A fresh, migrated store per test, and the records the tests build on.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use clinic_auth_core::audit::ChainKeys;
use clinic_auth_core::{
    AccountId, AccountKind, Email, FactorKind, FlowStep, LoginFlow, OrgId, OrgKind, OrgMfa, Realm, Role, TokenHash,
    UnixTime,
};
use clinic_auth_store::{
    Account, ClientInfo, LinkPurpose, NewAccount, NewAuditEvent, NewFactor, NewPasswordLink, NewSession, Org,
    SealedSecret, Store, Via,
};

pub const POSTGRES_ENV: &str = "CLINIC_AUTH_TEST_POSTGRES_URL";

/// The time the tests live at.
pub const NOW: UnixTime = UnixTime(1_800_000_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test: a temporary SQLite file, or a PostgreSQL
/// database dropped afterwards.
enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    async fn create(backend: Backend) -> Option<(TestDb, String)> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite:{}", dir.path().join("store.db").display());
                Some((TestDb::Sqlite(dir), url))
            }
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
                    eprintln!(
                        "PostgreSQL contract skipped: set {POSTGRES_ENV} (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run it"
                    );
                    return None;
                };
                let name = format!("clinic_auth_store_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("{POSTGRES_ENV} is set but PostgreSQL is unreachable: {e}"));
                sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(&admin_url).expect("postgres url");
                url.set_path(&name);
                Some((TestDb::Postgres { admin_url, name }, url.to_string()))
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async {
                    if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(sql)).await;
                    }
                });
            })
            .join();
        }
    }
}

/// The audit chains' keyring of every test store.
pub fn chain_keys() -> ChainKeys {
    ChainKeys::new([(1, zeroize::Zeroizing::new([7u8; 32]))]).expect("one key")
}

/// A migrated store on a database of its own; derefs to the store.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub backend: Backend,
    pub url: String,
    // Dropped last: the pool above closes before the database goes.
    _db: TestDb,
}

impl Deref for TestStore {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

impl TestStore {
    pub async fn open(backend: Backend) -> Option<TestStore> {
        let (db, url) = TestDb::create(backend).await?;
        let store = clinic_auth_store::connect(&url, chain_keys()).await.expect("connect");
        store.migrate().await.expect("migrate");
        Some(TestStore { store, backend, url, _db: db })
    }

    /// A store whose database has only the migrations up to `version` (not run by
    /// the store), to check what a later one does to existing rows.
    pub async fn open_at(backend: Backend, version: i64) -> Option<TestStore> {
        let (db, url) = TestDb::create(backend).await?;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        });
        let mut migrator = sqlx::migrate::Migrator::new(dir).await.expect("migrations");
        migrator.migrations = migrator.migrations.iter().filter(|m| m.version <= version).cloned().collect();
        match backend {
            Backend::Sqlite => {
                let opts = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
                    .unwrap()
                    .create_if_missing(true);
                let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
                migrator.run(&pool).await.expect("early migrations");
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&url).await.unwrap();
                migrator.run(&pool).await.expect("early migrations");
                pool.close().await;
            }
        }
        let store = clinic_auth_store::connect(&url, chain_keys()).await.expect("connect");
        Some(TestStore { store, backend, url, _db: db })
    }

    /// Runs SQL beside the store, as someone with database access would.
    pub async fn raw(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    /// Runs `n` copies of `call` at once; their results.
    pub async fn concurrently<T, F, Fut>(&self, n: usize, call: F) -> Vec<T>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn Store>, usize) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let start = Arc::new(tokio::sync::Barrier::new(n));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let (start, call) = (start.clone(), call(self.store.clone(), i));
            tasks.spawn(async move {
                start.wait().await;
                call.await
            });
        }
        tasks.join_all().await
    }

    /// A clinic with MFA enabled (required, any standard method).
    pub async fn org(&self, id: &str) -> Org {
        let org = Org {
            id: OrgId::parse(id).unwrap(),
            name: format!("Clinic {id}"),
            kind: OrgKind::Clinic,
            created_at: NOW,
            mfa: OrgMfa::default(),
        };
        self.insert_org(&org, &audit("org_created", Some(&org.id), None)).await.unwrap();
        org
    }

    /// A member of `org` with a password.
    pub async fn member(&self, org: &Org, email: &str) -> Account {
        self.account(AccountKind::Member, Some(org), email).await
    }

    pub async fn account(&self, kind: AccountKind, org: Option<&Org>, email: &str) -> Account {
        let new = new_account(kind, org, email, Some(&format!("hash-of-{email}")));
        let event = audit("account_created", org.map(|o| &o.id), Some(new.id));
        self.insert_account(&new, None, &event).await.unwrap();
        self.get_account(new.id).await.unwrap().unwrap()
    }

    /// `email` invited to `org`: a member without a password, with the invitation
    /// link `name`.
    pub async fn invite(&self, org: &Org, email: &str, name: &str) -> (AccountId, NewPasswordLink) {
        let new = new_account(AccountKind::Member, Some(org), email, None);
        let link = password_link(name, LinkPurpose::Invitation, Some(new.id));
        let event = audit("member_invited", Some(&org.id), Some(new.id));
        self.insert_account(&new, Some(&link), &event).await.unwrap();
        (new.id, link)
    }

    /// The account as stored now.
    pub async fn reload(&self, account: &Account) -> Account {
        self.get_account(account.id).await.unwrap().unwrap()
    }

    /// A sign-in of `account` past its password (under its current stamp).
    pub async fn flow(&self, account: &Account, name: &str) -> TokenHash {
        let id = token(name);
        let mut flow = LoginFlow::start(account.realm(), account.email.clone(), NOW);
        flow.step = FlowStep::SecondFactor { account_id: account.id, method: FactorKind::Authenticator };
        flow.stamp = self.reload(account).await.security_stamp;
        self.insert_flow(&id, &flow).await.unwrap();
        id
    }

    /// A session of `account`, earned by a new sign-in.
    pub async fn session(&self, account: &Account, name: &str) -> TokenHash {
        let flow = self.flow(account, &format!("flow-of-{name}")).await;
        let stamp = self.reload(account).await.security_stamp;
        let s = new_session(account, name, stamp);
        self.insert_session(&s, &flow, &audit("signed_in", account.org_id.as_ref(), Some(account.id))).await.unwrap();
        s.token_hash
    }

    /// The kinds of the audit events of `org`'s chain (`None`: every chain), oldest
    /// first.
    pub async fn audit_kinds(&self, org: Option<&OrgId>) -> Vec<String> {
        let filter = clinic_auth_store::AuditFilter { org_id: org.cloned(), limit: 1000, ..Default::default() };
        let mut events = self.list_audit(&filter).await.unwrap();
        events.reverse();
        events.into_iter().map(|e| e.kind).collect()
    }

    /// Whether the trail verifies with no break.
    pub async fn audit_intact(&self) -> bool {
        let r = self.verify_audit(&Default::default()).await.unwrap();
        assert!(r.breaks.is_empty(), "{:?}", r.breaks);
        true
    }
}

/// An audit event at [`NOW`], on `org`'s chain (the platform's when `None`).
pub fn audit(kind: &'static str, org: Option<&OrgId>, subject: Option<AccountId>) -> NewAuditEvent {
    NewAuditEvent {
        at: NOW,
        kind,
        outcome: "success",
        org_id: org.cloned(),
        actor_id: None,
        subject_id: subject,
        client: ClientInfo { ip: "10.0.0.1".into(), user_agent: "contract".into() },
        detail: "{}".into(),
        via: Via::default(),
    }
}

/// The event of a change made through the sign-in `flow` or the session `session`.
pub fn audit_via(
    kind: &'static str,
    account: &Account,
    flow: Option<&TokenHash>,
    session: Option<&TokenHash>,
) -> NewAuditEvent {
    NewAuditEvent {
        via: Via { flow: flow.cloned(), session: session.cloned() },
        ..audit(kind, account.org_id.as_ref(), Some(account.id))
    }
}

/// An account to insert (a staff member when it has an organization).
pub fn new_account(kind: AccountKind, org: Option<&Org>, email: &str, password_hash: Option<&str>) -> NewAccount {
    NewAccount {
        id: AccountId::new_random(),
        kind,
        email: Email::parse(email).unwrap(),
        org_id: org.map(|o| o.id.clone()),
        role: org.map(|_| Role::Staff),
        password_hash: password_hash.map(str::to_owned),
        now: NOW,
    }
}

/// A password link `name` good for an hour.
pub fn password_link(name: &str, purpose: LinkPurpose, account: Option<AccountId>) -> NewPasswordLink {
    NewPasswordLink {
        token_hash: token(name),
        purpose,
        account_id: account,
        created_at: NOW,
        expires_at: NOW.plus_secs(3600),
    }
}

/// A token hash named for readability.
pub fn token(name: &str) -> TokenHash {
    TokenHash::from_stored(format!("hash-{name}"))
}

pub fn new_session(account: &Account, name: &str, stamp: i64) -> NewSession {
    NewSession {
        token_hash: token(name),
        account_id: account.id,
        csrf_token: format!("csrf-{name}"),
        now: NOW,
        client: ClientInfo { ip: "10.0.0.1".into(), user_agent: "contract".into() },
        second_factor: true,
        sid: format!("sid-{name}"),
        proved: "password,authenticator".into(),
        stamp,
    }
}

pub fn sealed(tag: u8) -> SealedSecret {
    SealedSecret { ciphertext: vec![tag; 24], nonce: vec![tag; 12], key_version: 1 }
}

/// A confirmed factor of `kind` for `account`.
pub fn new_factor(account: &Account, kind: FactorKind, id: &str) -> NewFactor {
    NewFactor {
        id: id.to_owned(),
        account_id: account.id,
        kind,
        label: format!("{kind:?} {id}"),
        secret: (kind == FactorKind::Authenticator).then(|| sealed(1)),
        last_used_step: None,
        now: NOW,
        target: matches!(kind, FactorKind::Email | FactorKind::Sms).then(|| "+15005550006".to_owned()),
    }
}

/// How many of `results` are `true` (or `Some`, `Ok`).
pub fn successes<T: Successful>(results: &[T]) -> usize {
    results.iter().filter(|r| r.succeeded()).count()
}

pub trait Successful {
    fn succeeded(&self) -> bool;
}

impl Successful for bool {
    fn succeeded(&self) -> bool {
        *self
    }
}

impl<T> Successful for Option<T> {
    fn succeeded(&self) -> bool {
        self.is_some()
    }
}

impl<T, E> Successful for Result<T, E> {
    fn succeeded(&self) -> bool {
        self.is_ok()
    }
}

/// A realm's account, by email.
pub async fn find(store: &TestStore, realm: Realm, email: &str) -> Option<Account> {
    store.find_account(realm, &Email::parse(email).unwrap()).await.unwrap()
}
