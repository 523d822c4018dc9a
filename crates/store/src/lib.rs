//! The clinic-auth store: every piece of state a sign-in needs, behind one trait with
//! two real backends. SQLite is the embedded default; PostgreSQL serves several
//! server instances behind one load balancer.
//!
//! Each state change that matters for security takes the audit event that records it
//! and writes both in one transaction.

mod backend;
mod records;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::sync::Arc;

use async_trait::async_trait;
use clinic_auth_core::{
    AccountId, AccountStatus, Email, FactorKind, LoginFlow, MemberOverride, OrgId, OrgMfa, Realm, Role, ThrottleRule,
    ThrottleState, TokenHash, UnixTime,
};

pub use backend::{PgStore, SqliteStore};
pub use clinic_auth_core::audit::ChainKeys;
pub use records::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is taken (an email in its realm, an organization id).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A row referred to something that does not exist.
    #[error("{0} does not exist")]
    MissingReference(&'static str),
    /// A stored value that should have been valid was not.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("unsupported database URL (use sqlite:PATH or postgres://…)")]
    UnsupportedUrl,
    /// Something this backend does not do (the message says what to use instead).
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything clinic-auth keeps.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Which backend this is, for logs and health output.
    fn backend_name(&self) -> &'static str;
    /// Brings the schema up to date.
    async fn migrate(&self) -> StoreResult<()>;
    /// Answers if the database can be reached.
    async fn ping(&self) -> StoreResult<()>;

    // Organizations
    async fn insert_org(&self, org: &Org, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn get_org(&self, id: &OrgId) -> StoreResult<Option<Org>>;
    async fn list_orgs(&self) -> StoreResult<Vec<Org>>;

    // Accounts
    /// Creates an account, with the invitation link that lets its holder set a password.
    async fn insert_account(
        &self,
        account: &NewAccount,
        link: Option<&NewPasswordLink>,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    async fn get_account(&self, id: AccountId) -> StoreResult<Option<Account>>;
    async fn find_account(&self, realm: Realm, email: &Email) -> StoreResult<Option<Account>>;
    async fn count_platform_admins(&self) -> StoreResult<i64>;
    /// Replaces a password hash with one made under current parameters.
    async fn rehash_password(&self, id: AccountId, password_hash: &str, now: UnixTime) -> StoreResult<()>;

    // Password links (first-admin setup, invitations, password resets)
    async fn insert_password_link(&self, link: &NewPasswordLink, audit: &NewAuditEvent) -> StoreResult<()>;
    /// "Resend invitation": voids the account's unused invitation links and stores
    /// `link` (a new one) with its audit event, in one transaction, only while the
    /// account still has no password (false, and nothing changed, once it has one or
    /// is gone).
    async fn reissue_invitation(&self, link: &NewPasswordLink, audit: &NewAuditEvent) -> StoreResult<bool>;
    /// Makes a new setup link the only unused one.
    async fn replace_setup_link(&self, link: &NewPasswordLink, now: UnixTime) -> StoreResult<()>;
    async fn get_password_link(&self, hash: &TokenHash) -> StoreResult<Option<PasswordLink>>;
    /// Uses an invitation or reset link: sets the password and ends every session of
    /// the account. False if the link was used or expired in the meantime.
    async fn set_password_with_link(
        &self,
        hash: &TokenHash,
        account: AccountId,
        password_hash: &str,
        now: UnixTime,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    /// "Change password" from a signed-in session, in one transaction: sets the new
    /// hash, moves the security stamp on (ending the account's sign-ins in flight and
    /// every other session, which also ends the grants of its apps) but keeps the
    /// session `keep_session`, voids the account's unused password links, and appends
    /// `audit`. Only while that session exists and belongs to the account, which must
    /// be active: false (and nothing changed) otherwise, e.g. when the session was
    /// ended concurrently.
    async fn change_password(
        &self,
        account: AccountId,
        password_hash: &str,
        keep_session: &TokenHash,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    /// "Change email": stores a pending change, ends the account's other unused
    /// changes (their expiry moves to `change.created_at`), and appends `audit`, in
    /// one transaction.
    async fn insert_email_change(&self, change: &NewEmailChange, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn get_email_change(&self, hash: &TokenHash) -> StoreResult<Option<EmailChange>>;
    /// The account's newest change still usable at `now`, if any.
    async fn pending_email_change(&self, account: AccountId, now: UnixTime) -> StoreResult<Option<EmailChange>>;
    /// Ends the account's usable changes ("Cancel"); with `audit` when there was one.
    /// False when none was pending.
    async fn cancel_email_change(&self, account: AccountId, audit: &NewAuditEvent) -> StoreResult<bool>;
    /// Uses a change link, in one transaction: marks it used (once; concurrent
    /// confirms: one wins), and sets the account's email to the new one while the
    /// account is active with the email and security stamp of the request and no
    /// other account of its realm uses the address; voids the account's unused
    /// password links (they went to the old address); appends `audit`. Anything but
    /// `Changed` changes nothing.
    async fn confirm_email_change(
        &self,
        hash: &TokenHash,
        now: UnixTime,
        audit: &NewAuditEvent,
    ) -> StoreResult<EmailChangeConfirmed>;
    /// Uses the setup link: creates the first platform admin with a password.
    async fn create_admin_with_setup_link(
        &self,
        hash: &TokenHash,
        account: &NewAccount,
        now: UnixTime,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;

    // Login flows
    async fn insert_flow(&self, id: &TokenHash, flow: &LoginFlow) -> StoreResult<()>;
    async fn get_flow(&self, id: &TokenHash) -> StoreResult<Option<LoginFlow>>;
    async fn delete_flow(&self, id: &TokenHash) -> StoreResult<()>;
    /// Saves a flow's new step; false if the flow is gone. The account and stamp are
    /// recorded the first time the flow names an account.
    async fn update_flow(&self, id: &TokenHash, flow: &LoginFlow) -> StoreResult<bool>;
    /// Counts one second-factor answer against a flow before it is checked, in one
    /// statement: the count including this answer, or `None` when the flow is gone or
    /// has had `max` answers already (so concurrent answers never exceed `max`).
    async fn reserve_flow_attempt(&self, id: &TokenHash, max: u32) -> StoreResult<Option<u32>>;
    /// Deletes the flows expired by `now` that had accepted a password, and returns
    /// those left at the second factor: each is taken by one caller only.
    async fn take_abandoned_sign_ins(&self, now: UnixTime) -> StoreResult<Vec<AbandonedSignIn>>;

    // Second-factor answers of a sign-in (`backend/answers.rs`): one read, one write.
    /// Everything an answer to the flow `flow` is judged against, read in one
    /// snapshot (the account's second-factor lockout is the throttle `lockout_prefix` +
    /// account id); `None` when the
    /// flow is gone.
    async fn load_answer(&self, flow: &TokenHash, lockout_prefix: &str) -> StoreResult<Option<AnswerContext>>;
    /// Settles a right answer in one transaction: re-checks that the flow is the
    /// account's under the same stamp with answers left, that no lockout or factor cap
    /// came into force, and uses the answer up (each guarded, so concurrent answers
    /// cannot both pass); then clears the lockout and failure counts, ends the flow
    /// with the session (or moves it to its next step) and appends the audit events.
    /// `Err(blocked)`, and nothing changed, when a guard failed.
    async fn accept_answer(&self, answer: &AcceptedAnswer<'_>) -> StoreResult<Result<(), AnswerBlocked>>;
    /// Counts a wrong answer in one transaction against the flow (ended at its last
    /// answer), the lockout, the factor's consecutive failures and the sent code, with
    /// its audit event (and the factor-locked event when it reaches the cap).
    /// `Err(blocked)`, and nothing counted, when a limit was already reached.
    async fn refuse_answer(&self, answer: &RefusedAnswer<'_>) -> StoreResult<Result<RefusalCounted, AnswerBlocked>>;

    // Second factors and policy
    /// Sets an organization's MFA policy; false if there is no such organization.
    async fn set_org_mfa(&self, id: &OrgId, mfa: &OrgMfa, audit: &NewAuditEvent) -> StoreResult<bool>;
    /// An organization's display name, accent colour and logo (without its bytes);
    /// `None` if there is no such organization.
    async fn get_org_branding(&self, id: &OrgId) -> StoreResult<Option<OrgBranding>>;
    /// Sets (or, with `None`, clears) the display name and accent colour; false if
    /// there is no such organization.
    async fn set_org_branding(
        &self,
        id: &OrgId,
        display_name: Option<&str>,
        accent_color: Option<&str>,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    /// Saves (or replaces) the organization's logo; false if there is no such organization.
    async fn put_org_logo(&self, id: &OrgId, logo: &OrgLogo, audit: &NewAuditEvent) -> StoreResult<bool>;
    /// Removes the organization's logo; false if it had none.
    async fn delete_org_logo(&self, id: &OrgId, audit: &NewAuditEvent) -> StoreResult<bool>;
    /// The organization's logo, bytes and all.
    async fn get_org_logo(&self, id: &OrgId) -> StoreResult<Option<OrgLogo>>;
    async fn set_mfa_override(&self, id: AccountId, value: MemberOverride, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn set_preferred_factor(&self, id: AccountId, kind: Option<FactorKind>) -> StoreResult<()>;
    async fn list_factors(&self, account: AccountId) -> StoreResult<Vec<Factor>>;
    /// Saves (or replaces) a factor being set up.
    async fn put_pending_factor(&self, pending: &PendingFactor) -> StoreResult<()>;
    async fn get_pending_factor(&self, account: AccountId, kind: FactorKind) -> StoreResult<Option<PendingFactor>>;
    /// Adds a confirmed factor, replacing an authenticator the account already had,
    /// and (when given) its new recovery code; clears the pending factor.
    async fn enroll_factor(
        &self,
        factor: &NewFactor,
        recovery_code_hash: Option<&str>,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    /// Records an accepted TOTP step. False when that step (or a later one) was
    /// already used: the code is a replay, even if another process accepted it.
    async fn use_totp_step(
        &self,
        factor_id: &str,
        step: i64,
        now: UnixTime,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    /// Removes one kind of factor, or every factor and the recovery code (`None`).
    async fn remove_factors(
        &self,
        account: AccountId,
        kind: Option<FactorKind>,
        audit: &NewAuditEvent,
    ) -> StoreResult<u64>;
    async fn recovery_code_hash(&self, account: AccountId) -> StoreResult<Option<String>>;

    // Passkeys
    /// Registers a passkey unless the account has `max` already (false);
    /// `Conflict("passkey")` if its credential id is registered already (to anyone).
    async fn insert_passkey(&self, passkey: &NewPasskey, audit: &NewAuditEvent, max: i64) -> StoreResult<bool>;
    /// Records an accepted passkey sign-in. False when the counter did not advance
    /// past the stored one although it must (a replay or a cloned credential), even
    /// if another process accepted the same assertion first.
    async fn use_passkey(&self, passkey_use: &PasskeyUse, audit: &NewAuditEvent) -> StoreResult<bool>;
    /// Renames one of the account's passkeys; false if it has no such passkey.
    async fn rename_passkey(
        &self,
        account: AccountId,
        factor_id: &str,
        name: &str,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    /// Removes one of the account's passkeys; false if it has no such passkey.
    async fn remove_passkey(&self, account: AccountId, factor_id: &str, audit: &NewAuditEvent) -> StoreResult<bool>;
    /// Saves a ceremony, replacing one under the same key.
    async fn put_ceremony(&self, ceremony: &Ceremony) -> StoreResult<()>;
    /// Takes a ceremony out: it can be answered once. `None` if there is none or it
    /// has expired.
    async fn take_ceremony(&self, key: &str, now: UnixTime) -> StoreResult<Option<Ceremony>>;

    // Codes sent by email or text message
    /// Stores a just-sent code, replacing any earlier one for the account and channel.
    async fn put_code(&self, code: &StoredCode, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn get_code(&self, account: AccountId, channel: FactorKind) -> StoreResult<Option<StoredCode>>;
    /// Counts one entry against the code atomically; the count including this entry,
    /// or `None` if there is no code.
    async fn count_code_attempt(&self, account: AccountId, channel: FactorKind) -> StoreResult<Option<u32>>;
    /// Uses the code up, only if it is still the one with `code_hash`. `used`: a
    /// second factor proved with it, recorded (the factor's last use and the audit
    /// event) in the same transaction.
    async fn consume_code(
        &self,
        account: AccountId,
        channel: FactorKind,
        code_hash: &str,
        used: Option<(UnixTime, &NewAuditEvent)>,
    ) -> StoreResult<bool>;
    async fn delete_code(&self, account: AccountId, channel: FactorKind) -> StoreResult<()>;
    /// Swaps the recovery code, only if the stored one is still `expected` (so a code is
    /// used once even under concurrent use). `expected = None` replaces unconditionally.
    async fn replace_recovery_code(
        &self,
        account: AccountId,
        expected: Option<&str>,
        new_hash: &str,
        now: UnixTime,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;

    // Sessions
    /// Starts a session and ends the login flow that earned it.
    async fn insert_session(
        &self,
        session: &NewSession,
        finished_flow: &TokenHash,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    async fn get_session(&self, token: &TokenHash) -> StoreResult<Option<SessionRecord>>;
    async fn touch_session(&self, token: &TokenHash, now: UnixTime) -> StoreResult<()>;
    /// Records that the session's holder just proved a second factor again, and what
    /// the session has proved since it began (`proved`, stored form).
    async fn mark_session_verified(&self, token: &TokenHash, now: UnixTime, proved: &str) -> StoreResult<()>;
    async fn delete_session(&self, token: &TokenHash, audit: Option<&NewAuditEvent>) -> StoreResult<()>;
    /// Every session of an account, newest first, idle or expired ones included (the
    /// caller knows the timeouts).
    async fn list_sessions(&self, account: AccountId) -> StoreResult<Vec<SessionSummary>>;
    /// Ends the account's session with the public id `sid`, with its audit event;
    /// false (and no event) if the account has no such session.
    async fn end_session_by_sid(&self, account: AccountId, sid: &str, audit: &NewAuditEvent) -> StoreResult<bool>;
    /// Ends every session of the account but `keep`, in one statement, with one audit
    /// event, and only while `keep` is still one of its sessions; the sessions ended
    /// (none, and no event, when there were none or `keep` had ended). Unlike
    /// `revoke_sessions`, the security stamp stays: `keep`'s sign-ins stay valid.
    async fn end_other_sessions(
        &self,
        account: AccountId,
        keep: &TokenHash,
        audit: &NewAuditEvent,
    ) -> StoreResult<Vec<SessionSummary>>;

    // Throttles
    async fn get_throttle(&self, key: &str) -> StoreResult<Option<ThrottleState>>;
    /// Counts one failure atomically (several server processes may count at once),
    /// with the audit event of the refusal if given, and returns the state after it.
    async fn record_failure(
        &self,
        key: &str,
        rule: ThrottleRule,
        now: UnixTime,
        audit: Option<&NewAuditEvent>,
    ) -> StoreResult<ThrottleState>;
    async fn clear_throttle(&self, key: &str) -> StoreResult<()>;
    /// Reserves one attempt against `key` before an answer is checked: counts it as a
    /// failure in one statement (a success then clears the key), unless the key is
    /// locked at `now` (`None`: refuse without checking). Concurrent attempts each take
    /// their own place, so no more are checked than the rule lets through.
    async fn reserve_attempt(&self, key: &str, rule: ThrottleRule, now: UnixTime)
    -> StoreResult<Option<ThrottleState>>;
    /// Counts one answer for one of the account's factors against its consecutive
    /// failures (reset only by a success), unless it has `cap` already (`None`).
    async fn reserve_factor_attempt(
        &self,
        account: AccountId,
        factor: FactorKind,
        cap: u32,
    ) -> StoreResult<Option<u32>>;
    /// The factors at their consecutive-failure count, with the count.
    async fn factor_failures(&self, account: AccountId) -> StoreResult<Vec<(FactorKind, u32)>>;
    /// A factor was proved: every consecutive-failure count of the account restarts.
    async fn clear_factor_failures(&self, account: AccountId) -> StoreResult<()>;
    /// An admin's Unlock: the account's consecutive-failure counts and its
    /// second-factor lockout (`throttle_key`) are cleared, with the audit event, in
    /// one transaction.
    async fn unlock_second_factor(
        &self,
        account: AccountId,
        throttle_key: &str,
        audit: &NewAuditEvent,
    ) -> StoreResult<()>;

    // Administration
    /// An organization's members, by email.
    async fn list_members(&self, org: &OrgId) -> StoreResult<Vec<Account>>;
    /// Deactivates (ending every session) or reactivates an account; false if unknown.
    async fn set_account_status(
        &self,
        id: AccountId,
        status: AccountStatus,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    /// Changes a member's role; false if unknown.
    async fn set_role(&self, id: AccountId, role: Role, audit: &NewAuditEvent) -> StoreResult<bool>;
    /// Ends every session of an account; the number ended.
    async fn revoke_sessions(&self, id: AccountId, audit: &NewAuditEvent) -> StoreResult<u64>;
    async fn count_sessions(&self, id: AccountId) -> StoreResult<i64>;
    /// Factors, recovery codes and session counts of every member of `org` at once.
    async fn org_member_security(&self, org: &OrgId) -> StoreResult<OrgMemberSecurity>;
    /// Grants (or renews) a one-time bypass; false if the account is unknown.
    async fn grant_bypass(&self, id: AccountId, bypass: &Bypass, audit: &NewAuditEvent) -> StoreResult<bool>;
    /// Uses a still-valid bypass, in one transaction: clears it and every factor (so
    /// the member sets up 2FA again) and, when given, starts the session that ends
    /// the login flow. False (and nothing changed) when no valid bypass was left.
    async fn use_bypass(
        &self,
        id: AccountId,
        now: UnixTime,
        audit: &NewAuditEvent,
        session: Option<(&NewSession, &TokenHash, &NewAuditEvent)>,
    ) -> StoreResult<bool>;

    // Audit
    /// Appends an event to its organization's hash chain.
    async fn append_audit(&self, event: &NewAuditEvent) -> StoreResult<()>;
    /// Events matching `filter`, newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEvent>>;
    /// Walks every hash chain and reports where one was edited, shortened or reordered.
    /// Walks every chain in one snapshot. `checkpoint` holds heads an earlier
    /// verification returned (empty if none was kept).
    async fn verify_audit(
        &self,
        checkpoint: &std::collections::BTreeMap<String, clinic_auth_core::audit::ChainHead>,
    ) -> StoreResult<AuditVerification>;

    // OpenID Connect
    async fn insert_oidc_client(&self, client: &OidcClient, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn get_oidc_client(&self, client_id: &str) -> StoreResult<Option<OidcClient>>;
    /// Every registered app, by name.
    async fn list_oidc_clients(&self) -> StoreResult<Vec<OidcClient>>;
    /// Adds a signing key. With `retire`, in the same transaction every other key that
    /// still signs stops signing at `retire.0` and stays published until `retire.1`.
    async fn add_signing_key(
        &self,
        key: &SigningKey,
        retire: Option<(UnixTime, UnixTime)>,
        audit: Option<&NewAuditEvent>,
    ) -> StoreResult<()>;
    /// The keys still published at `now` (current first, then by age, newest first).
    async fn list_signing_keys(&self, now: UnixTime) -> StoreResult<Vec<SigningKey>>;
    async fn put_authorization_request(&self, id: &TokenHash, request: &AuthorizationRequest) -> StoreResult<()>;
    async fn get_authorization_request(&self, id: &TokenHash) -> StoreResult<Option<AuthorizationRequest>>;
    async fn delete_authorization_request(&self, id: &TokenHash) -> StoreResult<()>;
    /// Records a grant and its code, with the audit event, in one transaction.
    async fn insert_oidc_grant(&self, grant: &OidcGrant, code: &OidcCode, audit: &NewAuditEvent) -> StoreResult<()>;
    /// Uses a code up: the first presentation gets `Fresh` (and marks it used, in one
    /// statement, so two racing presentations cannot both get it); later ones `Reused`.
    async fn take_oidc_code(&self, code_hash: &TokenHash, now: UnixTime) -> StoreResult<CodeTaken>;
    /// Stores tokens for a grant that is not revoked, with the audit event; false (and
    /// nothing stored) when the grant was revoked meanwhile.
    async fn issue_oidc_tokens(
        &self,
        grant_id: &str,
        tokens: &[NewOidcToken],
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    async fn get_oidc_token(&self, token_hash: &TokenHash) -> StoreResult<Option<OidcToken>>;
    /// Uses a refresh token up and stores its successors, in one transaction: the
    /// first presentation of a current refresh token of a live grant gets `Rotated`;
    /// one used before gets `Reused` (nothing stored).
    async fn rotate_refresh_token(
        &self,
        token_hash: &TokenHash,
        now: UnixTime,
        new_tokens: &[NewOidcToken],
        audit: &NewAuditEvent,
    ) -> StoreResult<RefreshTaken>;
    /// Ends a grant: marks it revoked and deletes its codes and tokens, with the audit
    /// event. False when it was already revoked (the event is not written).
    async fn revoke_oidc_grant(&self, grant_id: &str, now: UnixTime, audit: &NewAuditEvent) -> StoreResult<bool>;
    /// Deletes one access token (RFC 7009 revocation of an access token).
    async fn delete_oidc_token(&self, token_hash: &TokenHash, audit: &NewAuditEvent) -> StoreResult<bool>;
    /// Grants of an account (or, with `sid`, of one session) created since `since`,
    /// revoked or not, newest first: who to tell about a logout.
    async fn list_oidc_grants(
        &self,
        account: AccountId,
        sid: Option<&str>,
        since: UnixTime,
    ) -> StoreResult<Vec<OidcGrant>>;
    /// Queues back-channel logouts (one per app and session; a duplicate of one still
    /// queued is ignored).
    async fn enqueue_logouts(&self, logouts: &[PendingLogout]) -> StoreResult<()>;
    /// Logouts due at `now` (never tried or retry time reached), oldest first.
    async fn due_logouts(&self, now: UnixTime, limit: u32) -> StoreResult<Vec<PendingLogout>>;
    /// Takes a due logout for one delivery attempt: moves its next attempt to
    /// `lease_until` so that no other server instance sends it meanwhile. False when
    /// it is no longer due (another instance took it, or it is finished).
    async fn claim_logout(&self, id: &str, now: UnixTime, lease_until: UnixTime) -> StoreResult<bool>;
    /// Records an attempt's outcome (attempts + 1) with its audit event.
    async fn finish_logout(
        &self,
        id: &str,
        outcome: LogoutDelivery,
        now: UnixTime,
        audit: Option<&NewAuditEvent>,
    ) -> StoreResult<()>;

    /// Deletes expired login flows, password links and sessions idle since `idle_cutoff`;
    /// also expired authorization requests, codes and tokens, and logouts delivered or
    /// given up more than a day ago.
    async fn purge_expired(&self, now: UnixTime, idle_cutoff: UnixTime) -> StoreResult<u64>;

    // Operations (`backend/ops.rs`).
    /// The connection pool's connections: open, idle among them, and the most it opens.
    async fn pool_usage(&self) -> StoreResult<PoolUsage>;
    /// Sessions active since `idle_cutoff` and created since `absolute_cutoff`.
    async fn count_live_sessions(&self, idle_cutoff: UnixTime, absolute_cutoff: UnixTime) -> StoreResult<u64>;
    /// Versions of this build's migrations the database has not applied.
    async fn pending_migrations(&self) -> StoreResult<Vec<i64>>;
    /// SQLite: a consistent copy of the database, written to `path` (which must not
    /// exist) while other connections go on writing. PostgreSQL: `Unsupported`.
    async fn sqlite_backup_into(&self, path: &str) -> StoreResult<()>;
    /// Closes every connection (SQLite then folds its write-ahead log into the file).
    async fn close(&self) -> StoreResult<()>;
}

/// How long appending one audit event to its chain takes (the chain head's read and
/// the insert, inside the change's transaction): a histogram, seconds.
pub const AUDIT_APPEND_SECONDS: &str = "clinic_auth_audit_append_seconds";

/// How busy a store's connection pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// Opens the store a database URL names: `sqlite:PATH` (created if missing) or
/// `postgres://…`.
/// Whether `database_url` names a backend this store has (before any key or
/// connection is needed).
pub fn check_url(database_url: &str) -> StoreResult<()> {
    let known = ["sqlite:", "postgres:", "postgresql:"];
    if known.iter().any(|p| database_url.starts_with(p)) { Ok(()) } else { Err(StoreError::UnsupportedUrl) }
}

pub async fn connect(database_url: &str, audit_keys: ChainKeys) -> StoreResult<Arc<dyn Store>> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(database_url, audit_keys).await?))
    } else if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        Ok(Arc::new(PgStore::connect(database_url, audit_keys).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}
