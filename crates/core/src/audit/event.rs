//! Every kind of event the audit trail records, each with its own fields. The trail
//! stores an event as a kind, an outcome and a JSON detail; this type is the one place
//! those three are made, so a kind cannot be misspelt and its detail cannot lose a
//! field. Only non-secret values belong here: masked addresses, ids, reasons.

use crate::{AccountKind, FactorKind, MemberOverride, MfaMode, OrgKind, Purpose, Realm, Role};

/// What happened. `kind()`, `outcome()` and `detail()` are what the store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    // Organizations and accounts.
    OrganizationCreated {
        name: &'a str,
        kind: OrgKind,
    },
    AccountCreated {
        kind: AccountKind,
        email: &'a str,
        role: Option<Role>,
        invited: bool,
    },
    /// The first platform admin, made through the first-start setup link.
    FirstAdminCreated {
        email: &'a str,
    },
    InvitationResent,
    PasswordResetLinkIssued {
        by_operator: bool,
        delivery: &'a str,
    },
    InvitationAccepted,
    PasswordReset,
    /// "Forgot your password?": someone asked for a reset link for an address. With
    /// `refused` (`unknown_account`, `no_password_set`, `account_deactivated`,
    /// `address_limited`) no link was made; `email` is the address asked about when no
    /// account uses it (the event's subject says whose it is otherwise).
    PasswordResetRequested {
        refused: Option<&'a str>,
        email: Option<&'a str>,
    },
    /// The holder changed their password from a signed-in session ("Change password").
    PasswordChanged,
    /// "Change password" refused before anything changed (`wrong_password`, `locked`).
    PasswordChangeRefused {
        reason: &'a str,
    },
    /// "Change email": the holder asked to change their sign-in email to `new_email`;
    /// a link went to that address (`taken`: another account of the realm uses it, so
    /// the address was told so instead, and the change can never be confirmed).
    EmailChangeRequested {
        new_email: &'a str,
        taken: bool,
    },
    /// The link sent to the new address was used: the sign-in email is `new_email`.
    EmailChanged {
        old_email: &'a str,
        new_email: &'a str,
    },
    /// A change-of-email link was refused before anything changed (`address_taken`,
    /// `account_changed`).
    EmailChangeRefused {
        reason: &'a str,
    },
    /// The holder cancelled their pending change of email.
    EmailChangeCancelled,
    // Signing in and out.
    SignedIn {
        realm: Realm,
        method: &'a str,
    },
    /// `realm`: the sign-in page it came through (staff or patient portal).
    SignInRefused {
        realm: Realm,
        reason: &'a str,
        email: Option<&'a str>,
    },
    SignedOut,
    /// One session of the account ended from its list of sessions ("My sessions"), by
    /// another session of the same account (`by_self`); `sid` is its public id.
    SessionEnded {
        sid: &'a str,
        by_self: bool,
    },
    /// "Sign out of all other sessions": every session of the account ended but
    /// `kept_sid`, the one that asked.
    OtherSessionsEnded {
        kept_sid: &'a str,
    },
    BypassUsed {
        then_setup: bool,
    },
    /// "Remind me later": a member in their clinic's grace period signed in without
    /// setting up two-factor authentication, with `days_left` of it.
    MfaSetupPostponed {
        days_left: u32,
    },
    // Second factors.
    SecondFactorProved {
        method: FactorKind,
        purpose: Purpose,
        passkey_id: Option<&'a str>,
    },
    SecondFactorRefused {
        method: FactorKind,
        reason: &'a str,
        purpose: Option<Purpose>,
    },
    RecoveryCodeUsed {
        purpose: Purpose,
    },
    RecoveryCodeReplaced,
    FactorLocked {
        method: FactorKind,
        consecutive_failures: u32,
    },
    FactorEnrolled {
        method: FactorKind,
        recovery_code_issued: bool,
        replaced: bool,
    },
    FactorRemoved {
        method: Option<FactorKind>,
        reason: Option<&'a str>,
        by_self: bool,
        passkey_id: Option<&'a str>,
    },
    CodeSent {
        channel: FactorKind,
        purpose: Purpose,
        to: &'a str,
    },
    CodeNotSent {
        channel: FactorKind,
        purpose: Purpose,
        reason: &'a str,
    },
    PasskeyAdded {
        passkey_id: &'a str,
    },
    PasskeyRefused {
        reason: &'a str,
    },
    PasskeyCloneWarning {
        reason: &'a str,
        purpose: Purpose,
        device_hint: &'a str,
    },
    PasskeyRenamed {
        passkey_id: &'a str,
        name: &'a str,
    },
    // Administration.
    OrgMfaChanged {
        enabled: bool,
        mode: MfaMode,
        methods: &'a str,
        grace_days: u8,
    },
    /// The display name, accent colour or logo changed: `changed` names the parts
    /// (`display_name,accent_color,logo`), never the image.
    OrgBrandingChanged {
        changed: &'a str,
    },
    MemberMfaOverrideChanged {
        from: MemberOverride,
        to: MemberOverride,
    },
    BypassGranted {
        expires_at: &'a str,
    },
    MfaReset {
        identity_verified: Option<&'a str>,
    },
    /// An admin emailed a member who has not set up two-factor authentication a
    /// reminder; `deadline` (RFC 3339) when their grace period ends, if they have one.
    MfaReminderSent {
        deadline: Option<&'a str>,
    },
    SessionsRevoked,
    /// An admin lifted the locks that wrong second-factor codes put on a member.
    SecondFactorUnlocked,
    AccountDeactivated,
    AccountReactivated,
    RoleChanged {
        from: Option<Role>,
        to: Role,
    },
    // Apps signing members in (OpenID Connect). Never a token or a code.
    AppRegistered {
        client_id: &'a str,
        name: &'a str,
    },
    SigningKeyAdded {
        kid: &'a str,
        alg: &'a str,
        rotated: bool,
    },
    /// An authorization code went to an app after a sign-in (or single sign-on).
    AppSignedIn {
        client_id: &'a str,
        acr: &'a str,
    },
    /// The app asked for more than the session proved; the member is asked to prove it.
    AppStepUp {
        client_id: &'a str,
        acr: &'a str,
    },
    AppRequestRefused {
        client_id: &'a str,
        reason: &'a str,
    },
    AppTokensIssued {
        client_id: &'a str,
        grant_type: &'a str,
        refresh_token: bool,
    },
    /// A used code or refresh token came back: the grant behind it is ended.
    AppTokenReplayed {
        client_id: &'a str,
        token: &'a str,
    },
    AppTokenRevoked {
        client_id: &'a str,
        token: &'a str,
    },
    AppSignedOut {
        client_id: Option<&'a str>,
    },
    BackchannelLogout {
        client_id: &'a str,
        result: &'a str,
        attempts: u32,
    },
}

impl Event<'_> {
    /// The word the trail, its CSV export and its filters use.
    pub fn kind(&self) -> &'static str {
        use Event as E;
        match self {
            E::OrganizationCreated { .. } => "organization_created",
            E::AccountCreated { .. } | E::FirstAdminCreated { .. } => "account_created",
            E::InvitationResent => "invitation_resent",
            E::PasswordResetLinkIssued { .. } => "password_reset_link_issued",
            E::InvitationAccepted => "invitation_accepted",
            E::PasswordReset => "password_reset",
            E::PasswordResetRequested { .. } => "password_reset_requested",
            E::PasswordChanged | E::PasswordChangeRefused { .. } => "password_changed",
            E::EmailChangeRequested { .. } => "email_change_requested",
            E::EmailChanged { .. } | E::EmailChangeRefused { .. } => "email_changed",
            E::EmailChangeCancelled => "email_change_cancelled",
            E::SignedIn { .. } | E::SignInRefused { .. } => "sign_in",
            E::SignedOut => "sign_out",
            E::SessionEnded { .. } => "session_ended",
            E::OtherSessionsEnded { .. } => "other_sessions_ended",
            E::BypassUsed { .. } => "bypass_used",
            E::MfaSetupPostponed { .. } => "mfa_setup_postponed",
            E::SecondFactorProved { .. } | E::SecondFactorRefused { .. } => "second_factor",
            E::RecoveryCodeUsed { .. } => "recovery_code_used",
            E::RecoveryCodeReplaced => "recovery_code_replaced",
            E::FactorLocked { .. } => "factor_locked",
            E::FactorEnrolled { replaced: true, .. } => "factor_replaced",
            E::FactorEnrolled { .. } | E::PasskeyAdded { .. } | E::PasskeyRefused { .. } => "factor_enrolled",
            E::FactorRemoved { .. } => "factor_removed",
            E::CodeSent { .. } | E::CodeNotSent { .. } => "code_sent",
            E::PasskeyCloneWarning { .. } => "passkey_clone_warning",
            E::PasskeyRenamed { .. } => "passkey_renamed",
            E::OrgMfaChanged { .. } => "org_mfa_changed",
            E::OrgBrandingChanged { .. } => "org_branding_changed",
            E::MemberMfaOverrideChanged { .. } => "member_mfa_override_changed",
            E::BypassGranted { .. } => "bypass_granted",
            E::MfaReset { .. } => "mfa_reset",
            E::MfaReminderSent { .. } => "mfa_reminder_sent",
            E::SessionsRevoked => "sessions_revoked",
            E::SecondFactorUnlocked => "second_factor_unlocked",
            E::AccountDeactivated => "account_deactivated",
            E::AccountReactivated => "account_reactivated",
            E::RoleChanged { .. } => "role_changed",
            E::AppRegistered { .. } => "app_registered",
            E::SigningKeyAdded { .. } => "signing_key_added",
            E::AppSignedIn { .. } => "app_signed_in",
            E::AppStepUp { .. } => "app_step_up",
            E::AppRequestRefused { .. } => "app_request_refused",
            E::AppTokensIssued { .. } => "app_tokens_issued",
            E::AppTokenReplayed { .. } => "app_token_replayed",
            E::AppTokenRevoked { .. } => "app_token_revoked",
            E::AppSignedOut { .. } => "app_signed_out",
            E::BackchannelLogout { .. } => "backchannel_logout",
        }
    }

    /// `success`, or `failure` for what was refused.
    pub fn outcome(&self) -> &'static str {
        use Event as E;
        match self {
            E::SignInRefused { .. }
            | E::SecondFactorRefused { .. }
            | E::CodeNotSent { .. }
            | E::PasskeyRefused { .. }
            | E::PasskeyCloneWarning { .. }
            | E::AppRequestRefused { .. }
            | E::AppTokenReplayed { .. }
            | E::PasswordResetRequested { refused: Some(_), .. }
            | E::PasswordChangeRefused { .. }
            | E::EmailChangeRefused { .. } => "failure",
            E::BackchannelLogout { result, .. } if *result != "delivered" => "failure",
            _ => "success",
        }
    }

    /// The event's fields as short labelled values, in the order they read best.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        use Event as E;
        let s = |v: &str| v.to_owned();
        let yes_no = |b: bool| if b { "true" } else { "false" }.to_owned();
        match self {
            E::OrganizationCreated { name, kind } => vec![("name", s(name)), ("kind", s(kind.as_str()))],
            E::AccountCreated { kind, email, role, invited } => vec![
                ("kind", s(kind.as_str())),
                ("email", s(email)),
                ("role", s(role.map(Role::as_str).unwrap_or(""))),
                ("invited", yes_no(*invited)),
            ],
            E::FirstAdminCreated { email } => {
                vec![("kind", s(AccountKind::PlatformAdmin.as_str())), ("email", s(email)), ("via", s("setup_link"))]
            }
            E::InvitationResent => vec![("delivery", s("email"))],
            E::PasswordResetLinkIssued { by_operator, delivery } => {
                let mut f = vec![("delivery", s(delivery))];
                if *by_operator {
                    f.insert(0, ("by", s("operator")));
                }
                f
            }
            E::PasswordResetRequested { refused: None, .. } => vec![("delivery", s("email"))],
            E::PasswordResetRequested { refused: Some(reason), email } => {
                let mut f = vec![("reason", s(reason))];
                if let Some(email) = email {
                    f.push(("email", s(email)));
                }
                f
            }
            E::PasswordChangeRefused { reason } => vec![("reason", s(reason))],
            E::EmailChangeRequested { new_email, taken } => {
                let mut f = vec![("new_email", s(new_email))];
                if *taken {
                    f.push(("taken", yes_no(true)));
                }
                f
            }
            E::EmailChanged { old_email, new_email } => vec![("old_email", s(old_email)), ("new_email", s(new_email))],
            E::EmailChangeRefused { reason } => vec![("reason", s(reason))],
            E::InvitationAccepted
            | E::PasswordReset
            | E::PasswordChanged
            | E::EmailChangeCancelled
            | E::SignedOut
            | E::RecoveryCodeReplaced
            | E::SessionsRevoked
            | E::SecondFactorUnlocked
            | E::AccountDeactivated
            | E::AccountReactivated => vec![],
            E::SignedIn { realm, method } => vec![("realm", s(realm.as_str())), ("method", s(method))],
            E::SignInRefused { realm, reason, email } => {
                let mut f = vec![("realm", s(realm.as_str())), ("reason", s(reason))];
                if let Some(email) = email {
                    f.push(("email", s(email)));
                }
                f
            }
            E::SessionEnded { sid, by_self } => {
                let mut f = vec![("sid", s(sid))];
                if *by_self {
                    f.push(("by", s("self")));
                }
                f
            }
            E::OtherSessionsEnded { kept_sid } => vec![("by", s("self")), ("kept_sid", s(kept_sid))],
            E::BypassUsed { then_setup } => vec![("then", s(if *then_setup { "setup" } else { "signed_in" }))],
            E::MfaSetupPostponed { days_left } => vec![("days_left", days_left.to_string())],
            E::SecondFactorProved { method, purpose, passkey_id } => {
                let mut f = vec![("method", s(method.as_str())), ("purpose", s(purpose.as_str()))];
                if let Some(id) = passkey_id {
                    f.push(("passkey_id", s(id)));
                }
                f
            }
            E::SecondFactorRefused { method, reason, purpose } => {
                let mut f = vec![("method", s(method.as_str())), ("reason", s(reason))];
                if let Some(p) = purpose {
                    f.push(("purpose", s(p.as_str())));
                }
                f
            }
            E::RecoveryCodeUsed { purpose } => {
                vec![("method", s(FactorKind::RecoveryCode.as_str())), ("purpose", s(purpose.as_str()))]
            }
            E::FactorLocked { method, consecutive_failures } => {
                vec![("method", s(method.as_str())), ("consecutive_failures", consecutive_failures.to_string())]
            }
            E::FactorEnrolled { method, recovery_code_issued, .. } => {
                vec![("method", s(method.as_str())), ("recovery_code_issued", yes_no(*recovery_code_issued))]
            }
            E::FactorRemoved { method, reason, by_self, passkey_id } => {
                let mut f = vec![("method", s(method.map(FactorKind::as_str).unwrap_or("all")))];
                if let Some(id) = passkey_id {
                    f.push(("passkey_id", s(id)));
                }
                if let Some(r) = reason {
                    f.push(("reason", s(r)));
                }
                if *by_self {
                    f.push(("by", s("self")));
                }
                f
            }
            E::CodeSent { channel, purpose, to } => {
                vec![("channel", s(channel.as_str())), ("purpose", s(purpose.as_str())), ("to", s(to))]
            }
            E::CodeNotSent { channel, purpose, reason } => {
                vec![("channel", s(channel.as_str())), ("purpose", s(purpose.as_str())), ("reason", s(reason))]
            }
            E::PasskeyAdded { passkey_id } => vec![("method", s("passkey")), ("passkey_id", s(passkey_id))],
            E::PasskeyRefused { reason } => vec![("method", s("passkey")), ("reason", s(reason))],
            E::PasskeyCloneWarning { reason, purpose, device_hint } => vec![
                ("method", s("passkey")),
                ("reason", s(reason)),
                ("purpose", s(purpose.as_str())),
                ("device_hint", s(device_hint)),
            ],
            E::PasskeyRenamed { passkey_id, name } => vec![("passkey_id", s(passkey_id)), ("name", s(name))],
            E::OrgMfaChanged { enabled, mode, methods, grace_days } => vec![
                ("enabled", yes_no(*enabled)),
                ("mode", s(mode.as_str())),
                ("methods", s(methods)),
                ("grace_days", grace_days.to_string()),
            ],
            E::OrgBrandingChanged { changed } => vec![("changed", s(changed))],
            E::MemberMfaOverrideChanged { from, to } => vec![("from", s(from.as_str())), ("to", s(to.as_str()))],
            E::BypassGranted { expires_at } => vec![("expires_at", s(expires_at))],
            E::MfaReminderSent { deadline } => match deadline {
                Some(d) => vec![("deadline", s(d))],
                None => vec![],
            },
            E::MfaReset { identity_verified } => match identity_verified {
                Some(note) => vec![("identity_verified", s(note))],
                None => vec![],
            },
            E::RoleChanged { from, to } => {
                vec![("from", s(from.map(Role::as_str).unwrap_or(""))), ("to", s(to.as_str()))]
            }
            E::AppRegistered { client_id, name } => vec![("client_id", s(client_id)), ("name", s(name))],
            E::SigningKeyAdded { kid, alg, rotated } => {
                vec![("kid", s(kid)), ("alg", s(alg)), ("rotated", yes_no(*rotated))]
            }
            E::AppSignedIn { client_id, acr } | E::AppStepUp { client_id, acr } => {
                vec![("client_id", s(client_id)), ("acr", s(acr))]
            }
            E::AppRequestRefused { client_id, reason } => vec![("client_id", s(client_id)), ("reason", s(reason))],
            E::AppTokensIssued { client_id, grant_type, refresh_token } => vec![
                ("client_id", s(client_id)),
                ("grant_type", s(grant_type)),
                ("refresh_token", yes_no(*refresh_token)),
            ],
            E::AppTokenReplayed { client_id, token } | E::AppTokenRevoked { client_id, token } => {
                vec![("client_id", s(client_id)), ("token", s(token))]
            }
            E::AppSignedOut { client_id } => client_id.map(|c| vec![("client_id", s(c))]).unwrap_or_default(),
            E::BackchannelLogout { client_id, result, attempts } => {
                vec![("client_id", s(client_id)), ("result", s(result)), ("attempts", attempts.to_string())]
            }
        }
    }

    /// The detail the store keeps: a JSON object of `fields()`.
    pub fn detail(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> =
            self.fields().into_iter().map(|(k, v)| (k.to_owned(), serde_json::Value::String(v))).collect();
        serde_json::Value::Object(map).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_outcomes_and_details_are_the_words_the_trail_has_always_used() {
        let table: &[(Event<'_>, &str, &str, &str)] = &[
            (
                Event::SignedIn { realm: Realm::Staff, method: "authenticator" },
                "sign_in",
                "success",
                r#"{"method":"authenticator","realm":"staff"}"#,
            ),
            (
                Event::SignInRefused { realm: Realm::Staff, reason: "wrong_password", email: Some("a@b.test") },
                "sign_in",
                "failure",
                r#"{"email":"a@b.test","realm":"staff","reason":"wrong_password"}"#,
            ),
            (
                Event::FactorEnrolled { method: FactorKind::Sms, recovery_code_issued: true, replaced: true },
                "factor_replaced",
                "success",
                r#"{"method":"sms","recovery_code_issued":"true"}"#,
            ),
            (
                Event::FactorRemoved { method: None, reason: None, by_self: true, passkey_id: None },
                "factor_removed",
                "success",
                r#"{"by":"self","method":"all"}"#,
            ),
            (
                Event::PasskeyRefused { reason: "bad_origin" },
                "factor_enrolled",
                "failure",
                r#"{"method":"passkey","reason":"bad_origin"}"#,
            ),
            (Event::SessionsRevoked, "sessions_revoked", "success", "{}"),
            (
                Event::SessionEnded { sid: "4f1c", by_self: true },
                "session_ended",
                "success",
                r#"{"by":"self","sid":"4f1c"}"#,
            ),
            (
                Event::OtherSessionsEnded { kept_sid: "9a0b" },
                "other_sessions_ended",
                "success",
                r#"{"by":"self","kept_sid":"9a0b"}"#,
            ),
            (
                Event::PasswordResetRequested { refused: None, email: None },
                "password_reset_requested",
                "success",
                r#"{"delivery":"email"}"#,
            ),
            (
                Event::PasswordResetRequested { refused: Some("unknown_account"), email: Some("x@y.test") },
                "password_reset_requested",
                "failure",
                r#"{"email":"x@y.test","reason":"unknown_account"}"#,
            ),
            (Event::PasswordChanged, "password_changed", "success", "{}"),
            (
                Event::OrgBrandingChanged { changed: "display_name,logo" },
                "org_branding_changed",
                "success",
                r#"{"changed":"display_name,logo"}"#,
            ),
            (
                Event::PasswordChangeRefused { reason: "wrong_password" },
                "password_changed",
                "failure",
                r#"{"reason":"wrong_password"}"#,
            ),
            (
                Event::EmailChangeRequested { new_email: "new@x.test", taken: false },
                "email_change_requested",
                "success",
                r#"{"new_email":"new@x.test"}"#,
            ),
            (
                Event::EmailChangeRequested { new_email: "new@x.test", taken: true },
                "email_change_requested",
                "success",
                r#"{"new_email":"new@x.test","taken":"true"}"#,
            ),
            (
                Event::EmailChanged { old_email: "old@x.test", new_email: "new@x.test" },
                "email_changed",
                "success",
                r#"{"new_email":"new@x.test","old_email":"old@x.test"}"#,
            ),
            (
                Event::EmailChangeRefused { reason: "address_taken" },
                "email_changed",
                "failure",
                r#"{"reason":"address_taken"}"#,
            ),
            (Event::EmailChangeCancelled, "email_change_cancelled", "success", "{}"),
        ];
        for (event, kind, outcome, detail) in table {
            assert_eq!(
                (event.kind(), event.outcome(), event.detail().as_str()),
                (*kind, *outcome, *detail),
                "{event:?}"
            );
        }
    }
}
