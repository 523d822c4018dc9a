//! What the store reads and writes.

use clinic_auth_core::{
    AccountId, AccountKind, AccountStatus, Email, FactorKind, FlowStep, LoginFlow, MemberOverride, OrgId, OrgKind,
    OrgMfa, Realm, Role, ThrottleRule, ThrottleState, TokenHash, UnixTime,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub kind: OrgKind,
    pub created_at: UnixTime,
    /// The organization's MFA policy (platform support enables; admins set mode and methods).
    pub mfa: OrgMfa,
}

/// An organization's branding as stored: each part `None` until set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrgBranding {
    /// The name its pages and messages show instead of the organization's name.
    pub display_name: Option<String>,
    /// `#rrggbb`, checked for contrast before it was stored.
    pub accent_color: Option<String>,
    /// The logo's content type, hash and time, when there is one (not its bytes).
    pub logo: Option<LogoInfo>,
}

impl OrgBranding {
    /// Whether any part is set.
    pub fn is_set(&self) -> bool {
        self.display_name.is_some() || self.accent_color.is_some() || self.logo.is_some()
    }
}

/// What is known about a stored logo without reading its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoInfo {
    pub content_type: String,
    /// SHA-256 of the bytes, hex: the ETag, and a version for URLs.
    pub sha256: String,
    pub updated_at: UnixTime,
}

/// A logo, bytes and all.
#[derive(Clone, PartialEq, Eq)]
pub struct OrgLogo {
    pub content_type: String,
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, hex.
    pub sha256: String,
    pub updated_at: UnixTime,
}

impl std::fmt::Debug for OrgLogo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgLogo")
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .field("sha256", &self.sha256)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub kind: AccountKind,
    pub email: Email,
    pub org_id: Option<OrgId>,
    pub role: Option<Role>,
    pub status: AccountStatus,
    /// PHC string of the Argon2id hash; `None` until the invitation is accepted.
    pub password_hash: Option<String>,
    pub created_at: UnixTime,
    /// When the member set their first password (accepted the invitation); `None` for
    /// accounts created with a password (they joined at `created_at`) and for those
    /// who have not accepted yet.
    pub joined_at: Option<UnixTime>,
    pub mfa_override: MemberOverride,
    pub preferred_factor: Option<FactorKind>,
    /// A one-time bypass ("Disable two-factor authentication"), while not used.
    pub bypass: Option<Bypass>,
    /// Moves on at every change to the account's security state; a sign-in started
    /// under another stamp is dead.
    pub security_stamp: i64,
}

/// An admin-granted permission to sign in once without a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bypass {
    pub granted_at: UnixTime,
    pub expires_at: UnixTime,
    /// `None` when granted from the command line.
    pub granted_by: Option<AccountId>,
}

impl Account {
    pub fn realm(&self) -> Realm {
        self.kind.realm()
    }

    /// When the member joined their organization: accepted the invitation, or else
    /// was created (with a password). The grace period of Mandatory 2FA counts from
    /// here for members who join after it was turned on.
    pub fn joined(&self) -> UnixTime {
        self.joined_at.unwrap_or(self.created_at)
    }
}

#[derive(Debug, Clone)]
pub struct NewAccount {
    pub id: AccountId,
    pub kind: AccountKind,
    pub email: Email,
    pub org_id: Option<OrgId>,
    pub role: Option<Role>,
    pub password_hash: Option<String>,
    pub now: UnixTime,
}

/// Why a password link exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Creates the first platform admin.
    Setup,
    Invitation,
    PasswordReset,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Setup => "setup",
            LinkPurpose::Invitation => "invitation",
            LinkPurpose::PasswordReset => "password_reset",
        }
    }
    pub fn parse(s: &str) -> Option<LinkPurpose> {
        match s {
            "setup" => Some(LinkPurpose::Setup),
            "invitation" => Some(LinkPurpose::Invitation),
            "password_reset" => Some(LinkPurpose::PasswordReset),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewPasswordLink {
    pub token_hash: TokenHash,
    pub purpose: LinkPurpose,
    pub account_id: Option<AccountId>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordLink {
    pub purpose: LinkPurpose,
    pub account_id: Option<AccountId>,
    pub expires_at: UnixTime,
    pub used_at: Option<UnixTime>,
}

impl PasswordLink {
    pub fn is_usable(&self, now: UnixTime) -> bool {
        self.used_at.is_none() && now < self.expires_at
    }
}

/// A sign-in that got past the password and expired before its second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbandonedSignIn {
    pub account_id: AccountId,
    pub started_at: UnixTime,
    /// Where the password was accepted from, when known.
    pub client_ip: Option<String>,
}

/// "Change email": a change of an account's sign-in email, asked for by its holder and
/// waiting for the link sent to the new address.
#[derive(Debug, Clone)]
pub struct NewEmailChange {
    pub token_hash: TokenHash,
    pub account_id: AccountId,
    pub new_email: Email,
    /// The account's email when the change was asked for; the change applies only
    /// while it still is.
    pub old_email: Email,
    /// The account's security stamp when the change was asked for; the change
    /// applies only while it still is.
    pub stamp: i64,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChange {
    pub account_id: AccountId,
    pub new_email: Email,
    pub old_email: Email,
    pub stamp: i64,
    pub created_at: UnixTime,
    /// Moved to the moment a newer request or "Cancel" ended it.
    pub expires_at: UnixTime,
    pub used_at: Option<UnixTime>,
}

impl EmailChange {
    pub fn is_usable(&self, now: UnixTime) -> bool {
        self.used_at.is_none() && now < self.expires_at
    }
}

/// What confirming a change of email did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailChangeConfirmed {
    /// The account's email is the new one; the link is used.
    Changed,
    /// No such link, or it was used, ended or expired (or another confirm won).
    Unusable,
    /// The account changed since the request (its email, its security stamp, or it
    /// was deactivated): nothing changed, and the link stays unused.
    AccountChanged,
    /// Another account of the realm uses the new address: nothing changed.
    AddressTaken,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: TokenHash,
    pub account_id: AccountId,
    pub csrf_token: String,
    pub now: UnixTime,
    pub client: ClientInfo,
    /// Whether a second factor was proved to earn this session.
    pub second_factor: bool,
    /// The session's public id, for apps (`sid` claim, back-channel logout).
    pub sid: String,
    /// What the sign-in proved (`clinic_auth_core::oidc::Proved`, stored form).
    pub proved: String,
    /// The account's security stamp the sign-in vouches for: the session starts only
    /// if it is still current.
    pub stamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub account_id: AccountId,
    pub csrf_token: String,
    pub created_at: UnixTime,
    pub last_seen_at: UnixTime,
    /// When a second factor was last proved in this session.
    pub verified_at: Option<UnixTime>,
    /// The session's public id, for apps (`sid` claim, back-channel logout).
    pub sid: String,
    /// Every method proved in this session, at sign-in or since (stored form of
    /// `clinic_auth_core::oidc::Proved`).
    pub proved: String,
}

/// A session as its owner sees it in their list of sessions: never its token or
/// anti-forgery token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The session's public id (the `sid` apps see).
    pub sid: String,
    pub created_at: UnixTime,
    pub last_seen_at: UnixTime,
    /// The address and User-Agent the session was signed in from, as stored.
    pub client: ClientInfo,
}

/// Where a request came from, for audit events and sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

/// An audit event to append. `detail` is a JSON object and must never hold a secret.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub at: UnixTime,
    pub kind: &'static str,
    pub outcome: &'static str,
    pub org_id: Option<OrgId>,
    pub actor_id: Option<AccountId>,
    pub subject_id: Option<AccountId>,
    pub client: ClientInfo,
    pub detail: String,
    /// The sign-in or session the change is made through, which survives the change
    /// when it ends the account's other sign-ins and sessions.
    pub via: Via,
}

/// The sign-in (login flow) or session a change to an account is made through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Via {
    pub flow: Option<TokenHash>,
    pub session: Option<TokenHash>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: i64,
    pub at: UnixTime,
    pub kind: String,
    pub outcome: String,
    pub org_id: Option<String>,
    pub actor_id: Option<String>,
    pub subject_id: Option<String>,
    pub client_ip: String,
    pub user_agent: String,
    pub detail: String,
    /// The event's place in its organization's hash chain.
    pub seq: Option<i64>,
    pub hash: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub org_id: Option<OrgId>,
    pub subject_id: Option<AccountId>,
    pub kind: Option<String>,
    /// Events where this account is the actor or the subject.
    pub member: Option<AccountId>,
    /// From this time on (inclusive).
    pub since: Option<UnixTime>,
    /// Before this time (exclusive).
    pub until: Option<UnixTime>,
    /// Only events older than this id (the next page, newest first).
    pub before_id: Option<i64>,
    /// Only events newer than this id, and the page oldest first (an export's walk,
    /// from `Some(0)`); takes the place of `before_id`.
    pub after_id: Option<i64>,
    pub limit: i64,
}

/// What checking every audit chain found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditVerification {
    pub chains: usize,
    pub events: i64,
    /// The first break of each broken chain; empty when nothing was tampered with.
    pub breaks: Vec<clinic_auth_core::audit::ChainBreak>,
    /// Each intact chain's last event: a checkpoint to keep outside the database and
    /// give to the next verification, which then also notices a chain cut back.
    pub heads: std::collections::BTreeMap<String, clinic_auth_core::audit::ChainHead>,
}

/// A secret sealed with the server's AEAD key: only the web layer can open it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    pub key_version: i64,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret(key_version={})", self.key_version)
    }
}

/// An enrolled second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factor {
    pub id: String,
    pub account_id: AccountId,
    pub kind: FactorKind,
    pub label: String,
    pub secret: Option<SealedSecret>,
    /// Authenticator: the last time step accepted (codes of that step or older are refused).
    pub last_used_step: Option<i64>,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
    /// Email and SMS factors: the address or E.164 number codes go to.
    pub target: Option<String>,
    /// Passkeys: what the server checks at each use.
    pub passkey: Option<PasskeyState>,
}

/// The parts of a passkey kept in the clear, beside its sealed credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyState {
    /// The WebAuthn credential id, base64url.
    pub credential_id: String,
    pub sign_count: u32,
    /// The credential may be synced to other devices (a "synced passkey").
    pub backup_eligible: bool,
    /// The credential is synced now.
    pub backup_state: bool,
}

/// A passkey as it is registered: the factor row and its clear parts.
#[derive(Debug, Clone)]
pub struct NewPasskey {
    pub factor: NewFactor,
    pub state: PasskeyState,
}

/// An accepted passkey sign-in: the counter and flags it reported, and the
/// credential re-sealed with them.
#[derive(Debug, Clone)]
pub struct PasskeyUse {
    pub account_id: AccountId,
    pub factor_id: String,
    pub sign_count: u32,
    /// Whether the counter must advance (a device-bound credential that keeps one).
    pub counter_must_advance: bool,
    pub backup_state: bool,
    pub sealed: SealedSecret,
    pub now: UnixTime,
}

/// A WebAuthn ceremony waiting for its response.
#[derive(Debug, Clone)]
pub struct Ceremony {
    pub key: String,
    pub account_id: AccountId,
    /// The library's serialized ceremony state (challenge, allowed credentials).
    pub state: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

#[derive(Debug, Clone)]
pub struct NewFactor {
    pub id: String,
    pub account_id: AccountId,
    pub kind: FactorKind,
    pub label: String,
    pub secret: Option<SealedSecret>,
    /// The step of the code that confirmed the enrollment: it cannot be used again.
    pub last_used_step: Option<i64>,
    pub now: UnixTime,
    pub target: Option<String>,
}

/// A factor being set up: its secret exists, its first correct code has not come yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFactor {
    pub account_id: AccountId,
    pub kind: FactorKind,
    pub secret: SealedSecret,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// The hash of the sign-in's or session's token that is setting it up.
    pub bound_to: String,
}

/// A code sent by email or text message, as stored (the code itself only as a MAC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    pub account_id: AccountId,
    pub channel: FactorKind,
    /// `sign_in`, `enroll` or `step_up`: a code is good only for what it was sent for.
    pub purpose: String,
    pub target: String,
    pub code_hash: String,
    pub challenge: clinic_auth_core::CodeChallenge,
    /// The hash of the sign-in's or session's token the code was sent for: it is good
    /// for that one only.
    pub bound_to: String,
}

/// What the Users page shows about every member of an organization, read in a few
/// queries rather than a few per member.
#[derive(Debug, Clone, Default)]
pub struct OrgMemberSecurity {
    /// Every member's factors, oldest first.
    pub factors: Vec<Factor>,
    /// Members who hold a recovery code.
    pub with_recovery_code: Vec<AccountId>,
    /// Sessions per member (members without any are left out).
    pub sessions: Vec<(AccountId, i64)>,
}

// ----- OpenID Connect -----

/// An app registered to sign members in with OpenID Connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcClient {
    pub client_id: String,
    pub name: String,
    /// SHA-256 (hex) of the client secret of a confidential client; `None`: public.
    pub secret_hash: Option<String>,
    /// The one organization whose accounts it admits; `None`: any (a platform-wide app).
    pub org_id: Option<OrgId>,
    /// Whose sign-in it uses: staff (members) or patients.
    pub realm: Realm,
    /// Every sign-in through it proves a second factor, whatever the clinic's policy.
    pub require_mfa: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    /// How its ID tokens are signed: `RS256` (the default) or `ES256`.
    pub id_token_alg: String,
    pub created_at: UnixTime,
}

/// A key that signs ID tokens and logout tokens. The private key is sealed by the
/// keyring; the public key is a JWK (JSON text) with its `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    /// `RS256` or `ES256`.
    pub alg: String,
    pub private_sealed: String,
    pub public_jwk: String,
    pub created_at: UnixTime,
    /// No longer signs from this time; `None`: current.
    pub retired_at: Option<UnixTime>,
    /// Dropped from the JWKS after this time (tokens it signed have expired).
    pub publish_until: Option<UnixTime>,
}

/// An authorization request waiting for its sign-in; `params` is the app layer's
/// JSON form of the checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub params: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// What one sign-in granted one app: the code, its tokens and their refreshes all
/// belong to it, and ending it ends them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcGrant {
    pub id: String,
    pub client_id: String,
    pub account_id: AccountId,
    /// The browser session's public id (`sid` claim).
    pub sid: String,
    /// The account's security stamp at the sign-in: any later change ends the grant.
    pub stamp: i64,
    pub scope: String,
    pub nonce: Option<String>,
    pub auth_time: UnixTime,
    /// What the sign-in proved (`clinic_auth_core::oidc::Proved`, stored form).
    pub proved: String,
    pub created_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
}

/// An authorization code, stored by hash, for one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcCode {
    pub code_hash: TokenHash,
    pub grant_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub expires_at: UnixTime,
}

/// What presenting a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeTaken {
    /// First use: it is now used up.
    Fresh {
        code: OidcCode,
        grant: OidcGrant,
    },
    /// Used before: a replay (the caller ends the grant).
    Reused {
        grant: OidcGrant,
    },
    Unknown,
}

/// An access token or a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OidcTokenKind {
    Access,
    Refresh,
}

impl OidcTokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OidcTokenKind::Access => "access",
            OidcTokenKind::Refresh => "refresh",
        }
    }

    pub fn parse(s: &str) -> Option<OidcTokenKind> {
        match s {
            "access" => Some(OidcTokenKind::Access),
            "refresh" => Some(OidcTokenKind::Refresh),
            _ => None,
        }
    }
}

/// A token to store (by hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOidcToken {
    pub token_hash: TokenHash,
    pub kind: OidcTokenKind,
    pub expires_at: UnixTime,
}

/// A stored token with its grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcToken {
    pub kind: OidcTokenKind,
    pub expires_at: UnixTime,
    /// A refresh token that was rotated: presenting it again is a replay.
    pub used_at: Option<UnixTime>,
    pub grant: OidcGrant,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshTaken {
    /// It was current and is now used up; the new tokens are stored.
    Rotated {
        grant: OidcGrant,
    },
    /// It was used before: a replay (the caller ends the grant).
    Reused {
        grant: OidcGrant,
    },
    Unknown,
}

/// A back-channel logout to deliver to one app for one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogout {
    pub id: String,
    pub client_id: String,
    pub account_id: AccountId,
    pub sid: String,
    pub attempts: u32,
    pub created_at: UnixTime,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutDelivery {
    Delivered,
    /// Failed; try again at this time.
    RetryAt(UnixTime),
    /// Failed for the last time.
    GaveUp,
}

/// Everything a second-factor answer of a sign-in is judged against, read in one
/// snapshot: the flow, and (once the flow names an account) the account, its
/// organization, factors, recovery code, sent codes, lockout and consecutive failures.
#[derive(Debug, Clone)]
pub struct AnswerContext {
    pub flow: LoginFlow,
    /// The answers the flow has had.
    pub flow_attempts: u32,
    pub account: Option<Account>,
    pub org: Option<Org>,
    pub factors: Vec<Factor>,
    pub recovery_code_hash: Option<String>,
    /// The account's codes sent by email or text message, one per channel.
    pub codes: Vec<StoredCode>,
    /// The account's second-factor lockout (`throttle_key`).
    pub throttle: Option<ThrottleState>,
    pub factor_failures: Vec<(FactorKind, u32)>,
}

/// What a right answer uses up, guarded so that it is used once.
#[derive(Debug, Clone, Copy)]
pub enum Consume<'a> {
    /// The authenticator's time step: only a later step than the last one used.
    TotpStep { factor_id: &'a str, step: i64 },
    /// The recovery code, swapped for a new one only while it is still `expected`.
    RecoveryCode { expected: &'a str, new_hash: &'a str },
    /// A sent code, deleted only while it is still the one with `code_hash`, unexpired
    /// and with entries left (`max_attempts`).
    SentCode { channel: FactorKind, code_hash: &'a str, max_attempts: u32 },
}

/// Where a right answer leads: a session, or (when the factor is one the
/// organization no longer allows) the flow's next step.
#[derive(Debug, Clone, Copy)]
pub enum AfterAnswer<'a> {
    Session(&'a NewSession),
    NextStep(&'a FlowStep),
}

/// The limits an answer is checked within, and where they are counted.
#[derive(Debug, Clone, Copy)]
pub struct AnswerLimits<'a> {
    pub flow: &'a TokenHash,
    pub account: AccountId,
    /// The security stamp the flow vouches for.
    pub stamp: i64,
    pub method: FactorKind,
    pub now: UnixTime,
    /// Answers one flow may have.
    pub max_flow_attempts: u32,
    /// The account's second-factor lockout.
    pub throttle_key: &'a str,
    pub throttle_rule: ThrottleRule,
    /// Consecutive failures of one factor that lock it.
    pub failure_cap: u32,
    /// The read found a lockout row or failure counts for the account: a right
    /// answer clears them.
    pub clear_counts: bool,
}

/// A right answer, settled in one transaction: every limit re-checked, the answer
/// used up, the lockout and failure counts cleared, the flow ended (or moved on), the
/// session started, and `audit` appended; or nothing at all.
#[derive(Debug, Clone, Copy)]
pub struct AcceptedAnswer<'a> {
    pub limits: AnswerLimits<'a>,
    pub consume: Consume<'a>,
    pub then: AfterAnswer<'a>,
    pub audit: &'a [NewAuditEvent],
}

/// A wrong answer, counted in one transaction against the flow, the account's
/// lockout, the factor's consecutive failures and (for a sent code) the code.
#[derive(Debug, Clone, Copy)]
pub struct RefusedAnswer<'a> {
    pub limits: AnswerLimits<'a>,
    /// The sent code the answer was for, counted too.
    pub sent_code: Option<(FactorKind, &'a str, u32)>,
    pub audit: &'a NewAuditEvent,
    /// Appended when this answer locks the factor.
    pub locked_audit: &'a NewAuditEvent,
}

/// Why a settled answer changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerBlocked {
    /// The flow is over: used, expired, its answers spent, or the account changed.
    FlowOver,
    /// The account's second-factor lockout is in force (until the time given).
    Locked(UnixTime),
    /// The factor has had its consecutive failures.
    FactorLocked,
    /// What the answer would use up was used (or replaced) meanwhile.
    AlreadyUsed,
}

/// A wrong answer's counts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalCounted {
    pub flow_attempts: u32,
    pub factor_failures: u32,
    pub throttle: ThrottleState,
    /// This answer locked the factor.
    pub factor_locked: bool,
}
