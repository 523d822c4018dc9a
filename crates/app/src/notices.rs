//! Security notices by email: sent after the change they report has committed. A
//! notice that cannot be delivered is logged (masked recipient, no content) and
//! never undoes the change.

use clinic_auth_notify::{SecurityNotice, notice_content};
use clinic_auth_store::Account;

use crate::App;

pub async fn send(state: &App, account: &Account, notice: SecurityNotice) {
    let org_name = match &account.org_id {
        Some(o) => state.store.get_org(o).await.ok().flatten().map(|o| o.name),
        None => None,
    }
    .unwrap_or_else(|| state.config.platform_name.clone());
    let content = notice_content(&notice, &org_name);
    if let Err(e) = state.senders.email.send_notice(account.email.as_str(), &content).await {
        tracing::warn!(account = %account.id, error = %e, "security notice not delivered");
    }
}
