//! Security notices by email: sent after the change they report has committed. A
//! notice that cannot be delivered is logged (masked recipient, no content) and
//! never undoes the change.

use clinic_auth_notify::{SecurityNotice, notice_content};
use clinic_auth_store::Account;

use crate::App;

pub async fn send(state: &App, account: &Account, notice: SecurityNotice) {
    let brand = crate::branding::message_brand_or_platform(state, account, None).await;
    let content = notice_content(&notice, &brand.name).with_logo(brand.logo_url.as_deref(), &brand.name);
    if let Err(e) = state.senders.email.send_notice(account.email.as_str(), &content).await {
        tracing::warn!(account = %account.id, error = %e, "security notice not delivered");
    }
}
