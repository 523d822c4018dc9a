//! Security notices by email: sent after the change they report has committed. A
//! notice that cannot be delivered is logged (masked recipient, no content) and
//! never undoes the change.

use clinic_auth_core::Email;
use clinic_auth_notify::{SecurityNotice, notice_content};
use clinic_auth_store::Account;

use crate::App;

pub async fn send(state: &App, account: &Account, notice: SecurityNotice) {
    send_to(state, account, &account.email, notice).await;
}

/// A notice about `account` to `to`, an address that is not (or no longer) the
/// account's own: the old and the new sign-in email of a change of email.
pub async fn send_to(state: &App, account: &Account, to: &Email, notice: SecurityNotice) {
    let brand = crate::branding::message_brand_or_platform(state, account, None).await;
    let content = notice_content(&notice, &brand.name).with_logo(brand.logo_url.as_deref(), &brand.name);
    if let Err(e) = state.senders.email.send_notice(to.as_str(), &content).await {
        tracing::warn!(account = %account.id, error = %e, "security notice not delivered");
    }
}

/// The name emails about `account` go out under: its organization's display name
/// (else its name), or the server's for an account of no organization.
pub(crate) async fn org_name(state: &App, account: &Account) -> String {
    crate::branding::message_brand_or_platform(state, account, None).await.name
}
