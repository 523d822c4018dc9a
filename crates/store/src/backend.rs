//! The two backends. Their SQL is the same text (numbered `$N` parameters, rewritten
//! to SQLite's `?N`), so one macro writes both implementations and they cannot drift;
//! only connection set-up and migrations differ.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use clinic_auth_core::{
    AccountId, AccountKind, AccountStatus, Email, FactorKind, FlowStep, LoginFlow, MemberOverride, MethodSet, MfaMode,
    OrgId, OrgKind, OrgMfa, Realm, Role, ThrottleRule, ThrottleState, TokenHash, UnixTime,
};
use sqlx::{AssertSqlSafe, Row};

use clinic_auth_core::audit::{
    ChainBreak, ChainHead, ChainKeys, ChainVerifier, ChainedFields, GENESIS, PLATFORM_CHAIN, StoredLink,
};
use futures_util::TryStreamExt;

use crate::{
    Account, AuditEvent, AuditFilter, AuditVerification, Bypass, Ceremony, Factor, LinkPurpose, NewAccount,
    NewAuditEvent, NewFactor, NewPasskey, NewPasswordLink, NewSession, Org, OrgMemberSecurity, PasskeyState,
    PasskeyUse, PasswordLink, PendingFactor, SealedSecret, SessionRecord, Store, StoreError, StoreResult, StoredCode,
};

/// The embedded default: one SQLite file, in WAL mode.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    keys: Arc<ChainKeys>,
}

/// PostgreSQL, for several server instances sharing one database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: sqlx::PgPool,
    keys: Arc<ChainKeys>,
}

impl SqliteStore {
    pub async fn connect(url: &str, keys: ChainKeys) -> StoreResult<SqliteStore> {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(opts).await?;
        Ok(SqliteStore { pool, keys: Arc::new(keys) })
    }

    fn sql(s: &'static str) -> AssertSqlSafe<Cow<'static, str>> {
        AssertSqlSafe(Cow::Owned(to_sqlite_params(s)))
    }

    async fn run_migrations(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/sqlite").run(&self.pool).await?;
        Ok(())
    }

    /// A read transaction in WAL mode already sees one snapshot.
    const SNAPSHOT: Option<&'static str> = None;
}

impl PgStore {
    pub async fn connect(url: &str, keys: ChainKeys) -> StoreResult<PgStore> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(PgStore { pool, keys: Arc::new(keys) })
    }

    fn sql(s: &'static str) -> AssertSqlSafe<Cow<'static, str>> {
        AssertSqlSafe(Cow::Borrowed(s))
    }

    async fn run_migrations(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    /// Every query of the transaction reads the same snapshot.
    const SNAPSHOT: Option<&'static str> = Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY");
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

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn parse_with<T, E>(s: &str, f: impl FnOnce(&str) -> Result<T, E>, what: &str) -> StoreResult<T> {
    f(s).map_err(|_| corrupt(what))
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

/// The fields of a stored event that its chain's hash covers, at place `seq` of `chain`.
fn chained_fields<'a>(e: &'a AuditEvent, chain: &'a str, seq: i64) -> ChainedFields<'a> {
    ChainedFields {
        chain,
        seq,
        at: e.at.0,
        kind: &e.kind,
        outcome: &e.outcome,
        org_id: e.org_id.as_deref(),
        actor_id: e.actor_id.as_deref(),
        subject_id: e.subject_id.as_deref(),
        client_ip: &e.client_ip,
        user_agent: &e.user_agent,
        detail: &e.detail,
    }
}

/// Ends one chain of a verification: checks it against its stored head, unless it
/// broke already (`verifier` is `None`).
fn finish_chain(
    heads: &mut std::collections::BTreeMap<String, (i64, String)>,
    report: &mut AuditVerification,
    chain: String,
    verifier: Option<ChainVerifier<'_>>,
) {
    let head = heads.remove(&chain);
    report.chains += 1;
    if let Some(v) = verifier {
        match v.finish(head.as_ref().map(|(s, h)| (*s, h.as_str()))) {
            Ok(h) => {
                report.events += h.seq;
                report.heads.insert(chain, h);
            }
            Err(b) => report.breaks.push(b),
        }
    }
}

macro_rules! store_impl {
    ($store:ident, $row:ty, $name:literal) => {
        impl $store {
            fn org_from_row(row: &$row) -> StoreResult<Org> {
                Ok(Org {
                    id: parse_with(&row.try_get::<String, _>("id")?, OrgId::parse, "organization id")?,
                    name: row.try_get("name")?,
                    kind: parse_with(&row.try_get::<String, _>("kind")?, OrgKind::from_str, "organization kind")?,
                    created_at: UnixTime(row.try_get("created_at")?),
                    mfa: OrgMfa {
                        enabled: row.try_get("mfa_enabled")?,
                        mode: parse_with(&row.try_get::<String, _>("mfa_mode")?, MfaMode::from_str, "MFA mode")?,
                        methods: parse_with(&row.try_get::<String, _>("mfa_methods")?, MethodSet::parse, "MFA methods")?,
                    },
                })
            }

            fn account_from_row(row: &$row) -> StoreResult<Account> {
                let org_id: Option<String> = row.try_get("org_id")?;
                let role: Option<String> = row.try_get("role")?;
                Ok(Account {
                    id: parse_with(&row.try_get::<String, _>("id")?, AccountId::parse, "account id")?,
                    kind: parse_with(&row.try_get::<String, _>("kind")?, AccountKind::from_str, "account kind")?,
                    email: parse_with(&row.try_get::<String, _>("email")?, Email::parse, "email")?,
                    org_id: org_id.map(|o| parse_with(&o, OrgId::parse, "organization id")).transpose()?,
                    role: role.map(|r| parse_with(&r, Role::from_str, "role")).transpose()?,
                    status: parse_with(&row.try_get::<String, _>("status")?, AccountStatus::from_str, "status")?,
                    password_hash: row.try_get("password_hash")?,
                    created_at: UnixTime(row.try_get("created_at")?),
                    mfa_override: parse_with(
                        &row.try_get::<String, _>("mfa_override")?,
                        MemberOverride::from_str,
                        "MFA override",
                    )?,
                    preferred_factor: row
                        .try_get::<Option<String>, _>("preferred_factor")?
                        .map(|f| parse_with(&f, FactorKind::from_str, "factor kind"))
                        .transpose()?,
                    bypass: match (
                        row.try_get::<Option<i64>, _>("bypass_granted_at")?,
                        row.try_get::<Option<i64>, _>("bypass_expires_at")?,
                    ) {
                        (Some(granted_at), Some(expires_at)) => Some(Bypass {
                            granted_at: UnixTime(granted_at),
                            expires_at: UnixTime(expires_at),
                            granted_by: row
                                .try_get::<Option<String>, _>("bypass_granted_by")?
                                .map(|a| parse_with(&a, AccountId::parse, "account id"))
                                .transpose()?,
                        }),
                        _ => None,
                    },
                    security_stamp: row.try_get("security_stamp")?,
                })
            }

            fn sealed_from_row(row: &$row) -> StoreResult<Option<SealedSecret>> {
                let ciphertext: Option<Vec<u8>> = row.try_get("secret")?;
                let nonce: Option<Vec<u8>> = row.try_get("nonce")?;
                let key_version: Option<i64> = row.try_get("key_version")?;
                Ok(match (ciphertext, nonce, key_version) {
                    (Some(ciphertext), Some(nonce), Some(key_version)) => Some(SealedSecret { ciphertext, nonce, key_version }),
                    _ => None,
                })
            }

            fn factor_from_row(row: &$row) -> StoreResult<Factor> {
                Ok(Factor {
                    id: row.try_get("id")?,
                    account_id: parse_with(&row.try_get::<String, _>("account_id")?, AccountId::parse, "account id")?,
                    kind: parse_with(&row.try_get::<String, _>("kind")?, FactorKind::from_str, "factor kind")?,
                    label: row.try_get("label")?,
                    secret: Self::sealed_from_row(row)?,
                    last_used_step: row.try_get("last_used_step")?,
                    created_at: UnixTime(row.try_get("created_at")?),
                    last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(UnixTime),
                                        target: row.try_get("target")?,
                    passkey: match row.try_get::<Option<String>, _>("credential_id")? {
                        Some(credential_id) => Some(PasskeyState {
                            credential_id,
                            sign_count: u32::try_from(row.try_get::<Option<i64>, _>("sign_count")?.unwrap_or(0))
                                .map_err(|_| corrupt("passkey signature counter"))?,
                            backup_eligible: row.try_get("backup_eligible")?,
                            backup_state: row.try_get("backup_state")?,
                        }),
                        None => None,
                    },
                })
            }

            fn code_from_row(row: &$row) -> StoreResult<StoredCode> {
                Ok(StoredCode {
                    account_id: parse_with(&row.try_get::<String, _>("account_id")?, AccountId::parse, "account id")?,
                    channel: parse_with(&row.try_get::<String, _>("channel")?, FactorKind::from_str, "channel")?,
                    purpose: row.try_get("purpose")?,
                    target: row.try_get("target")?,
                    code_hash: row.try_get("code_hash")?,
                    challenge: clinic_auth_core::CodeChallenge {
                        sent_at: UnixTime(row.try_get("sent_at")?),
                        expires_at: UnixTime(row.try_get("expires_at")?),
                        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                    },
                    bound_to: row.try_get("bound_to")?,
                })
            }

            fn audit_from_row(row: &$row) -> StoreResult<AuditEvent> {
                Ok(AuditEvent {
                    id: row.try_get("id")?,
                    at: UnixTime(row.try_get("at")?),
                    kind: row.try_get("kind")?,
                    outcome: row.try_get("outcome")?,
                    org_id: row.try_get("org_id")?,
                    actor_id: row.try_get("actor_id")?,
                    subject_id: row.try_get("subject_id")?,
                    client_ip: row.try_get("client_ip")?,
                    user_agent: row.try_get("user_agent")?,
                    detail: row.try_get("detail")?,
                    seq: row.try_get("seq")?,
                    hash: row.try_get("hash")?,
                })
            }

            /// Takes the next place in `f.chain` (locking its head until commit) and
            /// returns (seq, prev_hash, hash) for the event `f` (whose `seq` is ignored).
            async fn advance_chain(
                keys: &ChainKeys,
                conn: &mut <<$row as Row>::Database as sqlx::Database>::Connection,
                f: &ChainedFields<'_>,
            ) -> StoreResult<(i64, String, String)> {
                sqlx::query($store::sql(
                    "INSERT INTO audit_chain_heads (chain, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (chain) DO NOTHING",
                ))
                .bind(f.chain)
                .bind(GENESIS)
                .execute(&mut *conn)
                .await?;
                // The UPDATE locks the head row until commit (PostgreSQL) or takes the
                // database's write lock (SQLite): appends to one chain never interleave.
                let head = sqlx::query($store::sql(
                    "UPDATE audit_chain_heads SET seq = seq + 1 WHERE chain = $1 RETURNING seq, hash",
                ))
                .bind(f.chain)
                .fetch_one(&mut *conn)
                .await?;
                let seq: i64 = head.try_get("seq")?;
                let prev: String = head.try_get("hash")?;
                let hash = keys.link_hash(&prev, &ChainedFields { seq, ..f.clone() });
                sqlx::query($store::sql("UPDATE audit_chain_heads SET hash = $1 WHERE chain = $2"))
                    .bind(&hash)
                    .bind(f.chain)
                    .execute(&mut *conn)
                    .await?;
                Ok((seq, prev, hash))
            }

            /// Appends an event to its chain inside the caller's transaction.
            async fn write_audit_tx(
                keys: &ChainKeys,
                conn: &mut <<$row as Row>::Database as sqlx::Database>::Connection,
                e: &NewAuditEvent,
            ) -> StoreResult<()> {
                let chain = e.org_id.as_ref().map(|o| o.as_str().to_owned()).unwrap_or_else(|| PLATFORM_CHAIN.to_owned());
                let (org, actor, subject) = (
                    e.org_id.as_ref().map(|o| o.as_str().to_owned()),
                    e.actor_id.map(|a| a.to_string()),
                    e.subject_id.map(|a| a.to_string()),
                );
                let fields = ChainedFields {
                    chain: &chain,
                    seq: 0,
                    at: e.at.0,
                    kind: e.kind,
                    outcome: e.outcome,
                    org_id: org.as_deref(),
                    actor_id: actor.as_deref(),
                    subject_id: subject.as_deref(),
                    client_ip: &e.client.ip,
                    user_agent: &e.client.user_agent,
                    detail: &e.detail,
                };
                let (seq, prev, hash) = Self::advance_chain(keys, &mut *conn, &fields).await?;
                sqlx::query($store::sql(
                    "INSERT INTO audit_events (at, kind, outcome, org_id, actor_id, subject_id, client_ip, user_agent, detail, chain, seq, prev_hash, hash)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                ))
                .bind(e.at.0)
                .bind(e.kind)
                .bind(e.outcome)
                .bind(org)
                .bind(actor)
                .bind(subject)
                .bind(e.client.ip.clone())
                .bind(e.client.user_agent.clone())
                .bind(e.detail.clone())
                .bind(&chain)
                .bind(seq)
                .bind(&prev)
                .bind(&hash)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            /// Re-keys the trail once, when migration 0006 upgrades one from before keyed
            /// hashes (`fresh_0006`: it was applied in this very `migrate`). Events with
            /// plain hashes are re-keyed only as far as their old chain (and its head)
            /// verifies; events without any hash only when no chain exists at all (a
            /// trail from before chains). Whatever did not verify keeps its old hash, so
            /// `audit verify` reports it. A request beside a keyed trail, or one not made
            /// by the migration, is refused and left in place for `audit verify` to
            /// report: otherwise a database writer could have any edit blessed. The first
            /// instance to take the request does it; an event on the platform chain
            /// records it.
            async fn rekey_audit_if_pending(&self, fresh_0006: bool) -> StoreResult<()> {
                use std::collections::BTreeMap;
                let mut tx = self.pool.begin().await?;
                let keyed: i64 = sqlx::query($store::sql(
                    "SELECT (SELECT COUNT(*) FROM audit_events WHERE hash LIKE 'v%')
                          + (SELECT COUNT(*) FROM audit_chain_heads WHERE hash LIKE 'v%') AS n",
                ))
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
                if !fresh_0006 || keyed > 0 {
                    return Ok(());
                }
                let taken = sqlx::query($store::sql("DELETE FROM audit_rekey_pending"))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if taken == 0 {
                    return Ok(());
                }
                let heads: BTreeMap<String, (i64, String)> =
                    sqlx::query($store::sql("SELECT chain, seq, hash FROM audit_chain_heads"))
                        .fetch_all(&mut *tx)
                        .await?
                        .iter()
                        .map(|r| Ok((r.try_get("chain")?, (r.try_get("seq")?, r.try_get("hash")?))))
                        .collect::<StoreResult<_>>()?;
                let rows = sqlx::query($store::sql("SELECT * FROM audit_events ORDER BY chain, seq, id"))
                    .fetch_all(&mut *tx)
                    .await?;
                let events = rows.iter().map($store::audit_from_row).collect::<StoreResult<Vec<_>>>()?;
                // Each event's chain and prev_hash, beside it.
                let links: Vec<(Option<String>, Option<String>)> = rows
                    .iter()
                    .map(|r| Ok((r.try_get("chain")?, r.try_get("prev_hash")?)))
                    .collect::<StoreResult<_>>()?;
                let chained = heads.len() + events.iter().filter(|e| e.hash.is_some()).count();
                let (mut rekeyed, mut refused) = (0i64, 0i64);
                if chained == 0 {
                    // A trail from before chains: nothing to check, chain it in id order.
                    let mut by_id: Vec<&AuditEvent> = events.iter().collect();
                    by_id.sort_by_key(|e| e.id);
                    for e in by_id {
                        let chain = e.org_id.clone().unwrap_or_else(|| PLATFORM_CHAIN.to_owned());
                        let fields = chained_fields(e, &chain, 0);
                        let (seq, prev, hash) = Self::advance_chain(&self.keys, &mut *tx, &fields).await?;
                        sqlx::query($store::sql(
                            "UPDATE audit_events SET chain = $1, seq = $2, prev_hash = $3, hash = $4 WHERE id = $5",
                        ))
                        .bind(&chain)
                        .bind(seq)
                        .bind(&prev)
                        .bind(&hash)
                        .bind(e.id)
                        .execute(&mut *tx)
                        .await?;
                        rekeyed += 1;
                    }
                } else {
                    // Plain hash chains: each re-keyed as far as it verifies, in place.
                    let mut by_chain: BTreeMap<String, Vec<(&AuditEvent, &str)>> = BTreeMap::new();
                    for (e, (chain, prev_hash)) in events.iter().zip(&links) {
                        match (chain, prev_hash, &e.hash) {
                            (Some(c), Some(p), Some(_)) => by_chain.entry(c.clone()).or_default().push((e, p)),
                            // Never chained although chains exist: not ours to bless.
                            _ => refused += 1,
                        }
                    }
                    for chain in heads.keys() {
                        by_chain.entry(chain.clone()).or_default();
                    }
                    for (chain, chain_events) in &by_chain {
                        let mut old = ChainVerifier::unkeyed(chain);
                        let mut prev = GENESIS.to_owned();
                        let mut done = 0usize;
                        for (e, old_prev) in chain_events {
                            let old_hash = e.hash.as_deref().unwrap_or("");
                            let fields = chained_fields(e, chain, e.seq.unwrap_or(0));
                            let link = StoredLink { id: e.id, fields: fields.clone(), prev_hash: old_prev, hash: old_hash };
                            if old.push(&link).is_err() {
                                break;
                            }
                            let hash = self.keys.link_hash(&prev, &fields);
                            sqlx::query($store::sql("UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE id = $3"))
                                .bind(&prev)
                                .bind(&hash)
                                .bind(e.id)
                                .execute(&mut *tx)
                                .await?;
                            prev = hash;
                            done += 1;
                        }
                        rekeyed += done as i64;
                        refused += (chain_events.len() - done) as i64;
                        // The head moves only when the whole old chain, head and all,
                        // verified: a chain cut short stays reported as cut short.
                        let head = heads.get(chain).map(|(seq, hash)| (*seq, hash.as_str()));
                        if done == chain_events.len() && old.finish(head).is_ok() {
                            sqlx::query($store::sql(
                                "INSERT INTO audit_chain_heads (chain, seq, hash) VALUES ($1, $2, $3)
                                 ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                            ))
                            .bind(chain)
                            .bind(done as i64)
                            .bind(&prev)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
                if !events.is_empty() {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                        .unwrap_or(0);
                    let event = NewAuditEvent {
                        at: UnixTime(now),
                        kind: "audit_chain_rekeyed",
                        outcome: if refused == 0 { "success" } else { "failure" },
                        org_id: None,
                        actor_id: None,
                        subject_id: None,
                        client: crate::ClientInfo { ip: "local".into(), user_agent: "clinic-auth migrate".into() },
                        detail: serde_json::json!({"events": rekeyed, "not_verified": refused}).to_string(),
                        via: crate::Via::default(),
                    };
                    $store::write_audit_tx(&self.keys, &mut *tx, &event).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            /// The account's security state changed (in the caller's transaction): its
            /// stamp moves on, its sign-ins in flight end (all but the one in `via`,
            /// which takes the new stamp), and with `end_sessions` its sessions end too
            /// (all but the one in `via`).
            async fn move_stamp(
                conn: &mut <<$row as Row>::Database as sqlx::Database>::Connection,
                account: AccountId,
                via: &crate::Via,
                end_sessions: bool,
            ) -> StoreResult<()> {
                let row = sqlx::query($store::sql(
                    "UPDATE accounts SET security_stamp = security_stamp + 1 WHERE id = $1 RETURNING security_stamp",
                ))
                .bind(account.to_string())
                .fetch_optional(&mut *conn)
                .await?;
                let Some(row) = row else { return Ok(()) };
                let stamp: i64 = row.try_get("security_stamp")?;
                let keep_flow = via.flow.as_ref().map(|f| f.as_str()).unwrap_or("");
                sqlx::query($store::sql("DELETE FROM login_flows WHERE account_id = $1 AND id_hash <> $2"))
                    .bind(account.to_string())
                    .bind(keep_flow)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query($store::sql("UPDATE login_flows SET account_id = $1, stamp = $2 WHERE id_hash = $3"))
                    .bind(account.to_string())
                    .bind(stamp)
                    .bind(keep_flow)
                    .execute(&mut *conn)
                    .await?;
                if end_sessions {
                    let keep_session = via.session.as_ref().map(|s| s.as_str()).unwrap_or("");
                    sqlx::query($store::sql("DELETE FROM sessions WHERE account_id = $1 AND token_hash <> $2"))
                        .bind(account.to_string())
                        .bind(keep_session)
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            }

            /// After counting a failure (`row`: its failures and lock): sets the lock the
            /// count earns, in the caller's transaction, and returns the state.
            async fn lock_if_due(
                conn: &mut <<$row as Row>::Database as sqlx::Database>::Connection,
                key: &str,
                rule: ThrottleRule,
                now: UnixTime,
                row: &$row,
            ) -> StoreResult<ThrottleState> {
                let failures = u32::try_from(row.try_get::<i64, _>("failures")?).unwrap_or(u32::MAX);
                let mut locked_until = UnixTime(row.try_get("locked_until")?);
                if let Some(until) = rule.locked_until(failures, now).filter(|u| *u > locked_until) {
                    locked_until = until;
                    sqlx::query($store::sql("UPDATE throttles SET locked_until = $1 WHERE key = $2"))
                        .bind(until.0)
                        .bind(key)
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(ThrottleState { failures, locked_until })
            }

            /// Starts a session and deletes the flow that earned it, in the caller's
            /// transaction; only while the flow is still current for the account (its
            /// stamp is the account's and the account is active).
            async fn insert_session_tx(
                conn: &mut <<$row as Row>::Database as sqlx::Database>::Connection,
                s: &NewSession,
                finished_flow: &TokenHash,
            ) -> StoreResult<()> {
                // A flow that goes straight from its password to a session vouches for
                // the stamp read with the password.
                sqlx::query($store::sql(
                    "UPDATE login_flows SET account_id = $2, stamp = $3 WHERE id_hash = $1 AND account_id IS NULL",
                ))
                .bind(finished_flow.as_str())
                .bind(s.account_id.to_string())
                .bind(s.stamp)
                .execute(&mut *conn)
                .await?;
                // Deleting the flow first makes a flow good for one session only, even
                // when two requests race with the same flow id.
                let done = sqlx::query($store::sql(
                    "DELETE FROM login_flows WHERE id_hash = $1 AND account_id = $2
                       AND stamp = (SELECT security_stamp FROM accounts WHERE id = $2 AND status = 'active')",
                ))
                .bind(finished_flow.as_str())
                .bind(s.account_id.to_string())
                .execute(&mut *conn)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::MissingReference("login flow"));
                }
                sqlx::query($store::sql(
                    "INSERT INTO sessions (token_hash, account_id, csrf_token, created_at, last_seen_at, client_ip, user_agent, verified_at)
                     VALUES ($1, $2, $3, $4, $4, $5, $6, $7)",
                ))
                .bind(s.token_hash.as_str())
                .bind(s.account_id.to_string())
                .bind(&s.csrf_token)
                .bind(s.now.0)
                .bind(&s.client.ip)
                .bind(&s.client.user_agent)
                .bind(s.second_factor.then_some(s.now.0))
                .execute(&mut *conn)
                .await?;
                Ok(())
            }
        }

        /// Appends an audit event to its chain inside the given transaction.
        macro_rules! write_audit {
            ($self:ident, $conn:expr, $e:expr) => {
                $store::write_audit_tx(&$self.keys, $conn, $e).await?
            };
        }

        #[async_trait]
        impl Store for $store {
            fn backend_name(&self) -> &'static str {
                $name
            }

            async fn migrate(&self) -> StoreResult<()> {
                // Whether migration 0006 (keyed hashes) is applied by this run: only then
                // is its re-key request genuine. No migrations table yet: a new database.
                let had_0006 = sqlx::query($store::sql("SELECT COUNT(*) AS n FROM _sqlx_migrations WHERE version = 6"))
                    .fetch_one(&self.pool)
                    .await
                    .ok()
                    .and_then(|r| r.try_get::<i64, _>("n").ok())
                    .is_some_and(|n| n > 0);
                self.run_migrations().await?;
                self.rekey_audit_if_pending(!had_0006).await
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query($store::sql("SELECT 1")).execute(&self.pool).await?;
                Ok(())
            }

            async fn insert_org(&self, org: &Org, audit: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query($store::sql(
                    "INSERT INTO organizations (id, name, kind, created_at, mfa_enabled, mfa_mode, mfa_methods)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                ))
                    .bind(org.id.as_str())
                    .bind(&org.name)
                    .bind(org.kind.as_str())
                    .bind(org.created_at.0)
                    .bind(org.mfa.enabled)
                    .bind(org.mfa.mode.as_str())
                    .bind(org.mfa.methods.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| on_constraint(e, "organization", "organization"))?;
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(())
            }

            async fn get_org(&self, id: &OrgId) -> StoreResult<Option<Org>> {
                let row = sqlx::query($store::sql("SELECT * FROM organizations WHERE id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map($store::org_from_row).transpose()
            }

            async fn list_orgs(&self) -> StoreResult<Vec<Org>> {
                let rows = sqlx::query($store::sql("SELECT * FROM organizations ORDER BY name, id"))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map($store::org_from_row).collect()
            }

            async fn insert_account(
                &self,
                a: &NewAccount,
                link: Option<&NewPasswordLink>,
                audit: &NewAuditEvent,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query($store::sql(
                    "INSERT INTO accounts (id, kind, realm, email, org_id, role, password_hash, status, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $8)",
                ))
                .bind(a.id.to_string())
                .bind(a.kind.as_str())
                .bind(a.kind.realm().as_str())
                .bind(a.email.as_str())
                .bind(a.org_id.as_ref().map(|o| o.as_str().to_owned()))
                .bind(a.role.map(|r| r.as_str()))
                .bind(a.password_hash.clone())
                .bind(a.now.0)
                .execute(&mut *tx)
                .await
                .map_err(|e| on_constraint(e, "an account with this email", "organization"))?;
                if let Some(link) = link {
                    Self::insert_link(&mut *tx, link).await?;
                }
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(())
            }

            async fn get_account(&self, id: AccountId) -> StoreResult<Option<Account>> {
                let row = sqlx::query($store::sql("SELECT * FROM accounts WHERE id = $1"))
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map($store::account_from_row).transpose()
            }

            async fn find_account(&self, realm: Realm, email: &Email) -> StoreResult<Option<Account>> {
                let row = sqlx::query($store::sql("SELECT * FROM accounts WHERE realm = $1 AND email = $2"))
                    .bind(realm.as_str())
                    .bind(email.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map($store::account_from_row).transpose()
            }

            async fn count_platform_admins(&self) -> StoreResult<i64> {
                let row = sqlx::query($store::sql("SELECT COUNT(*) AS n FROM accounts WHERE kind = 'platform_admin'"))
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get("n")?)
            }

            async fn rehash_password(&self, id: AccountId, password_hash: &str, now: UnixTime) -> StoreResult<()> {
                sqlx::query($store::sql("UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3"))
                    .bind(password_hash)
                    .bind(now.0)
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_password_link(&self, link: &NewPasswordLink, audit: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                Self::insert_link(&mut *tx, link).await?;
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(())
            }

            async fn reissue_invitation(&self, link: &NewPasswordLink, audit: &NewAuditEvent) -> StoreResult<bool> {
                let Some(account) = link.account_id else { return Ok(false) };
                let now = link.created_at;
                let mut tx = self.pool.begin().await?;
                // Locks the account's row (PostgreSQL re-checks the condition after a
                // concurrent password change commits), so a link is never issued for an
                // account that has just set its password.
                let open = sqlx::query($store::sql(
                    "UPDATE accounts SET updated_at = updated_at WHERE id = $1 AND password_hash IS NULL",
                ))
                .bind(account.to_string())
                .execute(&mut *tx)
                .await?;
                if open.rows_affected() != 1 {
                    return Ok(false);
                }
                sqlx::query($store::sql(
                    "UPDATE password_links SET expires_at = $1
                     WHERE account_id = $2 AND purpose = 'invitation' AND used_at IS NULL AND expires_at > $1",
                ))
                .bind(now.0)
                .bind(account.to_string())
                .execute(&mut *tx)
                .await?;
                Self::insert_link(&mut *tx, link).await?;
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(true)
            }

            async fn replace_setup_link(&self, link: &NewPasswordLink, now: UnixTime) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query($store::sql(
                    "UPDATE password_links SET expires_at = $1 WHERE purpose = 'setup' AND used_at IS NULL AND expires_at > $1",
                ))
                .bind(now.0)
                .execute(&mut *tx)
                .await?;
                Self::insert_link(&mut *tx, link).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_password_link(&self, hash: &TokenHash) -> StoreResult<Option<PasswordLink>> {
                let row = sqlx::query($store::sql(
                    "SELECT purpose, account_id, expires_at, used_at FROM password_links WHERE token_hash = $1",
                ))
                .bind(hash.as_str())
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let account_id: Option<String> = row.try_get("account_id")?;
                Ok(Some(PasswordLink {
                    purpose: LinkPurpose::parse(&row.try_get::<String, _>("purpose")?).ok_or_else(|| corrupt("link purpose"))?,
                    account_id: account_id.map(|a| parse_with(&a, AccountId::parse, "account id")).transpose()?,
                    expires_at: UnixTime(row.try_get("expires_at")?),
                    used_at: row.try_get::<Option<i64>, _>("used_at")?.map(UnixTime),
                }))
            }

            async fn set_password_with_link(
                &self,
                hash: &TokenHash,
                account: AccountId,
                password_hash: &str,
                now: UnixTime,
                audit: &NewAuditEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let used = sqlx::query($store::sql(
                    "UPDATE password_links SET used_at = $1
                     WHERE token_hash = $2 AND account_id = $3 AND used_at IS NULL AND expires_at > $1",
                ))
                .bind(now.0)
                .bind(hash.as_str())
                .bind(account.to_string())
                .execute(&mut *tx)
                .await?;
                if used.rows_affected() != 1 {
                    return Ok(false);
                }
                sqlx::query($store::sql("UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3"))
                    .bind(password_hash)
                    .bind(now.0)
                    .bind(account.to_string())
                    .execute(&mut *tx)
                    .await?;
                // A new password ends every session and sign-in in flight, and voids
                // other outstanding links.
                Self::move_stamp(&mut *tx, account, &crate::Via::default(), true).await?;
                sqlx::query($store::sql(
                    "UPDATE password_links SET expires_at = $1 WHERE account_id = $2 AND used_at IS NULL AND expires_at > $1",
                ))
                .bind(now.0)
                .bind(account.to_string())
                .execute(&mut *tx)
                .await?;
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(true)
            }

            async fn create_admin_with_setup_link(
                &self,
                hash: &TokenHash,
                a: &NewAccount,
                now: UnixTime,
                audit: &NewAuditEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let used = sqlx::query($store::sql(
                    "UPDATE password_links SET used_at = $1
                     WHERE token_hash = $2 AND purpose = 'setup' AND used_at IS NULL AND expires_at > $1",
                ))
                .bind(now.0)
                .bind(hash.as_str())
                .execute(&mut *tx)
                .await?;
                if used.rows_affected() != 1 {
                    return Ok(false);
                }
                sqlx::query($store::sql(
                    "INSERT INTO accounts (id, kind, realm, email, org_id, role, password_hash, status, created_at, updated_at)
                     VALUES ($1, 'platform_admin', 'staff', $2, NULL, NULL, $3, 'active', $4, $4)",
                ))
                .bind(a.id.to_string())
                .bind(a.email.as_str())
                .bind(a.password_hash.clone())
                .bind(now.0)
                .execute(&mut *tx)
                .await
                .map_err(|e| on_constraint(e, "an account with this email", "organization"))?;
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(true)
            }

            async fn insert_flow(&self, id: &TokenHash, flow: &LoginFlow) -> StoreResult<()> {
                let state = serde_json::to_string(&flow.step).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                sqlx::query($store::sql(
                    "INSERT INTO login_flows (id_hash, realm, email, state, created_at, expires_at, account_id, stamp)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                ))
                .bind(id.as_str())
                .bind(flow.realm.as_str())
                .bind(flow.email.as_str())
                .bind(state)
                .bind(flow.created_at.0)
                .bind(flow.expires_at.0)
                .bind(flow.step.account_id().map(|a| a.to_string()))
                .bind(flow.stamp)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_flow(&self, id: &TokenHash) -> StoreResult<Option<LoginFlow>> {
                let row = sqlx::query($store::sql("SELECT * FROM login_flows WHERE id_hash = $1"))
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let state: String = row.try_get("state")?;
                let step: FlowStep = serde_json::from_str(&state).map_err(|_| corrupt("login flow state"))?;
                Ok(Some(LoginFlow {
                    realm: parse_with(&row.try_get::<String, _>("realm")?, Realm::from_str, "realm")?,
                    email: parse_with(&row.try_get::<String, _>("email")?, Email::parse, "email")?,
                    step,
                    created_at: UnixTime(row.try_get("created_at")?),
                    expires_at: UnixTime(row.try_get("expires_at")?),
                    stamp: row.try_get("stamp")?,
                }))
            }

            async fn delete_flow(&self, id: &TokenHash) -> StoreResult<()> {
                sqlx::query($store::sql("DELETE FROM login_flows WHERE id_hash = $1"))
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn update_flow(&self, id: &TokenHash, flow: &LoginFlow) -> StoreResult<bool> {
                let state = serde_json::to_string(&flow.step).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                // The account and stamp are set once, when the password is accepted; a
                // later change to the account moves the stamp in the row, not here.
                let done = sqlx::query($store::sql(
                    "UPDATE login_flows SET state = $1, account_id = COALESCE(account_id, $3),
                       stamp = CASE WHEN account_id IS NULL THEN $4 ELSE stamp END
                     WHERE id_hash = $2",
                ))
                .bind(state)
                .bind(id.as_str())
                .bind(flow.step.account_id().map(|a| a.to_string()))
                .bind(flow.stamp)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn reserve_flow_attempt(&self, id: &TokenHash, max: u32) -> StoreResult<Option<u32>> {
                let row = sqlx::query($store::sql(
                    "UPDATE login_flows SET attempts = attempts + 1 WHERE id_hash = $1 AND attempts < $2 RETURNING attempts",
                ))
                .bind(id.as_str())
                .bind(i64::from(max))
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r| r.try_get::<i64, _>("attempts")).transpose()?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
            }

            async fn set_org_mfa(&self, id: &OrgId, mfa: &OrgMfa, audit: &NewAuditEvent) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query($store::sql(
                    "UPDATE organizations SET mfa_enabled = $1, mfa_mode = $2, mfa_methods = $3 WHERE id = $4",
                ))
                .bind(mfa.enabled)
                .bind(mfa.mode.as_str())
                .bind(mfa.methods.to_string())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(true)
            }

            async fn set_mfa_override(&self, id: AccountId, value: MemberOverride, audit: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query($store::sql("UPDATE accounts SET mfa_override = $1, updated_at = $2 WHERE id = $3"))
                    .bind(value.as_str())
                    .bind(audit.at.0)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(())
            }

            async fn set_preferred_factor(&self, id: AccountId, kind: Option<FactorKind>) -> StoreResult<()> {
                sqlx::query($store::sql("UPDATE accounts SET preferred_factor = $1 WHERE id = $2"))
                    .bind(kind.map(|k| k.as_str()))
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn list_factors(&self, account: AccountId) -> StoreResult<Vec<Factor>> {
                let rows = sqlx::query($store::sql("SELECT * FROM factors WHERE account_id = $1 ORDER BY created_at, id"))
                    .bind(account.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map($store::factor_from_row).collect()
            }

            async fn put_pending_factor(&self, p: &PendingFactor) -> StoreResult<()> {
                sqlx::query($store::sql(
                    "INSERT INTO pending_factors (account_id, kind, secret, nonce, key_version, created_at, expires_at, bound_to)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (account_id, kind) DO UPDATE SET secret = excluded.secret, nonce = excluded.nonce,
                       key_version = excluded.key_version, created_at = excluded.created_at, expires_at = excluded.expires_at,
                       bound_to = excluded.bound_to",
                ))
                .bind(p.account_id.to_string())
                .bind(p.kind.as_str())
                .bind(p.secret.ciphertext.clone())
                .bind(p.secret.nonce.clone())
                .bind(p.secret.key_version)
                .bind(p.created_at.0)
                .bind(p.expires_at.0)
                .bind(&p.bound_to)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_pending_factor(&self, account: AccountId, kind: FactorKind) -> StoreResult<Option<PendingFactor>> {
                let row = sqlx::query($store::sql("SELECT * FROM pending_factors WHERE account_id = $1 AND kind = $2"))
                    .bind(account.to_string())
                    .bind(kind.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let secret = Self::sealed_from_row(&row)?.ok_or_else(|| corrupt("pending factor secret"))?;
                Ok(Some(PendingFactor {
                    account_id: account,
                    kind,
                    secret,
                    created_at: UnixTime(row.try_get("created_at")?),
                    expires_at: UnixTime(row.try_get("expires_at")?),
                    bound_to: row.try_get("bound_to")?,
                }))
            }

            async fn enroll_factor(
                &self,
                f: &NewFactor,
                recovery_code_hash: Option<&str>,
                audit: &NewAuditEvent,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query($store::sql("DELETE FROM pending_factors WHERE account_id = $1 AND kind = $2"))
                    .bind(f.account_id.to_string())
                    .bind(f.kind.as_str())
                    .execute(&mut *tx)
                    .await?;
                if f.kind != FactorKind::Passkey {
                    // One factor of each kind (passkeys aside): a new phone or number
                    // replaces the old one, whose codes stop working now.
                    sqlx::query($store::sql("DELETE FROM factors WHERE account_id = $1 AND kind = $2"))
                        .bind(f.account_id.to_string())
                        .bind(f.kind.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query($store::sql(
                    "INSERT INTO factors (id, account_id, kind, label, secret, nonce, key_version, last_used_step, created_at, last_used_at, target)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
                ))
                .bind(&f.id)
                .bind(f.account_id.to_string())
                .bind(f.kind.as_str())
                .bind(&f.label)
                .bind(f.secret.as_ref().map(|s| s.ciphertext.clone()))
                .bind(f.secret.as_ref().map(|s| s.nonce.clone()))
                .bind(f.secret.as_ref().map(|s| s.key_version))
                .bind(f.last_used_step)
                .bind(f.now.0)
                .bind(f.target.clone())
                .execute(&mut *tx)
                .await?;
                if let Some(hash) = recovery_code_hash {
                    Self::put_recovery_code(&mut *tx, f.account_id, hash, f.now).await?;
                }
                Self::move_stamp(&mut *tx, f.account_id, &audit.via, true).await?;
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(())
            }

            async fn use_totp_step(&self, factor_id: &str, step: i64, now: UnixTime, audit: &NewAuditEvent) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query($store::sql(
                    "UPDATE factors SET last_used_step = $1, last_used_at = $2
                     WHERE id = $3 AND (last_used_step IS NULL OR last_used_step < $1)",
                ))
                .bind(step)
                .bind(now.0)
                .bind(factor_id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(true)
            }

            async fn remove_factors(
                &self,
                account: AccountId,
                kind: Option<FactorKind>,
                audit: &NewAuditEvent,
            ) -> StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                let removed = sqlx::query($store::sql(
                    "DELETE FROM factors WHERE account_id = $1 AND ($2 IS NULL OR kind = $2)",
                ))
                .bind(account.to_string())
                .bind(kind.map(|k| k.as_str()))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if kind.is_none() {
                    sqlx::query($store::sql("DELETE FROM recovery_codes WHERE account_id = $1"))
                        .bind(account.to_string())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query($store::sql("DELETE FROM pending_factors WHERE account_id = $1"))
                        .bind(account.to_string())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query($store::sql("UPDATE accounts SET preferred_factor = NULL WHERE id = $1"))
                        .bind(account.to_string())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query($store::sql("DELETE FROM factor_failures WHERE account_id = $1"))
                        .bind(account.to_string())
                        .execute(&mut *tx)
                        .await?;
                }
                Self::move_stamp(&mut *tx, account, &audit.via, true).await?;
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(removed)
            }

            async fn insert_passkey(&self, p: &NewPasskey, audit: &NewAuditEvent, max: i64) -> StoreResult<bool> {
                let f = &p.factor;
                let mut tx = self.pool.begin().await?;
                // The limit is checked by the INSERT itself, so that two devices trusted
                // at once cannot both slip under it.
                let done = sqlx::query($store::sql(
                    "INSERT INTO factors (id, account_id, kind, label, secret, nonce, key_version, created_at, last_used_at,
                       credential_id, sign_count, backup_eligible, backup_state)
                     SELECT $1, $2, 'passkey', $3, $4, $5, $6, $7, NULL, $8, $9, $10, $11
                     WHERE (SELECT COUNT(*) FROM factors WHERE account_id = $2 AND kind = 'passkey') < $12",
                ))
                .bind(&f.id)
                .bind(f.account_id.to_string())
                .bind(&f.label)
                .bind(f.secret.as_ref().map(|s| s.ciphertext.clone()))
                .bind(f.secret.as_ref().map(|s| s.nonce.clone()))
                .bind(f.secret.as_ref().map(|s| s.key_version))
                .bind(f.now.0)
                .bind(&p.state.credential_id)
                .bind(i64::from(p.state.sign_count))
                .bind(p.state.backup_eligible)
                .bind(p.state.backup_state)
                .bind(max)
                .execute(&mut *tx)
                .await
                .map_err(|e| on_constraint(e, "passkey", "account"))?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                Self::move_stamp(&mut *tx, f.account_id, &audit.via, true).await?;
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(true)
            }

            async fn use_passkey(&self, u: &PasskeyUse, audit: &NewAuditEvent) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                // The counter guard is in the UPDATE itself, so two processes accepting
                // the same assertion cannot both succeed.
                let done = sqlx::query($store::sql(
                    "UPDATE factors SET sign_count = $1, backup_state = $2, secret = $3, nonce = $4, key_version = $5,
                       last_used_at = $6
                     WHERE id = $7 AND account_id = $9 AND kind = 'passkey' AND ($8 = 0 OR COALESCE(sign_count, 0) < $1)",
                ))
                .bind(i64::from(u.sign_count))
                .bind(u.backup_state)
                .bind(u.sealed.ciphertext.clone())
                .bind(u.sealed.nonce.clone())
                .bind(u.sealed.key_version)
                .bind(u.now.0)
                .bind(&u.factor_id)
                .bind(i64::from(u.counter_must_advance))
                .bind(u.account_id.to_string())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(true)
            }

            async fn rename_passkey(
                &self,
                account: AccountId,
                factor_id: &str,
                name: &str,
                audit: &NewAuditEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query($store::sql(
                    "UPDATE factors SET label = $1 WHERE id = $2 AND account_id = $3 AND kind = 'passkey'",
                ))
                .bind(name)
                .bind(factor_id)
                .bind(account.to_string())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(true)
            }

            async fn remove_passkey(&self, account: AccountId, factor_id: &str, audit: &NewAuditEvent) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query($store::sql(
                    "DELETE FROM factors WHERE id = $1 AND account_id = $2 AND kind = 'passkey'",
                ))
                .bind(factor_id)
                .bind(account.to_string())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                // A preference for passkeys means nothing once none is left.
                sqlx::query($store::sql(
                    "UPDATE accounts SET preferred_factor = NULL WHERE id = $1 AND preferred_factor = 'passkey'
                       AND NOT EXISTS (SELECT 1 FROM factors WHERE account_id = $1 AND kind = 'passkey')",
                ))
                .bind(account.to_string())
                .execute(&mut *tx)
                .await?;
                Self::move_stamp(&mut *tx, account, &audit.via, true).await?;
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(true)
            }

            async fn put_ceremony(&self, c: &Ceremony) -> StoreResult<()> {
                sqlx::query($store::sql(
                    "INSERT INTO webauthn_ceremonies (ceremony_key, account_id, state, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (ceremony_key) DO UPDATE SET account_id = excluded.account_id, state = excluded.state,
                       created_at = excluded.created_at, expires_at = excluded.expires_at",
                ))
                .bind(&c.key)
                .bind(c.account_id.to_string())
                .bind(&c.state)
                .bind(c.created_at.0)
                .bind(c.expires_at.0)
                .execute(&self.pool)
                .await
                .map_err(|e| on_constraint(e, "ceremony", "account"))?;
                Ok(())
            }

            async fn take_ceremony(&self, key: &str, now: UnixTime) -> StoreResult<Option<Ceremony>> {
                // Deleted as it is read: a second response to the same options finds nothing.
                let row = sqlx::query($store::sql(
                    "DELETE FROM webauthn_ceremonies WHERE ceremony_key = $1 RETURNING *",
                ))
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let c = Ceremony {
                    key: row.try_get("ceremony_key")?,
                    account_id: parse_with(&row.try_get::<String, _>("account_id")?, AccountId::parse, "account id")?,
                    state: row.try_get("state")?,
                    created_at: UnixTime(row.try_get("created_at")?),
                    expires_at: UnixTime(row.try_get("expires_at")?),
                };
                Ok((now < c.expires_at).then_some(c))
            }

            async fn put_code(&self, c: &StoredCode, audit: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query($store::sql(
                    "INSERT INTO code_challenges (account_id, channel, purpose, target, code_hash, sent_at, expires_at, attempts, bound_to)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)
                     ON CONFLICT (account_id, channel) DO UPDATE SET purpose = excluded.purpose, target = excluded.target,
                       code_hash = excluded.code_hash, sent_at = excluded.sent_at, expires_at = excluded.expires_at, attempts = 0,
                       bound_to = excluded.bound_to",
                ))
                .bind(c.account_id.to_string())
                .bind(c.channel.as_str())
                .bind(&c.purpose)
                .bind(&c.target)
                .bind(&c.code_hash)
                .bind(c.challenge.sent_at.0)
                .bind(c.challenge.expires_at.0)
                .bind(&c.bound_to)
                .execute(&mut *tx)
                .await?;
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(())
            }

            async fn get_code(&self, account: AccountId, channel: FactorKind) -> StoreResult<Option<StoredCode>> {
                let row = sqlx::query($store::sql("SELECT * FROM code_challenges WHERE account_id = $1 AND channel = $2"))
                    .bind(account.to_string())
                    .bind(channel.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map($store::code_from_row).transpose()
            }

            async fn count_code_attempt(&self, account: AccountId, channel: FactorKind) -> StoreResult<Option<u32>> {
                let row = sqlx::query($store::sql(
                    "UPDATE code_challenges SET attempts = attempts + 1 WHERE account_id = $1 AND channel = $2 RETURNING attempts",
                ))
                .bind(account.to_string())
                .bind(channel.as_str())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r| r.try_get::<i64, _>("attempts")).transpose()?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
            }

            async fn consume_code(
                &self,
                account: AccountId,
                channel: FactorKind,
                code_hash: &str,
                used: Option<(UnixTime, &NewAuditEvent)>,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query($store::sql(
                    "DELETE FROM code_challenges WHERE account_id = $1 AND channel = $2 AND code_hash = $3",
                ))
                .bind(account.to_string())
                .bind(channel.as_str())
                .bind(code_hash)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                if let Some((now, audit)) = used {
                    sqlx::query($store::sql("UPDATE factors SET last_used_at = $3 WHERE account_id = $1 AND kind = $2"))
                        .bind(account.to_string())
                        .bind(channel.as_str())
                        .bind(now.0)
                        .execute(&mut *tx)
                        .await?;
                    write_audit!(self, &mut *tx, audit);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn delete_code(&self, account: AccountId, channel: FactorKind) -> StoreResult<()> {
                sqlx::query($store::sql("DELETE FROM code_challenges WHERE account_id = $1 AND channel = $2"))
                    .bind(account.to_string())
                    .bind(channel.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn recovery_code_hash(&self, account: AccountId) -> StoreResult<Option<String>> {
                let row = sqlx::query($store::sql("SELECT code_hash FROM recovery_codes WHERE account_id = $1"))
                    .bind(account.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| r.try_get("code_hash")).transpose()?)
            }

            async fn replace_recovery_code(
                &self,
                account: AccountId,
                expected: Option<&str>,
                new_hash: &str,
                now: UnixTime,
                audit: &NewAuditEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = match expected {
                    Some(old) => sqlx::query($store::sql(
                        "UPDATE recovery_codes SET code_hash = $1, created_at = $2 WHERE account_id = $3 AND code_hash = $4",
                    ))
                    .bind(new_hash)
                    .bind(now.0)
                    .bind(account.to_string())
                    .bind(old)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                                        None => Self::put_recovery_code(&mut *tx, account, new_hash, now).await?,
                };
                if done != 1 {
                    return Ok(false);
                }
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(true)
            }

            async fn insert_session(
                &self,
                s: &NewSession,
                finished_flow: &TokenHash,
                audit: &NewAuditEvent,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                Self::insert_session_tx(&mut *tx, s, finished_flow).await?;
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(())
            }

            async fn get_session(&self, token: &TokenHash) -> StoreResult<Option<SessionRecord>> {
                let row = sqlx::query($store::sql(
                    "SELECT account_id, csrf_token, created_at, last_seen_at, verified_at FROM sessions WHERE token_hash = $1",
                ))
                .bind(token.as_str())
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(SessionRecord {
                    account_id: parse_with(&row.try_get::<String, _>("account_id")?, AccountId::parse, "account id")?,
                    csrf_token: row.try_get("csrf_token")?,
                    created_at: UnixTime(row.try_get("created_at")?),
                    last_seen_at: UnixTime(row.try_get("last_seen_at")?),
                    verified_at: row.try_get::<Option<i64>, _>("verified_at")?.map(UnixTime),
                }))
            }

            async fn touch_session(&self, token: &TokenHash, now: UnixTime) -> StoreResult<()> {
                sqlx::query($store::sql("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2 AND last_seen_at < $1"))
                    .bind(now.0)
                    .bind(token.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn mark_session_verified(&self, token: &TokenHash, now: UnixTime) -> StoreResult<()> {
                sqlx::query($store::sql("UPDATE sessions SET verified_at = $1 WHERE token_hash = $2"))
                    .bind(now.0)
                    .bind(token.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_session(&self, token: &TokenHash, audit: Option<&NewAuditEvent>) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query($store::sql("DELETE FROM sessions WHERE token_hash = $1"))
                    .bind(token.as_str())
                    .execute(&mut *tx)
                    .await?;
                if let Some(audit) = audit {
                    write_audit!(self, &mut *tx, audit);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_throttle(&self, key: &str) -> StoreResult<Option<ThrottleState>> {
                let row = sqlx::query($store::sql("SELECT failures, locked_until FROM throttles WHERE key = $1"))
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(ThrottleState {
                    failures: u32::try_from(row.try_get::<i64, _>("failures")?).unwrap_or(u32::MAX),
                    locked_until: UnixTime(row.try_get("locked_until")?),
                }))
            }

            async fn record_failure(
                &self,
                key: &str,
                rule: ThrottleRule,
                now: UnixTime,
                audit: Option<&NewAuditEvent>,
            ) -> StoreResult<ThrottleState> {
                let mut tx = self.pool.begin().await?;
                // One statement counts the failure, so concurrent failures are all counted;
                // the count restarts when the window passed and no lock is in force.
                let row = sqlx::query($store::sql(
                    "INSERT INTO throttles (key, failures, window_start, locked_until) VALUES ($1, 1, $2, 0)
                     ON CONFLICT (key) DO UPDATE SET
                       failures = CASE WHEN throttles.window_start < $3 AND throttles.locked_until <= $2
                                       THEN 1 ELSE throttles.failures + 1 END,
                       window_start = CASE WHEN throttles.window_start < $3 AND throttles.locked_until <= $2
                                       THEN $2 ELSE throttles.window_start END
                     RETURNING failures, locked_until",
                ))
                .bind(key)
                .bind(now.0)
                .bind(rule.window_start_cutoff(now).0)
                .fetch_one(&mut *tx)
                .await?;
                let state = Self::lock_if_due(&mut *tx, key, rule, now, &row).await?;
                if let Some(audit) = audit {
                    write_audit!(self, &mut *tx, audit);
                }
                tx.commit().await?;
                Ok(state)
            }

            async fn reserve_attempt(&self, key: &str, rule: ThrottleRule, now: UnixTime) -> StoreResult<Option<ThrottleState>> {
                let mut tx = self.pool.begin().await?;
                // Counted only while unlocked: under a lock the row is left alone and
                // nothing is returned. The lock this attempt earns is set before commit,
                // so a concurrent attempt waiting on the row sees it.
                let row = sqlx::query($store::sql(
                    "INSERT INTO throttles (key, failures, window_start, locked_until) VALUES ($1, 1, $2, 0)
                     ON CONFLICT (key) DO UPDATE SET
                       failures = CASE WHEN throttles.window_start < $3 THEN 1 ELSE throttles.failures + 1 END,
                       window_start = CASE WHEN throttles.window_start < $3 THEN $2 ELSE throttles.window_start END
                     WHERE throttles.locked_until <= $2
                     RETURNING failures, locked_until",
                ))
                .bind(key)
                .bind(now.0)
                .bind(rule.window_start_cutoff(now).0)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let state = Self::lock_if_due(&mut *tx, key, rule, now, &row).await?;
                tx.commit().await?;
                Ok(Some(state))
            }

            async fn reserve_factor_attempt(&self, account: AccountId, factor: FactorKind, cap: u32) -> StoreResult<Option<u32>> {
                let row = sqlx::query($store::sql(
                    "INSERT INTO factor_failures (account_id, factor, failures) VALUES ($1, $2, 1)
                     ON CONFLICT (account_id, factor) DO UPDATE SET failures = factor_failures.failures + 1
                     WHERE factor_failures.failures < $3
                     RETURNING failures",
                ))
                .bind(account.to_string())
                .bind(factor.as_str())
                .bind(i64::from(cap))
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|r| r.try_get::<i64, _>("failures")).transpose()?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
            }

            async fn factor_failures(&self, account: AccountId) -> StoreResult<Vec<(FactorKind, u32)>> {
                let rows = sqlx::query($store::sql("SELECT factor, failures FROM factor_failures WHERE account_id = $1"))
                    .bind(account.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let kind = parse_with(&r.try_get::<String, _>("factor")?, FactorKind::from_str, "factor kind")?;
                        let n = u32::try_from(r.try_get::<i64, _>("failures")?).unwrap_or(u32::MAX);
                        Ok((kind, n))
                    })
                    .collect()
            }

            async fn clear_factor_failures(&self, account: AccountId) -> StoreResult<()> {
                sqlx::query($store::sql("DELETE FROM factor_failures WHERE account_id = $1"))
                    .bind(account.to_string())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn clear_throttle(&self, key: &str) -> StoreResult<()> {
                sqlx::query($store::sql("DELETE FROM throttles WHERE key = $1"))
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn append_audit(&self, event: &NewAuditEvent) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                write_audit!(self, &mut *tx, event);
                tx.commit().await?;
                Ok(())
            }

            async fn verify_audit(
                &self,
                checkpoint: &std::collections::BTreeMap<String, ChainHead>,
            ) -> StoreResult<AuditVerification> {
                use std::collections::{BTreeMap, BTreeSet};
                // One snapshot for heads and events, so appends meanwhile cannot
                // look like a broken chain.
                let mut tx = self.pool.begin().await?;
                if let Some(snapshot) = Self::SNAPSHOT {
                    sqlx::query($store::sql(snapshot)).execute(&mut *tx).await?;
                }
                let heads = sqlx::query($store::sql("SELECT chain, seq, hash FROM audit_chain_heads ORDER BY chain"))
                    .fetch_all(&mut *tx)
                    .await?;
                let mut heads: BTreeMap<String, (i64, String)> = heads
                    .iter()
                    .map(|r| Ok((r.try_get("chain")?, (r.try_get("seq")?, r.try_get("hash")?))))
                    .collect::<StoreResult<_>>()?;
                let orgs: Vec<String> = sqlx::query($store::sql("SELECT id FROM organizations ORDER BY id"))
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| r.try_get("id"))
                    .collect::<Result<_, _>>()?;
                let mut report = AuditVerification::default();
                let mut seen = BTreeSet::new();
                let keys = &*self.keys;
                {
                    let mut rows = sqlx::query($store::sql(
                        "SELECT id, at, kind, outcome, org_id, actor_id, subject_id, client_ip, user_agent, detail,
                                COALESCE(chain, '') AS chain, COALESCE(seq, 0) AS seq,
                                COALESCE(prev_hash, '') AS prev_hash, COALESCE(hash, '') AS hash
                         FROM audit_events ORDER BY chain, seq, id",
                    ))
                    .fetch(&mut *tx);
                    // The chain being read, and its verifier until it breaks.
                    let mut run: Option<(String, Option<ChainVerifier<'_>>)> = None;
                    while let Some(r) = rows.try_next().await? {
                        let chain: String = r.try_get("chain")?;
                        if run.as_ref().is_none_or(|(c, _)| *c != chain) {
                            if let Some((c, v)) = run.take() {
                                finish_chain(&mut heads, &mut report, c, v);
                            }
                            seen.insert(chain.clone());
                            let v = ChainVerifier::new(keys, &chain, checkpoint.get(&chain).cloned());
                            run = Some((chain.clone(), Some(v)));
                        }
                        let Some((_, Some(verifier))) = run.as_mut() else { continue };
                        let (org_id, actor_id, subject_id): (Option<String>, Option<String>, Option<String>) =
                            (r.try_get("org_id")?, r.try_get("actor_id")?, r.try_get("subject_id")?);
                        let (kind, outcome, client_ip, user_agent, detail, prev_hash, hash): (
                            String, String, String, String, String, String, String,
                        ) = (
                            r.try_get("kind")?, r.try_get("outcome")?, r.try_get("client_ip")?,
                            r.try_get("user_agent")?, r.try_get("detail")?, r.try_get("prev_hash")?,
                            r.try_get("hash")?,
                        );
                        let link = StoredLink {
                            id: r.try_get("id")?,
                            fields: ChainedFields {
                                chain: &chain, seq: r.try_get("seq")?, at: r.try_get("at")?, kind: &kind,
                                outcome: &outcome, org_id: org_id.as_deref(), actor_id: actor_id.as_deref(),
                                subject_id: subject_id.as_deref(), client_ip: &client_ip, user_agent: &user_agent,
                                detail: &detail,
                            },
                            prev_hash: &prev_hash,
                            hash: &hash,
                        };
                        if let Err(b) = verifier.push(&link) {
                            report.breaks.push(b);
                            if let Some((_, v)) = run.as_mut() {
                                *v = None;
                            }
                        }
                    }
                    if let Some((c, v)) = run.take() {
                        finish_chain(&mut heads, &mut report, c, v);
                    }
                }
                // A head, or a checkpoint, without any event left: the whole chain was deleted.
                let leftover: BTreeSet<String> =
                    heads.keys().chain(checkpoint.keys()).filter(|c| !seen.contains(*c)).cloned().collect();
                for chain in leftover {
                    seen.insert(chain.clone());
                    let v = ChainVerifier::new(keys, &chain, checkpoint.get(&chain).cloned());
                    finish_chain(&mut heads, &mut report, chain, Some(v));
                }
                // Every organization's creation is its chain's first event, and every
                // platform admin's creation is on the platform chain.
                for org in orgs {
                    if !seen.contains(&org) {
                        report.breaks.push(ChainBreak::ChainMissing { chain: org });
                    }
                }
                let count = |sql: &'static str| sqlx::query($store::sql(sql));
                let admins: i64 = count("SELECT COUNT(*) AS n FROM accounts WHERE kind = 'platform_admin'")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                if admins > 0 && !seen.contains(PLATFORM_CHAIN) {
                    report.breaks.push(ChainBreak::PlatformChainMissing);
                }
                // migrate takes the one genuine re-key request (migration 0006's) at
                // once; one still here was refused.
                let pending: i64 =
                    count("SELECT COUNT(*) AS n FROM audit_rekey_pending").fetch_one(&mut *tx).await?.try_get("n")?;
                if pending > 0 {
                    report.breaks.push(ChainBreak::RekeyRequested);
                }
                tx.commit().await?;
                Ok(report)
            }

            async fn list_members(&self, org: &OrgId) -> StoreResult<Vec<Account>> {
                let rows = sqlx::query($store::sql(
                    "SELECT * FROM accounts WHERE org_id = $1 AND kind = 'member' ORDER BY email",
                ))
                .bind(org.as_str())
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map($store::account_from_row).collect()
            }

            async fn set_account_status(
                &self,
                id: AccountId,
                status: AccountStatus,
                audit: &NewAuditEvent,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query($store::sql("UPDATE accounts SET status = $1, updated_at = $2 WHERE id = $3"))
                    .bind(status.as_str())
                    .bind(audit.at.0)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                if status == AccountStatus::Deactivated {
                    Self::move_stamp(&mut *tx, id, &crate::Via::default(), true).await?;
                }
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(true)
            }

            async fn set_role(&self, id: AccountId, role: Role, audit: &NewAuditEvent) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query($store::sql(
                    "UPDATE accounts SET role = $1, updated_at = $2 WHERE id = $3 AND kind = 'member'",
                ))
                .bind(role.as_str())
                .bind(audit.at.0)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(true)
            }

            async fn revoke_sessions(&self, id: AccountId, audit: &NewAuditEvent) -> StoreResult<u64> {
                let mut tx = self.pool.begin().await?;
                let n = sqlx::query($store::sql("DELETE FROM sessions WHERE account_id = $1"))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                Self::move_stamp(&mut *tx, id, &crate::Via::default(), false).await?;
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(n)
            }

            async fn count_sessions(&self, id: AccountId) -> StoreResult<i64> {
                let row = sqlx::query($store::sql("SELECT COUNT(*) AS n FROM sessions WHERE account_id = $1"))
                    .bind(id.to_string())
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get("n")?)
            }

            async fn org_member_security(&self, org: &OrgId) -> StoreResult<OrgMemberSecurity> {
                let factors = sqlx::query($store::sql(
                    "SELECT f.* FROM factors f JOIN accounts a ON a.id = f.account_id
                     WHERE a.org_id = $1 AND a.kind = 'member' ORDER BY f.created_at, f.id",
                ))
                .bind(org.as_str())
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map($store::factor_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
                let parse = |s: String| parse_with(&s, AccountId::parse, "account id");
                let with_recovery_code = sqlx::query($store::sql(
                    "SELECT r.account_id FROM recovery_codes r JOIN accounts a ON a.id = r.account_id
                     WHERE a.org_id = $1 AND a.kind = 'member'",
                ))
                .bind(org.as_str())
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| parse(r.try_get("account_id")?))
                .collect::<StoreResult<Vec<_>>>()?;
                let sessions = sqlx::query($store::sql(
                    "SELECT s.account_id, COUNT(*) AS n FROM sessions s JOIN accounts a ON a.id = s.account_id
                     WHERE a.org_id = $1 AND a.kind = 'member' GROUP BY s.account_id",
                ))
                .bind(org.as_str())
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok((parse(r.try_get("account_id")?)?, r.try_get("n")?)))
                .collect::<StoreResult<Vec<_>>>()?;
                Ok(OrgMemberSecurity { factors, with_recovery_code, sessions })
            }

            async fn grant_bypass(&self, id: AccountId, b: &Bypass, audit: &NewAuditEvent) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query($store::sql(
                    "UPDATE accounts SET bypass_granted_at = $1, bypass_expires_at = $2, bypass_granted_by = $3, updated_at = $1
                     WHERE id = $4",
                ))
                .bind(b.granted_at.0)
                .bind(b.expires_at.0)
                .bind(b.granted_by.map(|a| a.to_string()))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                Self::move_stamp(&mut *tx, id, &audit.via, false).await?;
                write_audit!(self, &mut *tx, audit);
                tx.commit().await?;
                Ok(true)
            }

            async fn use_bypass(
                &self,
                id: AccountId,
                now: UnixTime,
                audit: &NewAuditEvent,
                session: Option<(&NewSession, &TokenHash, &NewAuditEvent)>,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                // Only one sign-in can clear a bypass, however many race for it.
                let used = sqlx::query($store::sql(
                    "UPDATE accounts SET bypass_granted_at = NULL, bypass_expires_at = NULL, bypass_granted_by = NULL
                     WHERE id = $1 AND bypass_expires_at > $2",
                ))
                .bind(id.to_string())
                .bind(now.0)
                .execute(&mut *tx)
                .await?;
                if used.rows_affected() != 1 {
                    return Ok(false);
                }
                for sql in [
                    "DELETE FROM factors WHERE account_id = $1",
                    "DELETE FROM recovery_codes WHERE account_id = $1",
                    "DELETE FROM pending_factors WHERE account_id = $1",
                    "DELETE FROM code_challenges WHERE account_id = $1",
                    "UPDATE accounts SET preferred_factor = NULL WHERE id = $1",
                    "DELETE FROM factor_failures WHERE account_id = $1",
                ] {
                    sqlx::query($store::sql(sql)).bind(id.to_string()).execute(&mut *tx).await?;
                }
                Self::move_stamp(&mut *tx, id, &audit.via, true).await?;
                write_audit!(self, &mut *tx, audit);
                if let Some((s, flow, signed_in)) = session {
                    Self::insert_session_tx(&mut *tx, s, flow).await?;
                    write_audit!(self, &mut *tx, signed_in);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn list_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEvent>> {
                let rows = sqlx::query($store::sql(
                    "SELECT * FROM audit_events
                     WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR subject_id = $2) AND ($3 IS NULL OR kind = $3)
                       AND ($5 IS NULL OR subject_id = $5 OR actor_id = $5)
                       AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7) AND ($8 IS NULL OR id < $8)
                     ORDER BY id DESC LIMIT $4",
                ))
                .bind(f.org_id.as_ref().map(|o| o.as_str().to_owned()))
                .bind(f.subject_id.map(|s| s.to_string()))
                .bind(f.kind.clone())
                .bind(if f.limit > 0 { f.limit } else { 100 })
                .bind(f.member.map(|s| s.to_string()))
                .bind(f.since.map(|t| t.0))
                .bind(f.until.map(|t| t.0))
                .bind(f.before_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map($store::audit_from_row).collect()
            }

            async fn purge_expired(&self, now: UnixTime, idle_cutoff: UnixTime) -> StoreResult<u64> {
                let mut n = 0;
                n += sqlx::query($store::sql("DELETE FROM login_flows WHERE expires_at <= $1"))
                    .bind(now.0)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                n += sqlx::query($store::sql("DELETE FROM sessions WHERE last_seen_at < $1"))
                    .bind(idle_cutoff.0)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                n += sqlx::query($store::sql("DELETE FROM code_challenges WHERE expires_at <= $1"))
                    .bind(now.0)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                                n += sqlx::query($store::sql("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1"))
                    .bind(now.0)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                n += sqlx::query($store::sql("DELETE FROM pending_factors WHERE expires_at <= $1"))
                    .bind(now.0)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                n += sqlx::query($store::sql("DELETE FROM password_links WHERE expires_at <= $1 AND used_at IS NULL"))
                    .bind(now.0 - 7 * 24 * 3600)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(n)
            }
        }

                impl $store {
            /// Sets the account's recovery code, replacing any earlier one.
            async fn put_recovery_code<'c, E>(conn: E, account: AccountId, hash: &str, now: UnixTime) -> StoreResult<u64>
            where
                E: sqlx::Executor<'c, Database = <$row as Row>::Database>,
            {
                let done = sqlx::query($store::sql(
                    "INSERT INTO recovery_codes (account_id, code_hash, created_at) VALUES ($1, $2, $3)
                     ON CONFLICT (account_id) DO UPDATE SET code_hash = excluded.code_hash, created_at = excluded.created_at",
                ))
                .bind(account.to_string())
                .bind(hash)
                .bind(now.0)
                .execute(conn)
                .await?;
                Ok(done.rows_affected())
            }

            async fn insert_link<'c, E>(conn: E, link: &NewPasswordLink) -> StoreResult<()>
            where
                E: sqlx::Executor<'c, Database = <$row as Row>::Database>,
            {
                sqlx::query($store::sql(
                    "INSERT INTO password_links (token_hash, purpose, account_id, created_at, expires_at, used_at)
                     VALUES ($1, $2, $3, $4, $5, NULL)",
                ))
                .bind(link.token_hash.as_str())
                .bind(link.purpose.as_str())
                .bind(link.account_id.map(|a| a.to_string()))
                .bind(link.created_at.0)
                .bind(link.expires_at.0)
                .execute(conn)
                .await?;
                Ok(())
            }
        }
    };
}

store_impl!(SqliteStore, sqlx::sqlite::SqliteRow, "sqlite");
store_impl!(PgStore, sqlx::postgres::PgRow, "postgres");

#[cfg(test)]
mod tests {
    use super::to_sqlite_params;

    #[test]
    fn numbered_parameters_become_sqlite_style() {
        assert_eq!(to_sqlite_params("a = $1 AND b = $12 OR c = $1"), "a = ?1 AND b = ?12 OR c = ?1");
        assert_eq!(to_sqlite_params("price$ = $"), "price$ = $");
    }
}
