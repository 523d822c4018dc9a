//! The `Store` implementations of both stores, written by one small macro: each
//! method forwards, with its arguments, to `Db`'s method of the same name in the
//! module of its aggregate, where the SQL and what it guarantees are. With the
//! `testkit` feature the same list writes `RecordingStore`'s, which notes each call
//! and forwards it to the store it wraps.

use std::collections::BTreeMap;

use async_trait::async_trait;
use clinic_auth_core::audit::ChainHead;
use clinic_auth_core::{
    AccountId, AccountStatus, Email, FactorKind, LoginFlow, MemberOverride, OrgId, OrgMfa, Realm, Role, ThrottleRule,
    ThrottleState, TokenHash, UnixTime,
};

use super::{PgStore, SqliteStore};
use crate::{
    AbandonedSignIn, AcceptedAnswer, Account, AnswerBlocked, AnswerContext, AuditEvent, AuditFilter, AuditVerification,
    AuthorizationRequest, Bypass, Ceremony, CodeTaken, EmailChange, EmailChangeConfirmed, Factor, LogoutDelivery,
    NewAccount, NewAuditEvent, NewEmailChange, NewFactor, NewOidcToken, NewPasskey, NewPasswordLink, NewSession,
    OidcClient, OidcCode, OidcGrant, OidcToken, Org, OrgBranding, OrgLogo, OrgMemberSecurity, PasskeyUse, PasswordLink,
    PendingFactor, PendingLogout, PoolUsage, RefreshTaken, RefusalCounted, RefusedAnswer, SessionRecord,
    SessionSummary, SigningKey, Store, StoreResult, StoredCode,
};

/// `impl Store` for each named store (a struct with a `db: Db` field), from the
/// trait's async methods (signatures without `&self`).
macro_rules! forward {
    ($($store:ident),+ ; recorded by $recorder:path => $methods:tt) => {
        $(forward!(@impl $store $methods);)+
        forward!(@record $recorder $methods);
    };
    (@impl $store:ident { $(async fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty;)* }) => {
        #[async_trait]
        impl Store for $store {
            fn backend_name(&self) -> &'static str {
                self.db.backend_name()
            }
            $(
                async fn $name(&self, $($arg: $ty),*) -> $ret {
                    self.db.$name($($arg),*).await
                }
            )*
        }
    };
    (@record $store:path { $(async fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty;)* }) => {
        #[cfg(feature = "testkit")]
        #[async_trait]
        impl Store for $store {
            fn backend_name(&self) -> &'static str {
                self.inner().backend_name()
            }
            $(
                async fn $name(&self, $($arg: $ty),*) -> $ret {
                    self.record(stringify!($name));
                    self.inner().$name($($arg),*).await
                }
            )*
        }
    };
}

forward! { SqliteStore, PgStore; recorded by crate::testkit::RecordingStore => {
    async fn migrate() -> StoreResult<()>;
    async fn ping() -> StoreResult<()>;
    async fn insert_org(org: &Org, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn get_org(id: &OrgId) -> StoreResult<Option<Org>>;
    async fn list_orgs() -> StoreResult<Vec<Org>>;
    async fn insert_account(
        account: &NewAccount, link: Option<&NewPasswordLink>, audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    async fn get_account(id: AccountId) -> StoreResult<Option<Account>>;
    async fn find_account(realm: Realm, email: &Email) -> StoreResult<Option<Account>>;
    async fn count_platform_admins() -> StoreResult<i64>;
    async fn rehash_password(id: AccountId, password_hash: &str, now: UnixTime) -> StoreResult<()>;
    async fn insert_password_link(link: &NewPasswordLink, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn reissue_invitation(link: &NewPasswordLink, audit: &NewAuditEvent) -> StoreResult<bool>;
    async fn replace_setup_link(link: &NewPasswordLink, now: UnixTime) -> StoreResult<()>;
    async fn get_password_link(hash: &TokenHash) -> StoreResult<Option<PasswordLink>>;
    async fn set_password_with_link(
        hash: &TokenHash, account: AccountId, password_hash: &str, now: UnixTime, audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    async fn change_password(
        account: AccountId, password_hash: &str, keep_session: &TokenHash, audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    async fn insert_email_change(change: &NewEmailChange, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn get_email_change(hash: &TokenHash) -> StoreResult<Option<EmailChange>>;
    async fn pending_email_change(account: AccountId, now: UnixTime) -> StoreResult<Option<EmailChange>>;
    async fn cancel_email_change(account: AccountId, audit: &NewAuditEvent) -> StoreResult<bool>;
    async fn confirm_email_change(
        hash: &TokenHash, now: UnixTime, audit: &NewAuditEvent,
    ) -> StoreResult<EmailChangeConfirmed>;
    async fn create_admin_with_setup_link(
        hash: &TokenHash, account: &NewAccount, now: UnixTime, audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    async fn insert_flow(id: &TokenHash, flow: &LoginFlow) -> StoreResult<()>;
    async fn get_flow(id: &TokenHash) -> StoreResult<Option<LoginFlow>>;
    async fn delete_flow(id: &TokenHash) -> StoreResult<()>;
    async fn update_flow(id: &TokenHash, flow: &LoginFlow) -> StoreResult<bool>;
    async fn reserve_flow_attempt(id: &TokenHash, max: u32) -> StoreResult<Option<u32>>;
    async fn take_abandoned_sign_ins(now: UnixTime) -> StoreResult<Vec<AbandonedSignIn>>;
    async fn load_answer(flow: &TokenHash, lockout_prefix: &str) -> StoreResult<Option<AnswerContext>>;
    async fn accept_answer(answer: &AcceptedAnswer<'_>) -> StoreResult<Result<(), AnswerBlocked>>;
    async fn refuse_answer(answer: &RefusedAnswer<'_>) -> StoreResult<Result<RefusalCounted, AnswerBlocked>>;
    async fn set_org_mfa(id: &OrgId, mfa: &OrgMfa, audit: &NewAuditEvent) -> StoreResult<bool>;
    async fn get_org_branding(id: &OrgId) -> StoreResult<Option<OrgBranding>>;
    async fn set_org_branding(
        id: &OrgId,
        display_name: Option<&str>,
        accent_color: Option<&str>,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    async fn put_org_logo(id: &OrgId, logo: &OrgLogo, audit: &NewAuditEvent) -> StoreResult<bool>;
    async fn delete_org_logo(id: &OrgId, audit: &NewAuditEvent) -> StoreResult<bool>;
    async fn get_org_logo(id: &OrgId) -> StoreResult<Option<OrgLogo>>;
    async fn set_mfa_override(id: AccountId, value: MemberOverride, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn set_preferred_factor(id: AccountId, kind: Option<FactorKind>) -> StoreResult<()>;
    async fn list_factors(account: AccountId) -> StoreResult<Vec<Factor>>;
    async fn put_pending_factor(pending: &PendingFactor) -> StoreResult<()>;
    async fn get_pending_factor(account: AccountId, kind: FactorKind) -> StoreResult<Option<PendingFactor>>;
    async fn enroll_factor(
        factor: &NewFactor, recovery_code_hash: Option<&str>, audit: &NewAuditEvent,
    ) -> StoreResult<()>;
    async fn use_totp_step(factor_id: &str, step: i64, now: UnixTime, audit: &NewAuditEvent) -> StoreResult<bool>;
    async fn remove_factors(account: AccountId, kind: Option<FactorKind>, audit: &NewAuditEvent) -> StoreResult<u64>;
    async fn recovery_code_hash(account: AccountId) -> StoreResult<Option<String>>;
    async fn insert_passkey(passkey: &NewPasskey, audit: &NewAuditEvent, max: i64) -> StoreResult<bool>;
    async fn use_passkey(passkey_use: &PasskeyUse, audit: &NewAuditEvent) -> StoreResult<bool>;
    async fn rename_passkey(
        account: AccountId, factor_id: &str, name: &str, audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    async fn remove_passkey(account: AccountId, factor_id: &str, audit: &NewAuditEvent) -> StoreResult<bool>;
    async fn put_ceremony(ceremony: &Ceremony) -> StoreResult<()>;
    async fn take_ceremony(key: &str, now: UnixTime) -> StoreResult<Option<Ceremony>>;
    async fn put_code(code: &StoredCode, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn get_code(account: AccountId, channel: FactorKind) -> StoreResult<Option<StoredCode>>;
    async fn count_code_attempt(account: AccountId, channel: FactorKind) -> StoreResult<Option<u32>>;
    async fn consume_code(
        account: AccountId, channel: FactorKind, code_hash: &str, used: Option<(UnixTime, &NewAuditEvent)>,
    ) -> StoreResult<bool>;
    async fn delete_code(account: AccountId, channel: FactorKind) -> StoreResult<()>;
    async fn replace_recovery_code(
        account: AccountId, expected: Option<&str>, new_hash: &str, now: UnixTime, audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    async fn insert_session(session: &NewSession, finished_flow: &TokenHash, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn get_session(token: &TokenHash) -> StoreResult<Option<SessionRecord>>;
    async fn touch_session(token: &TokenHash, now: UnixTime) -> StoreResult<()>;
    async fn mark_session_verified(token: &TokenHash, now: UnixTime, proved: &str) -> StoreResult<()>;
    async fn delete_session(token: &TokenHash, audit: Option<&NewAuditEvent>) -> StoreResult<()>;
    async fn list_sessions(account: AccountId) -> StoreResult<Vec<SessionSummary>>;
    async fn end_session_by_sid(account: AccountId, sid: &str, audit: &NewAuditEvent) -> StoreResult<bool>;
    async fn end_other_sessions(
        account: AccountId, keep: &TokenHash, audit: &NewAuditEvent,
    ) -> StoreResult<Vec<SessionSummary>>;
    async fn get_throttle(key: &str) -> StoreResult<Option<ThrottleState>>;
    async fn record_failure(
        key: &str, rule: ThrottleRule, now: UnixTime, audit: Option<&NewAuditEvent>,
    ) -> StoreResult<ThrottleState>;
    async fn clear_throttle(key: &str) -> StoreResult<()>;
    async fn reserve_attempt(key: &str, rule: ThrottleRule, now: UnixTime) -> StoreResult<Option<ThrottleState>>;
    async fn reserve_factor_attempt(account: AccountId, factor: FactorKind, cap: u32) -> StoreResult<Option<u32>>;
    async fn factor_failures(account: AccountId) -> StoreResult<Vec<(FactorKind, u32)>>;
    async fn clear_factor_failures(account: AccountId) -> StoreResult<()>;
    async fn unlock_second_factor(account: AccountId, throttle_key: &str, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn list_members(org: &OrgId) -> StoreResult<Vec<Account>>;
    async fn set_account_status(id: AccountId, status: AccountStatus, audit: &NewAuditEvent) -> StoreResult<bool>;
    async fn set_role(id: AccountId, role: Role, audit: &NewAuditEvent) -> StoreResult<bool>;
    async fn revoke_sessions(id: AccountId, audit: &NewAuditEvent) -> StoreResult<u64>;
    async fn count_sessions(id: AccountId) -> StoreResult<i64>;
    async fn org_member_security(org: &OrgId) -> StoreResult<OrgMemberSecurity>;
    async fn grant_bypass(id: AccountId, bypass: &Bypass, audit: &NewAuditEvent) -> StoreResult<bool>;
    async fn use_bypass(
        id: AccountId, now: UnixTime, audit: &NewAuditEvent, session: Option<(&NewSession, &TokenHash, &NewAuditEvent)>,
    ) -> StoreResult<bool>;
    async fn append_audit(event: &NewAuditEvent) -> StoreResult<()>;
    async fn list_audit(filter: &AuditFilter) -> StoreResult<Vec<AuditEvent>>;
    async fn verify_audit(checkpoint: &BTreeMap<String, ChainHead>) -> StoreResult<AuditVerification>;
    async fn insert_oidc_client(client: &OidcClient, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn get_oidc_client(client_id: &str) -> StoreResult<Option<OidcClient>>;
    async fn list_oidc_clients() -> StoreResult<Vec<OidcClient>>;
    async fn add_signing_key(
        key: &SigningKey, retire: Option<(UnixTime, UnixTime)>, audit: Option<&NewAuditEvent>,
    ) -> StoreResult<()>;
    async fn list_signing_keys(now: UnixTime) -> StoreResult<Vec<SigningKey>>;
    async fn put_authorization_request(id: &TokenHash, request: &AuthorizationRequest) -> StoreResult<()>;
    async fn get_authorization_request(id: &TokenHash) -> StoreResult<Option<AuthorizationRequest>>;
    async fn delete_authorization_request(id: &TokenHash) -> StoreResult<()>;
    async fn insert_oidc_grant(grant: &OidcGrant, code: &OidcCode, audit: &NewAuditEvent) -> StoreResult<()>;
    async fn take_oidc_code(code_hash: &TokenHash, now: UnixTime) -> StoreResult<CodeTaken>;
    async fn issue_oidc_tokens(
        grant_id: &str, tokens: &[NewOidcToken], audit: &NewAuditEvent,
    ) -> StoreResult<bool>;
    async fn get_oidc_token(token_hash: &TokenHash) -> StoreResult<Option<OidcToken>>;
    async fn rotate_refresh_token(
        token_hash: &TokenHash, now: UnixTime, new_tokens: &[NewOidcToken], audit: &NewAuditEvent,
    ) -> StoreResult<RefreshTaken>;
    async fn revoke_oidc_grant(grant_id: &str, now: UnixTime, audit: &NewAuditEvent) -> StoreResult<bool>;
    async fn delete_oidc_token(token_hash: &TokenHash, audit: &NewAuditEvent) -> StoreResult<bool>;
    async fn list_oidc_grants(account: AccountId, sid: Option<&str>, since: UnixTime) -> StoreResult<Vec<OidcGrant>>;
    async fn enqueue_logouts(logouts: &[PendingLogout]) -> StoreResult<()>;
    async fn due_logouts(now: UnixTime, limit: u32) -> StoreResult<Vec<PendingLogout>>;
    async fn claim_logout(id: &str, now: UnixTime, lease_until: UnixTime) -> StoreResult<bool>;
    async fn finish_logout(
        id: &str, outcome: LogoutDelivery, now: UnixTime, audit: Option<&NewAuditEvent>,
    ) -> StoreResult<()>;
    async fn purge_expired(now: UnixTime, idle_cutoff: UnixTime) -> StoreResult<u64>;
    async fn pool_usage() -> StoreResult<PoolUsage>;
    async fn count_live_sessions(idle_cutoff: UnixTime, absolute_cutoff: UnixTime) -> StoreResult<u64>;
    async fn pending_migrations() -> StoreResult<Vec<i64>>;
    async fn sqlite_backup_into(path: &str) -> StoreResult<()>;
    async fn close() -> StoreResult<()>;
}}
