//! The audit trail in words, for people: each kind of event as a short phrase
//! ("Signed in", "Second factor refused") and its details as labelled text. The
//! stored kinds, outcomes and JSON details (and the CSV export) keep their codes.

/// Every kind the trail records, with its phrase for a success and for a refusal.
pub const KINDS: &[(&str, &str, &str)] = &[
    ("organization_created", "Organization created", "Organization not created"),
    ("account_created", "Account created", "Account not created"),
    ("invitation_resent", "Invitation sent again", "Invitation not sent"),
    ("password_reset_link_issued", "Password reset link sent", "Password reset link not sent"),
    ("invitation_accepted", "Invitation accepted", "Invitation refused"),
    ("password_reset", "Password reset", "Password reset refused"),
    ("password_reset_requested", "Password reset requested", "Password reset request not sent"),
    ("password_changed", "Password changed", "Password change refused"),
    ("email_change_requested", "Email change requested", "Email change request refused"),
    ("email_changed", "Sign-in email changed", "Email change refused"),
    ("email_change_cancelled", "Email change cancelled", "Email change not cancelled"),
    ("sign_in", "Signed in", "Sign-in refused"),
    ("sign_out", "Signed out", "Sign-out refused"),
    ("bypass_used", "Signed in once without 2FA (bypass)", "Bypass refused"),
    ("mfa_setup_postponed", "2FA setup postponed (Remind me later)", "2FA setup not postponed"),
    ("second_factor", "Second factor proved", "Second factor refused"),
    ("recovery_code_used", "Recovery code used", "Recovery code refused"),
    ("recovery_code_replaced", "New recovery code issued", "Recovery code not replaced"),
    ("factor_locked", "Second factor locked", "Second factor locked"),
    ("factor_enrolled", "Second factor set up", "Second factor not set up"),
    ("factor_replaced", "Second factor replaced", "Second factor not replaced"),
    ("factor_removed", "Second factor removed", "Second factor not removed"),
    ("code_sent", "Code sent", "Code not sent"),
    ("passkey_clone_warning", "Passkey may be cloned", "Passkey may be cloned"),
    ("passkey_renamed", "Passkey renamed", "Passkey not renamed"),
    ("org_mfa_changed", "Clinic 2FA settings changed", "Clinic 2FA settings not changed"),
    ("org_branding_changed", "Clinic branding changed", "Clinic branding not changed"),
    ("member_mfa_override_changed", "Member's 2FA rule changed", "Member's 2FA rule not changed"),
    ("bypass_granted", "Bypass granted", "Bypass not granted"),
    ("mfa_reset", "MFA reset", "MFA reset refused"),
    ("mfa_reminder_sent", "2FA setup reminder emailed", "2FA setup reminder not sent"),
    ("sessions_revoked", "Signed out everywhere", "Sign-out everywhere refused"),
    ("second_factor_unlocked", "Second factor unlocked", "Unlock refused"),
    ("session_ended", "Signed out of one session", "Session not ended"),
    ("other_sessions_ended", "Signed out of all other sessions", "Other sessions not ended"),
    ("account_deactivated", "Account deactivated", "Deactivation refused"),
    ("account_reactivated", "Account reactivated", "Reactivation refused"),
    ("role_changed", "Role changed", "Role not changed"),
    ("app_registered", "Clinic app registered", "Clinic app not registered"),
    ("signing_key_added", "Signing key added", "Signing key not added"),
    ("app_signed_in", "Signed in to a clinic app", "Clinic app sign-in refused"),
    ("app_step_up", "Clinic app asked for a second factor", "Clinic app step-up refused"),
    ("app_request_refused", "Clinic app request refused", "Clinic app request refused"),
    ("app_tokens_issued", "Clinic app tokens issued", "Clinic app tokens refused"),
    ("app_token_replayed", "Clinic app token replayed (grant ended)", "Clinic app token replayed (grant ended)"),
    ("app_token_revoked", "Clinic app token revoked", "Clinic app token not revoked"),
    ("app_signed_out", "Signed out of a clinic app", "Clinic app sign-out refused"),
    ("backchannel_logout", "Clinic app told of sign-out", "Clinic app not reached about sign-out"),
];

/// The phrase for a stored kind and outcome; a kind this version does not know
/// (written by a newer one) reads as its code in words.
pub fn kind_label(kind: &str, outcome: &str) -> String {
    match KINDS.iter().find(|(k, _, _)| *k == kind) {
        Some((_, ok, _)) if outcome != "failure" => (*ok).to_owned(),
        Some((_, _, refused)) => (*refused).to_owned(),
        None => capitalized(&kind.replace('_', " ")),
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Words for the codes that details hold.
fn value_words(v: &str) -> String {
    match v {
        "authenticator" => "authenticator app".to_owned(),
        "sms" => "text message".to_owned(),
        "recovery_code" => "recovery code".to_owned(),
        "true" => "yes".to_owned(),
        "false" => "no".to_owned(),
        other => other.replace('_', " "),
    }
}

/// A stored JSON detail as "label: value" pairs joined by "; " (in the stored
/// order); anything that is not a JSON object is shown as it is.
pub fn detail_text(detail: &str) -> String {
    detail_parts(detail)
        .iter()
        .map(|(k, v)| if k.is_empty() { v.clone() } else { format!("{k}: {v}") })
        .collect::<Vec<_>>()
        .join("; ")
}

/// An event's detail as labelled parts ("method", "authenticator app"), for a page
/// that shows one per line. A detail that is not a JSON object is one unlabelled part.
pub fn detail_parts(detail: &str) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(detail) else {
        return if detail.is_empty() { Vec::new() } else { vec![(String::new(), detail.to_owned())] };
    };
    map.iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => value_words(s),
                other => value_words(&other.to_string()),
            };
            (k.replace('_', " "), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Event;
    use crate::{FactorKind, Purpose, Realm};

    /// The kinds `Event::kind` can answer, read from its source: a kind added there
    /// without words here fails.
    fn kinds_in_event_rs() -> Vec<String> {
        let src = include_str!("event.rs");
        let start = src.find("pub fn kind(&self)").unwrap_or(0);
        let end = start + src[start..].find("pub fn outcome(&self)").unwrap_or(0);
        src[start..end].split("=> \"").skip(1).filter_map(|rest| rest.split('"').next()).map(str::to_owned).collect()
    }

    #[test]
    fn every_event_kind_has_words() {
        let kinds = kinds_in_event_rs();
        assert!(kinds.len() > 30, "{kinds:?}");
        for k in &kinds {
            assert!(KINDS.iter().any(|(known, _, _)| known == k), "{k} has no words");
        }
        let samples = [
            Event::SignedIn { realm: Realm::Staff, method: "password" },
            Event::SecondFactorRefused {
                method: FactorKind::Sms,
                reason: "incorrect_code",
                purpose: Some(Purpose::SignIn),
            },
            Event::SessionsRevoked,
            Event::AppTokenReplayed { client_id: "c", token: "refresh_token" },
            Event::BackchannelLogout { client_id: "c", result: "gave_up", attempts: 6 },
        ];
        for e in samples {
            assert!(KINDS.iter().any(|(k, _, _)| *k == e.kind()), "{} has words", e.kind());
        }
        assert_eq!(kind_label("sign_in", "success"), "Signed in");
        assert_eq!(kind_label("sign_in", "failure"), "Sign-in refused");
        assert_eq!(kind_label("second_factor", "failure"), "Second factor refused");
        assert_eq!(kind_label("something_new", "success"), "Something new");
    }

    #[test]
    fn details_read_as_labelled_text() {
        let e =
            Event::SecondFactorRefused { method: FactorKind::RecoveryCode, reason: "incorrect_code", purpose: None };
        assert_eq!(detail_text(&e.detail()), "method: recovery code; reason: incorrect code");
        assert_eq!(detail_text("{}"), "");
        assert_eq!(detail_text("not json"), "not json");
        assert_eq!(detail_text(r#"{"enabled":"true","n":3}"#), "enabled: yes; n: 3");
    }
}
