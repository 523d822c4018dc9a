//! The rules of clinic-auth as an OpenID Connect provider: what a client may ask for,
//! what a sign-in proved (`amr`, `acr`), and whether an existing session answers a
//! request or the member must prove something first. Pure: the app layer stores and
//! signs, this decides.

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{FactorKind, UnixTime};

/// An authorization code lives one minute (RFC 9700 asks for short-lived codes).
pub const CODE_TTL_SECS: i64 = 60;
/// Access tokens are opaque and live ten minutes; apps refresh them.
pub const ACCESS_TOKEN_TTL_SECS: i64 = 600;
/// ID tokens are for the app's sign-in, not for calling APIs: ten minutes.
pub const ID_TOKEN_TTL_SECS: i64 = 600;
/// A refresh token (only with `offline_access`) lives 30 days unless used, rotated or
/// ended by a change to the account.
pub const REFRESH_TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;
/// An authorization request waits this long for its sign-in.
pub const REQUEST_TTL_SECS: i64 = 30 * 60;
/// A retired signing key stays in the JWKS until every token it signed has expired.
pub const KEY_PUBLISH_AFTER_RETIRE_SECS: i64 = ID_TOKEN_TTL_SECS + 3600;

/// How strongly a member proved who they are, weakest first. The `acr` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Acr {
    /// A password only.
    Password,
    /// A password and a second factor.
    MultiFactor,
    /// A password and a passkey: a phishing-resistant second factor.
    PhishingResistant,
}

const PAPE_MFA: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
const PAPE_PHR: &str = "http://schemas.openid.net/pape/policies/2007/06/phishing-resistant";

impl Acr {
    pub const ALL: [Acr; 3] = [Acr::Password, Acr::MultiFactor, Acr::PhishingResistant];

    pub fn as_str(self) -> &'static str {
        match self {
            Acr::Password => "urn:clinic-auth:acr:password",
            Acr::MultiFactor => "urn:clinic-auth:acr:mfa",
            Acr::PhishingResistant => "urn:clinic-auth:acr:phishing-resistant",
        }
    }

    /// One value of `acr_values`: ours, or the OpenID PAPE policy names for the same.
    pub fn parse(s: &str) -> Option<Acr> {
        match s {
            "urn:clinic-auth:acr:password" => Some(Acr::Password),
            "urn:clinic-auth:acr:mfa" | PAPE_MFA => Some(Acr::MultiFactor),
            "urn:clinic-auth:acr:phishing-resistant" | PAPE_PHR => Some(Acr::PhishingResistant),
            _ => None,
        }
    }

    /// The level `acr_values` asks for: the weakest value we know among them (any of
    /// them satisfies the app). Values we do not know are ignored, as the spec allows.
    pub fn requested(acr_values: &str) -> Option<Acr> {
        acr_values.split(' ').filter_map(Acr::parse).min()
    }
}

impl fmt::Display for Acr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One way of proving identity a session used, as the session row records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProofMethod {
    Password,
    Factor(FactorKind),
}

impl ProofMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ProofMethod::Password => "password",
            ProofMethod::Factor(k) => k.as_str(),
        }
    }

    pub fn parse(s: &str) -> Option<ProofMethod> {
        match s {
            "password" => Some(ProofMethod::Password),
            other => other.parse::<FactorKind>().ok().map(ProofMethod::Factor),
        }
    }

    /// RFC 8176 values. An emailed code and the recovery code are one-time codes
    /// (`otp`) like an authenticator's; a text message is `sms`; a passkey is a
    /// hardware- or platform-held key with a user test (`hwk`, `user`).
    fn amr(self) -> &'static [&'static str] {
        match self {
            ProofMethod::Password => &["pwd"],
            ProofMethod::Factor(FactorKind::Authenticator | FactorKind::Email | FactorKind::RecoveryCode) => &["otp"],
            ProofMethod::Factor(FactorKind::Sms) => &["sms"],
            ProofMethod::Factor(FactorKind::Passkey) => &["hwk", "user"],
        }
    }
}

/// What a session proved: its methods, kept as the session row stores them
/// (comma-separated names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proved(BTreeSet<ProofMethod>);

impl Proved {
    pub fn password() -> Proved {
        Proved([ProofMethod::Password].into_iter().collect())
    }

    pub fn with(mut self, m: ProofMethod) -> Proved {
        self.0.insert(m);
        self
    }

    /// The stored form; unknown names (from a newer version) are dropped on reading.
    pub fn parse(stored: &str) -> Proved {
        Proved(stored.split(',').filter_map(ProofMethod::parse).collect())
    }

    pub fn to_stored(&self) -> String {
        self.0.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(",")
    }

    pub fn has_second_factor(&self) -> bool {
        self.0.iter().any(|m| matches!(m, ProofMethod::Factor(_)))
    }

    /// The `acr` these methods earn.
    pub fn acr(&self) -> Acr {
        if self.0.contains(&ProofMethod::Factor(FactorKind::Passkey)) && self.0.contains(&ProofMethod::Password) {
            Acr::PhishingResistant
        } else if self.has_second_factor() {
            Acr::MultiFactor
        } else {
            Acr::Password
        }
    }

    /// The `amr` claim: RFC 8176 values, each once, and `mfa` when two factors.
    pub fn amr(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for m in &self.0 {
            for v in m.amr() {
                if !out.contains(v) {
                    out.push(v);
                }
            }
        }
        if self.0.contains(&ProofMethod::Password) && self.has_second_factor() {
            out.push("mfa");
        }
        out
    }
}

/// `prompt`: `none` stands alone; `login` asks for a fresh sign-in; `consent` and
/// `select_account` are accepted and change nothing (clinic apps are first-party, and
/// one browser signs in one account).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
}

impl Prompt {
    pub fn parse(s: Option<&str>) -> Result<Prompt, RequestError> {
        let mut p = Prompt::default();
        let Some(s) = s else { return Ok(p) };
        let values: Vec<&str> = s.split(' ').filter(|v| !v.is_empty()).collect();
        for v in &values {
            match *v {
                "none" => p.none = true,
                "login" => p.login = true,
                "consent" | "select_account" => {}
                _ => return Err(RequestError::invalid_request("prompt has a value this server does not know")),
            }
        }
        if p.none && values.len() > 1 {
            return Err(RequestError::invalid_request("prompt=none cannot be combined with other values"));
        }
        Ok(p)
    }
}

/// An error answered to the client (by redirect where the redirect URI is known to be
/// the client's, else on a page): the OAuth `error` code and a description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct RequestError {
    pub error: &'static str,
    pub description: &'static str,
}

impl RequestError {
    pub fn invalid_request(description: &'static str) -> RequestError {
        RequestError { error: "invalid_request", description }
    }
}

/// A PKCE `code_challenge` with method S256 (RFC 7636): 43 base64url characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<CodeChallenge, RequestError> {
        let Some(challenge) = challenge else {
            return Err(RequestError::invalid_request("code_challenge is required (PKCE with S256)"));
        };
        if method != Some("S256") {
            return Err(RequestError::invalid_request("code_challenge_method must be S256"));
        }
        if challenge.len() != 43 || !challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(RequestError::invalid_request("code_challenge must be a base64url SHA-256 (43 characters)"));
        }
        Ok(CodeChallenge(challenge.to_owned()))
    }

    pub fn from_stored(s: String) -> CodeChallenge {
        CodeChallenge(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `verifier` (43–128 unreserved characters) hashes to this challenge.
    pub fn matches(&self, verifier: &str) -> bool {
        let shaped = (43..=128).contains(&verifier.len())
            && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        shaped && bool::from(computed.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

/// The scopes this provider knows. `openid` is required; `email` adds the email
/// claims; `offline_access` asks for a refresh token. Others are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes {
    pub email: bool,
    pub profile: bool,
    pub offline_access: bool,
}

pub const SUPPORTED_SCOPES: [&str; 4] = ["openid", "email", "profile", "offline_access"];

impl Scopes {
    pub fn parse(scope: Option<&str>) -> Result<Scopes, RequestError> {
        let values: Vec<&str> = scope.unwrap_or_default().split(' ').filter(|v| !v.is_empty()).collect();
        if !values.contains(&"openid") {
            return Err(RequestError { error: "invalid_scope", description: "scope must include openid" });
        }
        Ok(Scopes {
            email: values.contains(&"email"),
            profile: values.contains(&"profile"),
            offline_access: values.contains(&"offline_access"),
        })
    }

    /// The granted scopes, as the token response and introspection say them.
    pub fn to_scope_string(&self) -> String {
        let mut out = vec!["openid"];
        if self.email {
            out.push("email");
        }
        if self.profile {
            out.push("profile");
        }
        if self.offline_access {
            out.push("offline_access");
        }
        out.join(" ")
    }
}

/// A redirect, post-logout redirect or back-channel logout URI a client registers:
/// absolute, no fragment, `https://`, or `http://` only for a loopback host
/// (development and tests). Matched exactly, character for character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ClientUri(String);

impl ClientUri {
    pub fn parse(s: &str) -> Result<ClientUri, &'static str> {
        let url = url::Url::parse(s).map_err(|_| "must be an absolute URL")?;
        if url.fragment().is_some() {
            return Err("must not have a fragment");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry a user name or password");
        }
        match url.scheme() {
            "https" => {}
            "http" if matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")) => {}
            "http" => return Err("must use https:// (plain http:// only for localhost or 127.0.0.1)"),
            _ => return Err("must be an https:// URL"),
        }
        Ok(ClientUri(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an app demands of this sign-in, from its request and its registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// The weakest `acr` that satisfies it.
    pub acr: Acr,
    /// `max_age`, seconds.
    pub max_age: Option<i64>,
    /// `prompt=login`: the member signs in again, whatever the session.
    pub fresh_login: bool,
    /// The request was made at this time (a sign-in after it satisfies `prompt=login`).
    pub requested_at: UnixTime,
}

impl Demand {
    /// `acr_values` with the client's "always require MFA" and the member's own
    /// policy: whatever is strongest.
    pub fn new(
        acr_values: Option<&str>,
        client_requires_mfa: bool,
        max_age: Option<i64>,
        prompt: Prompt,
        requested_at: UnixTime,
    ) -> Demand {
        let mut acr = acr_values.and_then(Acr::requested).unwrap_or(Acr::Password);
        if client_requires_mfa {
            acr = acr.max(Acr::MultiFactor);
        }
        Demand { acr, max_age, fresh_login: prompt.login, requested_at }
    }
}

/// A live browser session, as far as a request cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFacts {
    /// When the password was proved (the session began).
    pub auth_time: UnixTime,
    pub proved: Proved,
}

/// What answers a request, given the browser's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The session satisfies the request: issue a code.
    Issue,
    /// No session, or one too old for `max_age`/`prompt=login`: sign in.
    SignIn,
    /// The session is fresh enough but weaker than asked: prove a second factor (a
    /// passkey when `PhishingResistant`).
    StepUp(Acr),
}

pub fn answer(session: Option<&SessionFacts>, demand: &Demand, now: UnixTime) -> Answer {
    let Some(s) = session else { return Answer::SignIn };
    // A sign-in made for this request is fresh enough, however long the way back took
    // (OpenID Connect Core: `max_age=0` is `prompt=login`).
    let signed_in_for_it = s.auth_time >= demand.requested_at;
    if demand.fresh_login && !signed_in_for_it {
        return Answer::SignIn;
    }
    if let Some(max_age) = demand.max_age
        && now.0.saturating_sub(s.auth_time.0) > max_age
        && !signed_in_for_it
    {
        return Answer::SignIn;
    }
    if s.proved.acr() < demand.acr {
        return Answer::StepUp(demand.acr);
    }
    Answer::Issue
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    fn facts(at: i64, proved: Proved) -> SessionFacts {
        SessionFacts { auth_time: UnixTime(at), proved }
    }

    #[test]
    fn amr_and_acr_tell_what_was_proved() {
        let pwd = Proved::password();
        assert_eq!(pwd.amr(), vec!["pwd"]);
        assert_eq!(pwd.acr(), Acr::Password);
        let otp = Proved::password().with(ProofMethod::Factor(FactorKind::Authenticator));
        assert_eq!(otp.amr(), vec!["pwd", "otp", "mfa"]);
        assert_eq!(otp.acr(), Acr::MultiFactor);
        let sms = Proved::password().with(ProofMethod::Factor(FactorKind::Sms));
        assert_eq!(sms.amr(), vec!["pwd", "sms", "mfa"]);
        let key = Proved::password().with(ProofMethod::Factor(FactorKind::Passkey));
        assert_eq!(key.amr(), vec!["pwd", "hwk", "user", "mfa"]);
        assert_eq!(key.acr(), Acr::PhishingResistant);
        let stored = key.to_stored();
        assert_eq!(stored, "password,passkey");
        assert_eq!(Proved::parse(&stored), key);
        assert_eq!(Proved::parse("password,someday"), Proved::password());
    }

    #[test]
    fn acr_values_ask_for_the_weakest_known_level() {
        assert_eq!(Acr::requested("urn:clinic-auth:acr:mfa"), Some(Acr::MultiFactor));
        assert_eq!(Acr::requested(PAPE_PHR), Some(Acr::PhishingResistant));
        assert_eq!(
            Acr::requested("urn:clinic-auth:acr:phishing-resistant urn:clinic-auth:acr:mfa"),
            Some(Acr::MultiFactor)
        );
        assert_eq!(Acr::requested("gold silver"), None);
    }

    #[test]
    fn a_session_answers_only_what_it_proved_recently_enough() {
        let now = UnixTime(10_000);
        let plain = Demand::new(None, false, None, Prompt::default(), now);
        assert_eq!(answer(None, &plain, now), Answer::SignIn);
        let s = facts(9_000, Proved::password());
        assert_eq!(answer(Some(&s), &plain, now), Answer::Issue);
        let mfa = Demand::new(Some("urn:clinic-auth:acr:mfa"), false, None, Prompt::default(), now);
        assert_eq!(answer(Some(&s), &mfa, now), Answer::StepUp(Acr::MultiFactor));
        let client_mfa = Demand::new(None, true, None, Prompt::default(), now);
        assert_eq!(answer(Some(&s), &client_mfa, now), Answer::StepUp(Acr::MultiFactor));
        let with_otp = facts(9_000, Proved::password().with(ProofMethod::Factor(FactorKind::Email)));
        assert_eq!(answer(Some(&with_otp), &mfa, now), Answer::Issue);
        let phr = Demand::new(Some(PAPE_PHR), false, None, Prompt::default(), now);
        assert_eq!(answer(Some(&with_otp), &phr, now), Answer::StepUp(Acr::PhishingResistant));
        let old = Demand::new(None, false, Some(600), Prompt::default(), now);
        assert_eq!(answer(Some(&s), &old, now), Answer::SignIn);
        let recent = Demand::new(None, false, Some(1_000), Prompt::default(), now);
        assert_eq!(answer(Some(&s), &recent, now), Answer::Issue);
        let login = Demand::new(None, false, None, Prompt { none: false, login: true }, now);
        assert_eq!(answer(Some(&s), &login, now), Answer::SignIn);
        assert_eq!(answer(Some(&facts(10_000, Proved::password())), &login, now), Answer::Issue);
        // max_age=0: a sign-in made after the request satisfies it, even a second later.
        let zero = Demand::new(None, false, Some(0), Prompt::default(), now);
        assert_eq!(answer(Some(&s), &zero, now), Answer::SignIn);
        let later = UnixTime(now.0 + 1);
        assert_eq!(answer(Some(&facts(10_000, Proved::password())), &zero, later), Answer::Issue);
    }

    #[test]
    fn pkce_is_s256_only_and_checked_exactly() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = CodeChallenge::parse(Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"), Some("S256")).unwrap();
        assert!(c.matches(verifier));
        assert!(!c.matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl"));
        assert!(!c.matches("short"));
        assert!(CodeChallenge::parse(Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"), Some("plain")).is_err());
        assert!(CodeChallenge::parse(Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"), None).is_err());
        assert!(CodeChallenge::parse(None, Some("S256")).is_err());
        assert!(CodeChallenge::parse(Some("abc"), Some("S256")).is_err());
    }

    #[test]
    fn client_uris_are_https_except_on_loopback() {
        assert!(ClientUri::parse("https://ehr.example.org/callback").is_ok());
        assert!(ClientUri::parse("http://127.0.0.1:8080/cb").is_ok());
        assert!(ClientUri::parse("http://localhost/cb").is_ok());
        assert!(ClientUri::parse("http://ehr.example.org/cb").is_err());
        assert!(ClientUri::parse("https://ehr.example.org/cb#x").is_err());
        assert!(ClientUri::parse("javascript:alert(1)").is_err());
        assert!(ClientUri::parse("/relative").is_err());
        assert!(ClientUri::parse("https://user:pw@ehr.example.org/cb").is_err());
    }

    #[test]
    fn prompt_none_stands_alone() {
        assert_eq!(Prompt::parse(Some("login")).unwrap(), Prompt { none: false, login: true });
        assert_eq!(Prompt::parse(Some("none")).unwrap(), Prompt { none: true, login: false });
        assert!(Prompt::parse(Some("none login")).is_err());
        assert!(Prompt::parse(Some("bogus")).is_err());
        assert!(Scopes::parse(Some("email")).is_err());
        assert!(Scopes::parse(Some("openid offline_access")).unwrap().offline_access);
    }
}
