//! The words of code messages: email subject, plain text and HTML, and the SMS text.

use std::fmt;

use crate::{CodeMessage, CodePurpose};

/// An email's subject and its plain-text and HTML alternatives. Holds the code: its `Debug`
/// shows nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl EmailContent {
    /// The same email with the clinic's logo at the top of its HTML part: an `<img>`
    /// of `logo_url` (a public `https://…/branding/ORG/logo` address) with the
    /// clinic's name as its alt text. The plain-text part names the clinic already.
    pub fn with_logo(mut self, logo_url: Option<&str>, org_name: &str) -> EmailContent {
        let Some(url) = logo_url else { return self };
        let alt = truncate_chars(&clean_name(org_name), EMAIL_ORG_MAX_CHARS);
        let img = format!(
            "\n<p style=\"margin:0 0 16px;\"><img src=\"{}\" alt=\"{}\" height=\"48\" \
             style=\"max-height:48px;max-width:240px;height:auto;border:0;\"></p>",
            escape_html(url),
            escape_html(&alt)
        );
        // After the opening tag of the body, or of the card inside it.
        let anchor = ["<div style=\"max-width:480px", "<body"]
            .iter()
            .find_map(|tag| self.html.find(tag).and_then(|at| self.html[at..].find('>').map(|end| at + end + 1)));
        if let Some(at) = anchor {
            self.html.insert_str(at, &img);
        }
        self
    }
}

impl fmt::Debug for EmailContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailContent").finish_non_exhaustive()
    }
}

/// Longest organization name an email shows; longer ones end in "...".
const EMAIL_ORG_MAX_CHARS: usize = 100;
/// One SMS segment in the GSM 03.38 7-bit alphabet.
const SMS_SEPTETS: usize = 160;
/// What an empty organization name becomes.
const FALLBACK_ORG: &str = "Clinic Auth";

/// The email for `msg`. The subject carries the code only when `code_in_subject` is set (handy on
/// phones' lock screens, but it leaves the code in mail previews and server logs).
pub fn email_content(msg: &CodeMessage<'_>, code_in_subject: bool) -> EmailContent {
    let org = truncate_chars(&clean_name(msg.org_name), EMAIL_ORG_MAX_CHARS);
    let code = msg.code;
    let subject = if code_in_subject {
        format!("{code} is your {org} verification code")
    } else {
        format!("Your {org} verification code")
    };
    let expiry = format!("Your Authentication Code expires {} after it is sent.", minutes(msg.valid_minutes));
    let (action, not_you) = match msg.purpose {
        CodePurpose::SignIn => (
            format!("Enter this code to finish signing in to {org}."),
            "If you didn't try to sign in, someone may know your password: change your password and tell your \
             clinic's administrator.",
        ),
        CodePurpose::Setup => (
            format!("Enter this code to confirm this email address for two-step verification at {org}."),
            "If you didn't ask to set up two-step verification, change your password and tell your clinic's \
             administrator.",
        ),
    };
    let dont_share = "Don't share this code with anyone. Your clinic and its support staff will never ask you for it.";

    let text =
        format!("Your {org} verification code is:\n\n    {code}\n\n{action}\n{expiry}\n\n{dont_share}\n\n{not_you}\n");

    let e = escape_html;
    let html = format!(
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n\
         <head>\n\
         <meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n\
         </head>\n\
         <body style=\"margin:0;padding:24px;background:#f4f5f7;color:#1f2933;\
         font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5;\">\n\
         <div style=\"max-width:480px;margin:0 auto;background:#ffffff;border-radius:8px;padding:24px;\">\n\
         <p style=\"margin:0 0 12px;\">Your {org_html} verification code is:</p>\n\
         <p style=\"margin:0 0 16px;font-size:32px;font-weight:bold;letter-spacing:6px;\
         font-family:Menlo,Consolas,'Courier New',monospace;\">{code_html}</p>\n\
         <p style=\"margin:0 0 16px;\">{action_html}<br>{expiry_html}</p>\n\
         <p style=\"margin:0 0 16px;\">{dont_share_html}</p>\n\
         <p style=\"margin:0;color:#52606d;font-size:14px;\">{not_you_html}</p>\n\
         </div>\n\
         </body>\n\
         </html>\n",
        title = e(&subject),
        org_html = e(&org),
        code_html = e(code),
        action_html = e(&action),
        expiry_html = e(&expiry),
        dont_share_html = e(dont_share),
        not_you_html = e(not_you),
    );

    EmailContent { subject, text, html }.with_logo(msg.logo_url, msg.org_name)
}

/// The text message for `msg`, e.g. "Riverside Clinic: your verification code is 123456. It
/// expires in 10 minutes. Don't share it." A long organization name is shortened so that the
/// message fits one 160-character GSM-7 segment. (A name with characters outside GSM-7, say
/// "Clínica", makes the whole message UCS-2, which the carrier splits into 67-character parts.)
pub fn sms_text(msg: &CodeMessage<'_>) -> String {
    let rest = format!(
        ": your verification code is {}. It expires in {}. Don't share it.",
        msg.code,
        minutes(msg.valid_minutes)
    );
    let budget = SMS_SEPTETS.saturating_sub(septets(&rest));
    let org = fit_septets(&gsm_friendly(&clean_name(msg.org_name)), budget);
    format!("{org}{rest}")
}

/// A security notice to a member: something changed about how they sign in. Notices
/// never carry a code, a secret or a link; they tell the member what happened and
/// whom to call if it was not them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityNotice {
    /// A second factor was added (`method` is a label such as "Authenticator app").
    FactorAdded {
        method: String,
    },
    /// A second factor (or all of them, `method` "all") was removed.
    FactorRemoved {
        method: String,
    },
    RecoveryCodeUsed,
    /// An administrator or support reset the member's two-factor authentication.
    MfaReset,
    /// An administrator allowed one sign-in without 2FA, until `expires` (UTC text).
    BypassGranted {
        expires: String,
    },
    /// The password was reset (through a link).
    PasswordChanged,
    /// The holder changed the password while signed in ("Change password"): their
    /// other sessions ended, the one that changed it stays.
    PasswordChangedWhileSignedIn,
    /// A new recovery code was issued, replacing the previous one.
    RecoveryCodeReplaced,
    /// A second factor was locked after too many wrong answers in a row.
    FactorLocked {
        method: String,
    },
    /// "Change email", to the current address: a change of the sign-in email to
    /// `new_email` (masked) was asked for; nothing changes until it is confirmed.
    EmailChangeRequested {
        new_email: String,
    },
    /// "Change email", to the old address once the change is made: the sign-in email
    /// is now `new_email` (masked).
    EmailChanged {
        new_email: String,
    },
    /// "Change email", to the new address once the change is made.
    EmailChangedToThis,
    /// A sign-in got past the password but not the second factor (too many wrong
    /// answers): someone may know the password. `when` is UTC text, `from` an address.
    PasswordKnown {
        when: String,
        from: String,
    },
    /// A sign-in got past the password and was left at the second factor until it
    /// expired: someone may know the password. `when` is UTC text, `from` an address.
    SignInAbandoned {
        when: String,
        from: String,
    },
}

/// The email for a security notice.
pub fn notice_content(notice: &SecurityNotice, org_name: &str) -> EmailContent {
    let org = truncate_chars(&clean_name(org_name), EMAIL_ORG_MAX_CHARS);
    let (subject, body) = match notice {
        SecurityNotice::FactorAdded { method } => (
            format!("A sign-in method was added to your {org} account"),
            format!("{} was added as a second factor for signing in to {org}.", clean_name(method)),
        ),
        SecurityNotice::FactorRemoved { method } => (
            format!("A sign-in method was removed from your {org} account"),
            if method == "all" {
                format!(
                    "Two-factor authentication was turned off for your {org} account: every second factor was removed."
                )
            } else {
                format!("{} was removed from the second factors of your {org} account.", clean_name(method))
            },
        ),
        SecurityNotice::RecoveryCodeUsed => (
            format!("Your {org} recovery code was used"),
            format!(
                "Your recovery code was just used to sign in to {org}. It no longer works; a new one was shown at sign-in."
            ),
        ),
        SecurityNotice::MfaReset => (
            format!("Two-factor authentication was reset on your {org} account"),
            format!(
                "An administrator reset two-factor authentication on your {org} account: every second factor was removed. You will set it up again at your next sign-in when your organization requires it."
            ),
        ),
        SecurityNotice::BypassGranted { expires } => (
            format!("You may sign in once without two-factor authentication at {org}"),
            format!(
                "An administrator allowed your {org} account to sign in once without a second factor, until {expires}. After that sign-in you will be asked to set up your authenticator app again."
            ),
        ),
        SecurityNotice::PasswordChanged => (
            format!("Your {org} password was changed"),
            format!(
                "The password of your {org} account was just changed, and every session signed in with the old password was ended."
            ),
        ),
        SecurityNotice::PasswordChangedWhileSignedIn => (
            format!("Your {org} password was changed"),
            format!(
                "The password of your {org} account was just changed from its account page. Every other session was signed out, and apps that use your account will ask you to sign in again."
            ),
        ),
        SecurityNotice::RecoveryCodeReplaced => (
            format!("You have a new {org} recovery code"),
            format!(
                "A new recovery code was issued for your {org} account. The previous one no longer works. Keep the new one somewhere safe."
            ),
        ),
        SecurityNotice::FactorLocked { method } => (
            format!("A sign-in method was locked on your {org} account"),
            format!(
                "{} was locked on your {org} account after too many wrong codes in a row. Sign in with another method to unlock it, or ask your clinic's administrator to reset your two-factor authentication.",
                clean_name(method)
            ),
        ),
        SecurityNotice::EmailChangeRequested { new_email } => (
            format!("Change of your {org} sign-in email requested"),
            format!(
                "A change of your sign-in email to {} was requested from your {org} account page. Nothing changes \
                 until the new address is confirmed with the link sent to it; until then you sign in with this \
                 address as before. If it wasn't you, change your password and tell your clinic.",
                clean_name(new_email)
            ),
        ),
        SecurityNotice::EmailChanged { new_email } => (
            format!("Your {org} sign-in email was changed"),
            format!(
                "The sign-in email of your {org} account is now {}: this address no longer signs in. If it wasn't \
                 you, tell your clinic right away.",
                clean_name(new_email)
            ),
        ),
        SecurityNotice::EmailChangedToThis => (
            format!("This is now your {org} sign-in email"),
            format!("This address is now the sign-in email of your {org} account. Use it to sign in from now on."),
        ),
        SecurityNotice::PasswordKnown { when, from } => (
            format!("Someone may know your {org} password"),
            format!(
                "On {when} (UTC), someone signed in to your {org} account with your correct password from {} \
                 but did not get past two-factor authentication: the second-factor code was wrong too many times. \
                 Your account stayed protected. If this wasn't you, change your password now: on the sign-in page \
                 choose \"Forgot your password?\", or use Change password on your account page.",
                clean_name(from),
                when = clean_name(when),
            ),
        ),
        SecurityNotice::SignInAbandoned { when, from } => (
            format!("Someone may know your {org} password"),
            format!(
                "On {when} (UTC), someone entered your correct {org} password from {} and then stopped at \
                 two-factor authentication: the sign-in was never finished. Your account stayed protected. If this \
                 wasn't you, change your password now: on the sign-in page choose \"Forgot your password?\", or use \
                 Change password on your account page. If it was you, you can ignore this message.",
                clean_name(from),
                when = clean_name(when),
            ),
        ),
    };
    let not_you = "If you didn't expect this, contact your clinic's administrator right away.";
    let text = format!("{body}\n\n{not_you}\n");
    let html = html_email(&subject, &format!("<p>{}</p>", escape_html(&body)), not_you);
    EmailContent { subject, text, html }
}

/// A plain HTML email: `body_html` (already escaped) and a quieter closing line.
fn html_email(subject: &str, body_html: &str, closing: &str) -> String {
    let e = escape_html;
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n</head>\n\
         <body style=\"margin:0;padding:24px;font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;\">\n\
         {body_html}\n<p style=\"color:#52606d;font-size:14px;\">{closing}</p>\n</body>\n</html>\n",
        title = e(subject),
        closing = e(closing),
    )
}

/// The invitation to a new account: who invites, where, and the one-time link to
/// choose a password, valid until `expires` (UTC text). The link is the only way in,
/// so it goes to the invited address alone.
pub fn invitation_content(org_name: &str, link: &str, expires: &str) -> EmailContent {
    let org = truncate_chars(&clean_name(org_name), EMAIL_ORG_MAX_CHARS);
    let subject = format!("You're invited to sign in to {org}");
    let intro = format!("You have an account at {org}. Choose your password to start signing in:");
    let after = format!(
        "The link works once, until {expires}. If it has expired, ask your clinic's administrator for a new one."
    );
    let not_you = "If you didn't expect this, you can ignore this email.";
    let text = format!("{intro}\n\n{link}\n\n{after}\n\n{not_you}\n");
    let e = escape_html;
    let body =
        format!("<p>{}</p>\n<p><a href=\"{}\">Choose your password</a></p>\n<p>{}</p>", e(&intro), e(link), e(&after));
    let html = html_email(&subject, &body, not_you);
    EmailContent { subject, text, html }
}

/// A password-reset email: the one-time link to choose a new password, valid until
/// `expires` (UTC text). Whoever holds the link can take over the account, so it goes
/// to the account's own address alone and is never shown to whoever asked for it.
pub fn password_reset_content(org_name: &str, link: &str, expires: &str) -> EmailContent {
    let org = truncate_chars(&clean_name(org_name), EMAIL_ORG_MAX_CHARS);
    let subject = format!("Reset your {org} password");
    let intro = format!("A password reset was requested for your {org} account. Choose a new password here:");
    let after = format!(
        "The link works once, until {expires}. Setting a new password signs you out everywhere; your second factors stay as they are."
    );
    let not_you = "If you didn't ask for this, ignore this email: your password stays the same. Don't forward this \
                   link to anyone, your clinic's administrator included.";
    let text = format!("{intro}\n\n{link}\n\n{after}\n\n{not_you}\n");
    let e = escape_html;
    let body =
        format!("<p>{}</p>\n<p><a href=\"{}\">Choose a new password</a></p>\n<p>{}</p>", e(&intro), e(link), e(&after));
    let html = html_email(&subject, &body, not_you);
    EmailContent { subject, text, html }
}

/// The link that confirms a change of sign-in email, to the new address: valid until
/// `expires` (UTC text). Whoever holds it makes this address the account's sign-in
/// email, so it goes to that address alone.
pub fn email_change_content(org_name: &str, link: &str, expires: &str) -> EmailContent {
    let org = truncate_chars(&clean_name(org_name), EMAIL_ORG_MAX_CHARS);
    let subject = format!("Confirm your new {org} sign-in email");
    let intro =
        format!("Someone asked to make this address the sign-in email of a {org} account. To confirm it, open:");
    let after = format!(
        "The link works once, until {expires}. Nothing changes until you confirm; the account keeps signing in with its current address."
    );
    let not_you = "If you didn't ask for this, ignore this email: nothing changes.";
    let text = format!("{intro}\n\n{link}\n\n{after}\n\n{not_you}\n");
    let e = escape_html;
    let body =
        format!("<p>{}</p>\n<p><a href=\"{}\">Confirm new email</a></p>\n<p>{}</p>", e(&intro), e(link), e(&after));
    let html = html_email(&subject, &body, not_you);
    EmailContent { subject, text, html }
}

/// To a new address that another account already signs in with: the change cannot
/// be made, and there is no link. The person who asked sees the same answer as for a
/// free address, so only this mailbox learns that the address is taken.
pub fn email_change_taken_content(org_name: &str) -> EmailContent {
    let org = truncate_chars(&clean_name(org_name), EMAIL_ORG_MAX_CHARS);
    let subject = format!("Your {org} sign-in email was not changed");
    let body = format!(
        "Someone asked to make this address the sign-in email of a {org} account, but this address already has an \
         account. Nothing was changed. If you asked, sign in with this address, or choose another address for the \
         other account."
    );
    let not_you = "If you didn't ask for this, ignore this email.";
    let text = format!("{body}\n\n{not_you}\n");
    let html = html_email(&subject, &format!("<p>{}</p>", escape_html(&body)), not_you);
    EmailContent { subject, text, html }
}

fn minutes(n: i64) -> String {
    if n == 1 { "1 minute".to_owned() } else { format!("{n} minutes") }
}

/// When a reminder to set up two-factor authentication says setup is due: the date
/// (UTC text) and the time left in words ("7 days", "less than a day").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupDue {
    pub date: String,
    pub left: String,
}

/// The reminder an admin sends a member who has not set up two-factor authentication
/// under the clinic's Mandatory 2FA: that the clinic requires it, by when (`due`, when
/// the member has a grace period left), and that setup happens at their next sign-in
/// at `sign_in_url`. No link but the sign-in page, no secret.
pub fn mfa_reminder_content(org_name: &str, due: Option<&SetupDue>, sign_in_url: &str) -> EmailContent {
    let org = truncate_chars(&clean_name(org_name), EMAIL_ORG_MAX_CHARS);
    let subject = format!("Set up two-factor authentication for {org}");
    let requires = format!("{org} requires two-factor authentication for your account.");
    let when = match due {
        Some(d) => format!(
            "Please set it up by {}: you have {} left. After that you cannot continue signing in until it is set up.",
            clean_name(&d.date),
            clean_name(&d.left)
        ),
        None => "Setup is due now: at your next sign-in you set it up before you can continue.".to_owned(),
    };
    let how = "You will be asked to set it up the next time you sign in. It takes a few minutes; have your phone \
               ready (for an authenticator app or text messages).";
    let where_ = format!("Sign in at: {sign_in_url}");
    let closing = "If you have questions, contact your clinic's administrator.";
    let text = format!("{requires}\n\n{when}\n\n{how}\n\n{where_}\n\n{closing}\n");
    let e = escape_html;
    let body = format!(
        "<p>{}</p>\n<p>{}</p>\n<p>{}</p>\n<p>Sign in at: <a href=\"{}\">{}</a></p>",
        e(&requires),
        e(&when),
        e(how),
        e(sign_in_url),
        e(sign_in_url)
    );
    let html = html_email(&subject, &body, closing);
    EmailContent { subject, text, html }
}

/// Control characters (line breaks included) become spaces, runs of white space one space.
fn clean_name(name: &str) -> String {
    let cleaned = name
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if cleaned.is_empty() { FALLBACK_ORG.to_owned() } else { cleaned }
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let kept: String = s.chars().take(max.saturating_sub(3)).collect();
    format!("{}...", kept.trim_end())
}

/// Typographic punctuation that has a GSM-7 look-alike ("St. Mary’s" → "St. Mary's"), so that
/// a name typed in a word processor does not turn the message into UCS-2.
fn gsm_friendly(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '`' | '\u{00B4}' => out.push('\''),
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{2033}' => out.push('"'),
            '\u{2010}'..='\u{2015}' | '\u{2212}' => out.push('-'),
            '\u{2026}' => out.push_str("..."),
            _ => out.push(c),
        }
    }
    out
}

/// The longest prefix of `s` (plus "..." when cut) that costs at most `budget` septets.
fn fit_septets(s: &str, budget: usize) -> String {
    if septets(s) <= budget {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let cost = char_septets(c);
        if used + cost + 3 > budget {
            break;
        }
        out.push(c);
        used += cost;
    }
    let mut out = out.trim_end().to_owned();
    out.push_str("...");
    out
}

/// Septets `s` takes in GSM-7, counting a character outside the alphabet as one.
fn septets(s: &str) -> usize {
    s.chars().map(char_septets).sum()
}

fn char_septets(c: char) -> usize {
    gsm7_septets(c).unwrap_or(1)
}

/// Septets of `c` in the GSM 03.38 default alphabet: 1 for the basic table, 2 for the extension
/// table (escape + character), `None` when it has no GSM-7 encoding.
fn gsm7_septets(c: char) -> Option<usize> {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENSION: &str = "\u{0C}^{}\\[~]|€";
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Whether all of `s` has a GSM-7 encoding.
#[cfg(test)]
fn is_gsm7(s: &str) -> bool {
    s.chars().all(|c| gsm7_septets(c).is_some())
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_name_what_happened_and_hold_no_secret() {
        let n = notice_content(
            &SecurityNotice::BypassGranted { expires: "2027-01-15 10:00 UTC".into() },
            "Riverside Clinic",
        );
        assert_eq!(n.subject, "You may sign in once without two-factor authentication at Riverside Clinic");
        assert!(n.text.contains("until 2027-01-15 10:00 UTC"), "{}", n.text);
        let r = notice_content(&SecurityNotice::FactorRemoved { method: "all".into() }, "<b>");
        assert!(r.html.contains("&lt;b&gt;") && !r.html.contains("<b>"));
        for n in [
            SecurityNotice::MfaReset,
            SecurityNotice::RecoveryCodeUsed,
            SecurityNotice::FactorAdded { method: "Email".into() },
            SecurityNotice::PasswordChanged,
            SecurityNotice::PasswordChangedWhileSignedIn,
            SecurityNotice::RecoveryCodeReplaced,
            SecurityNotice::FactorLocked { method: "Authenticator app".into() },
        ] {
            let c = notice_content(&n, "Riverside Clinic");
            assert!(!c.text.chars().any(|ch| ch.is_ascii_digit()), "no code-like digits: {}", c.text);
        }
    }

    #[test]
    fn an_abandoned_sign_in_says_when_from_where_and_what_to_do() {
        let n = SecurityNotice::SignInAbandoned { when: "2027-01-15 10:00".into(), from: "203.0.113.9".into() };
        let c = notice_content(&n, "Riverside Clinic");
        assert_eq!(c.subject, "Someone may know your Riverside Clinic password");
        for needle in ["2027-01-15 10:00 (UTC)", "203.0.113.9", "never finished", "Forgot your password?"] {
            assert!(c.text.contains(needle), "{needle}: {}", c.text);
        }
    }

    fn msg<'a>(org_name: &'a str, purpose: CodePurpose) -> CodeMessage<'a> {
        CodeMessage { org_name, code: "123456", valid_minutes: 10, purpose, logo_url: None }
    }

    #[test]
    fn default_subject_names_the_clinic_without_the_code() {
        let c = email_content(&msg("Riverside Clinic", CodePurpose::SignIn), false);
        assert!(!c.html.contains("<img"), "no logo unless the clinic has one");
        assert_eq!(c.subject, "Your Riverside Clinic verification code");
    }

    #[test]
    fn subject_leads_with_the_code_when_configured() {
        let c = email_content(&msg("Riverside Clinic", CodePurpose::SignIn), true);
        assert_eq!(c.subject, "123456 is your Riverside Clinic verification code");
    }

    #[test]
    fn email_says_code_clinic_validity_and_what_to_do_if_it_was_not_you() {
        let c = email_content(&msg("Riverside Clinic", CodePurpose::SignIn), false);
        for body in [&c.text, &c.html] {
            assert!(body.contains("123456"));
            assert!(body.contains("Riverside Clinic"));
            assert!(body.contains("expires 10 minutes after it is sent"));
            assert!(body.contains("administrator"));
        }
        assert!(c.text.contains("Your Authentication Code expires 10 minutes after it is sent."));
        assert!(c.text.contains("If you didn't try to sign in"));
    }

    #[test]
    fn setup_email_asks_to_confirm_the_address() {
        let c = email_content(&msg("Riverside Clinic", CodePurpose::Setup), false);
        assert!(c.text.contains("confirm this email address"));
        assert!(!c.text.contains("finish signing in"));
    }

    #[test]
    fn one_minute_is_singular() {
        let m = CodeMessage { valid_minutes: 1, ..msg("R", CodePurpose::SignIn) };
        assert!(email_content(&m, false).text.contains("expires 1 minute after"));
        assert!(sms_text(&m).contains("expires in 1 minute."));
    }

    #[test]
    fn html_escapes_the_org_name() {
        let c = email_content(&msg("Smith & <Jones> \"Care\"", CodePurpose::SignIn), false);
        assert!(c.html.contains("Smith &amp; &lt;Jones&gt; &quot;Care&quot;"));
        assert!(!c.html.contains("<Jones>"));
        assert!(c.text.contains("Smith & <Jones> \"Care\""));
    }

    #[test]
    fn line_breaks_in_the_org_name_do_not_reach_the_subject() {
        let c = email_content(&msg("Riverside\r\nBcc: x@evil.test", CodePurpose::SignIn), false);
        assert_eq!(c.subject, "Your Riverside Bcc: x@evil.test verification code");
    }

    #[test]
    fn very_long_org_name_is_shortened_in_email() {
        let long = "A".repeat(300);
        let c = email_content(&msg(&long, CodePurpose::SignIn), false);
        assert!(c.subject.len() < 130, "{}", c.subject);
        assert!(c.subject.contains("..."));
    }

    #[test]
    fn empty_org_name_falls_back() {
        assert_eq!(email_content(&msg("  ", CodePurpose::SignIn), false).subject, "Your Clinic Auth verification code");
    }

    #[test]
    fn sms_reads_as_specified() {
        assert_eq!(
            sms_text(&msg("Riverside Clinic", CodePurpose::SignIn)),
            "Riverside Clinic: your verification code is 123456. It expires in 10 minutes. Don't share it."
        );
    }

    #[test]
    fn sms_for_a_normal_name_fits_one_gsm7_segment() {
        let t = sms_text(&msg("Riverside Family Medicine & Pediatrics of Northern Ohio", CodePurpose::SignIn));
        assert!(is_gsm7(&t));
        assert!(septets(&t) <= 160, "{} septets: {t}", septets(&t));
        assert!(t.starts_with("Riverside Family Medicine & Pediatrics of Northern Ohio: your verification code"));
    }

    #[test]
    fn sms_with_very_long_org_name_is_truncated_to_160() {
        let long = "Riverside ".repeat(40);
        let t = sms_text(&msg(&long, CodePurpose::SignIn));
        assert!(septets(&t) <= 160, "{} septets", septets(&t));
        assert!(t.contains("...: your verification code is 123456. It expires in 10 minutes. Don't share it."), "{t}");
    }

    #[test]
    fn sms_counts_extension_characters_twice() {
        let name = "[Clinic] ".repeat(20);
        let t = sms_text(&msg(&name, CodePurpose::SignIn));
        assert!(septets(&t) <= 160, "{} septets", septets(&t));
        assert!(septets(&t) > t.chars().count());
    }

    #[test]
    fn sms_replaces_typographic_apostrophes() {
        let t = sms_text(&msg("St. Mary\u{2019}s \u{2013} Clinic", CodePurpose::SignIn));
        assert!(t.starts_with("St. Mary's - Clinic:"));
        assert!(is_gsm7(&t));
    }

    #[test]
    fn email_content_debug_hides_the_code() {
        let c = email_content(&msg("Riverside Clinic", CodePurpose::SignIn), true);
        assert!(!format!("{c:?}").contains("123456"));
        assert!(!format!("{:?}", msg("R", CodePurpose::SignIn)).contains("123456"));
    }

    #[test]
    fn password_reset_emails_carry_the_link_and_escape_the_name() {
        let c = password_reset_content("<Riverside>\nClinic", "https://auth.example/reset/abc", "2027-01-16 08:00 UTC");
        assert_eq!(c.subject, "Reset your <Riverside> Clinic password");
        assert!(c.text.contains("https://auth.example/reset/abc") && c.text.contains("until 2027-01-16 08:00 UTC"));
        assert!(c.text.contains("If you didn't ask for this"));
        assert!(c.html.contains("href=\"https://auth.example/reset/abc\""));
        assert!(c.html.contains("&lt;Riverside&gt;") && !c.html.contains("<Riverside>"));
    }

    #[test]
    fn email_change_emails_carry_the_link_only_to_the_new_address() {
        let c = email_change_content(
            "<Riverside>",
            "https://auth.example/account/email/confirm?token=abc",
            "2027-01-16 08:00 UTC",
        );
        assert_eq!(c.subject, "Confirm your new <Riverside> sign-in email");
        assert!(
            c.text.contains("https://auth.example/account/email/confirm?token=abc") && c.text.contains("2027-01-16")
        );
        assert!(c.html.contains("href=\"https://auth.example/account/email/confirm?token=abc\""));
        assert!(c.html.contains("&lt;Riverside&gt;") && !c.html.contains("<Riverside>"));
        let taken = email_change_taken_content("Riverside");
        assert!(taken.text.contains("already has an account") && !taken.text.contains("http"), "{}", taken.text);
        let asked =
            notice_content(&SecurityNotice::EmailChangeRequested { new_email: "n•••@new.test".into() }, "Riverside");
        assert!(
            asked.text.contains("n•••@new.test") && asked.text.contains("change your password and tell your clinic")
        );
        assert!(!asked.text.contains("http"), "a notice holds no link: {}", asked.text);
        let done = notice_content(&SecurityNotice::EmailChanged { new_email: "n•••@new.test".into() }, "Riverside");
        assert!(done.text.contains("n•••@new.test"), "{}", done.text);
        let here = notice_content(&SecurityNotice::EmailChangedToThis, "Riverside");
        assert_eq!(here.subject, "This is now your Riverside sign-in email");
    }

    #[test]
    fn invitations_carry_the_link_and_escape_the_name() {
        let c = invitation_content("<Riverside>\nClinic", "https://auth.example/invite/abc", "2027-01-22 08:00 UTC");
        assert_eq!(c.subject, "You're invited to sign in to <Riverside> Clinic");
        assert!(c.text.contains("https://auth.example/invite/abc") && c.text.contains("2027-01-22 08:00 UTC"));
        assert!(c.html.contains("href=\"https://auth.example/invite/abc\""));
        assert!(c.html.contains("&lt;Riverside&gt;") && !c.html.contains("<Riverside>"));
    }

    #[test]
    fn mfa_reminders_say_the_clinic_requires_2fa_by_when_and_where() {
        let due = SetupDue { date: "2027-01-15 10:00 UTC".into(), left: "7 days".into() };
        let m = mfa_reminder_content("Riverside Clinic", Some(&due), "https://auth.example.org/login");
        assert_eq!(m.subject, "Set up two-factor authentication for Riverside Clinic");
        for part in [
            "Riverside Clinic requires two-factor authentication",
            "by 2027-01-15 10:00 UTC",
            "you have 7 days left",
            "next time you sign in",
            "Sign in at: https://auth.example.org/login",
        ] {
            assert!(m.text.contains(part), "{part}: {}", m.text);
        }
        assert!(m.html.contains("href=\"https://auth.example.org/login\""), "{}", m.html);
        // The grace period is over: no date, setup comes first.
        let over = mfa_reminder_content("Riverside Clinic", None, "https://auth.example.org/login");
        assert!(over.text.contains("Setup is due now") && !over.text.contains("UTC"), "{}", over.text);
        // Names are escaped in HTML and cleaned of line breaks.
        let odd = mfa_reminder_content("<b>Clinic\nX</b>", Some(&due), "https://a.example/login");
        assert!(odd.html.contains("&lt;b&gt;Clinic X&lt;/b&gt;") && !odd.html.contains("<b>"), "{}", odd.html);
        assert!(!odd.subject.contains('\n'));
    }

    #[test]
    fn a_clinic_logo_leads_the_html_part_with_the_clinic_name_as_alt_text() {
        let url = "https://auth.example/branding/riverside/logo?v=abc";
        let m = CodeMessage { logo_url: Some(url), ..msg("Riverside \"Family\" Clinic", CodePurpose::SignIn) };
        let c = email_content(&m, false);
        let img = "<img src=\"https://auth.example/branding/riverside/logo?v=abc\" alt=\"Riverside &quot;Family&quot; Clinic\"";
        assert!(c.html.contains(img), "{}", c.html);
        assert!(c.html.find(img) < c.html.find("verification code is"), "the logo comes first");
        assert!(!c.text.contains("<img"));
        let n = notice_content(&SecurityNotice::PasswordChanged, "Riverside").with_logo(Some(url), "Riverside");
        let body = n.html.find("<body").unwrap();
        assert!(
            n.html[body..]
                .contains("<img src=\"https://auth.example/branding/riverside/logo?v=abc\" alt=\"Riverside\"")
        );
        let unchanged = notice_content(&SecurityNotice::PasswordChanged, "Riverside");
        assert_eq!(unchanged.clone().with_logo(None, "Riverside"), unchanged);
    }
}
