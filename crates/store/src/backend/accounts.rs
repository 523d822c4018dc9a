//! Accounts, their password links (first-admin setup, invitations, resets), and the
//! security stamp that a change to an account's security state moves on.

use std::str::FromStr;

use clinic_auth_core::{
    AccountId, AccountKind, AccountStatus, Email, FactorKind, MemberOverride, OrgId, Realm, Role, TokenHash, UnixTime,
};

use super::sql::{Row, Tx};
use super::{Db, corrupt, on_constraint, parse_with};
use crate::{Account, Bypass, LinkPurpose, NewAccount, NewAuditEvent, NewPasswordLink, PasswordLink, StoreResult, Via};

impl Db {
    pub(super) async fn insert_account(
        &self,
        a: &NewAccount,
        link: Option<&NewPasswordLink>,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx.query(
            "INSERT INTO accounts (id, kind, realm, email, org_id, role, password_hash, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $8)",
        )
        .bind(a.id.to_string())
        .bind(a.kind.as_str())
        .bind(a.kind.realm().as_str())
        .bind(a.email.as_str())
        .bind(a.org_id.as_ref().map(|o| o.as_str().to_owned()))
        .bind(a.role.map(|r| r.as_str()))
        .bind(a.password_hash.clone())
        .bind(a.now.0)
        .execute()
        .await
        .map_err(|e| on_constraint(e, "an account with this email", "organization"))?;
        if let Some(link) = link {
            insert_link(&mut tx, link).await?;
        }
        self.commit_audited(tx, audit).await
    }

    pub(super) async fn get_account(&self, id: AccountId) -> StoreResult<Option<Account>> {
        let row = self.query("SELECT * FROM accounts WHERE id = $1").bind(id.to_string()).fetch_optional().await?;
        row.as_ref().map(account_from_row).transpose()
    }

    pub(super) async fn find_account(&self, realm: Realm, email: &Email) -> StoreResult<Option<Account>> {
        let row = self
            .query("SELECT * FROM accounts WHERE realm = $1 AND email = $2")
            .bind(realm.as_str())
            .bind(email.as_str())
            .fetch_optional()
            .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    pub(super) async fn count_platform_admins(&self) -> StoreResult<i64> {
        let row = self.query("SELECT COUNT(*) AS n FROM accounts WHERE kind = 'platform_admin'").fetch_one().await?;
        Ok(row.try_get("n")?)
    }

    pub(super) async fn rehash_password(&self, id: AccountId, password_hash: &str, now: UnixTime) -> StoreResult<()> {
        self.query("UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(now.0)
            .bind(id.to_string())
            .execute()
            .await?;
        Ok(())
    }

    /// An organization's members, by email.
    pub(super) async fn list_members(&self, org: &OrgId) -> StoreResult<Vec<Account>> {
        let rows = self
            .query("SELECT * FROM accounts WHERE org_id = $1 AND kind = 'member' ORDER BY email")
            .bind(org.as_str())
            .fetch_all()
            .await?;
        rows.iter().map(account_from_row).collect()
    }

    /// Deactivating an account ends its sessions and sign-ins in flight.
    pub(super) async fn set_account_status(
        &self,
        id: AccountId,
        status: AccountStatus,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = tx
            .query("UPDATE accounts SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(audit.at.0)
            .bind(id.to_string())
            .execute()
            .await?;
        if done != 1 {
            return Ok(false);
        }
        if status == AccountStatus::Deactivated {
            move_stamp(&mut tx, id, &Via::default(), Some(audit.at)).await?;
        }
        self.commit_audited(tx, audit).await?;
        Ok(true)
    }

    pub(super) async fn set_role(&self, id: AccountId, role: Role, audit: &NewAuditEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = tx
            .query("UPDATE accounts SET role = $1, updated_at = $2 WHERE id = $3 AND kind = 'member'")
            .bind(role.as_str())
            .bind(audit.at.0)
            .bind(id.to_string())
            .execute()
            .await?;
        self.commit_audited_if(tx, done == 1, audit).await
    }

    pub(super) async fn insert_password_link(&self, link: &NewPasswordLink, audit: &NewAuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_link(&mut tx, link).await?;
        self.commit_audited(tx, audit).await
    }

    /// Voids the account's unused invitation links and stores `link`, while the
    /// account has no password.
    pub(super) async fn reissue_invitation(&self, link: &NewPasswordLink, audit: &NewAuditEvent) -> StoreResult<bool> {
        let Some(account) = link.account_id else { return Ok(false) };
        let now = link.created_at;
        let mut tx = self.begin().await?;
        // Locks the account's row (PostgreSQL re-checks the condition after a
        // concurrent password change commits), so a link is never issued for an
        // account that has just set its password.
        let open = tx
            .query("UPDATE accounts SET updated_at = updated_at WHERE id = $1 AND password_hash IS NULL")
            .bind(account.to_string())
            .execute()
            .await?;
        if open != 1 {
            return Ok(false);
        }
        tx.query(
            "UPDATE password_links SET expires_at = $1
             WHERE account_id = $2 AND purpose = 'invitation' AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now.0)
        .bind(account.to_string())
        .execute()
        .await?;
        insert_link(&mut tx, link).await?;
        self.commit_audited(tx, audit).await?;
        Ok(true)
    }

    /// Makes a new setup link the only unused one.
    pub(super) async fn replace_setup_link(&self, link: &NewPasswordLink, now: UnixTime) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx.query(
            "UPDATE password_links SET expires_at = $1 WHERE purpose = 'setup' AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now.0)
        .execute()
        .await?;
        insert_link(&mut tx, link).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn get_password_link(&self, hash: &TokenHash) -> StoreResult<Option<PasswordLink>> {
        let row = self
            .query("SELECT purpose, account_id, expires_at, used_at FROM password_links WHERE token_hash = $1")
            .bind(hash.as_str())
            .fetch_optional()
            .await?;
        let Some(row) = row else { return Ok(None) };
        let account_id: Option<String> = row.try_get("account_id")?;
        Ok(Some(PasswordLink {
            purpose: LinkPurpose::parse(&row.try_get::<String>("purpose")?).ok_or_else(|| corrupt("link purpose"))?,
            account_id: account_id.map(|a| parse_with(&a, AccountId::parse, "account id")).transpose()?,
            expires_at: UnixTime(row.try_get("expires_at")?),
            used_at: row.try_get::<Option<i64>>("used_at")?.map(UnixTime),
        }))
    }

    /// Uses an invitation or reset link (once: the UPDATE that marks it used is the
    /// check), sets the password and ends the account's sessions and sign-ins.
    pub(super) async fn set_password_with_link(
        &self,
        hash: &TokenHash,
        account: AccountId,
        password_hash: &str,
        now: UnixTime,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let used = tx
            .query(
                "UPDATE password_links SET used_at = $1
                 WHERE token_hash = $2 AND account_id = $3 AND used_at IS NULL AND expires_at > $1",
            )
            .bind(now.0)
            .bind(hash.as_str())
            .bind(account.to_string())
            .execute()
            .await?;
        if used != 1 {
            return Ok(false);
        }
        // The first password is when the member joined (the grace period of Mandatory
        // 2FA may count from it).
        tx.query(
            "UPDATE accounts SET password_hash = $1, updated_at = $2,
               joined_at = CASE WHEN password_hash IS NULL THEN $2 ELSE joined_at END
             WHERE id = $3",
        )
        .bind(password_hash)
        .bind(now.0)
        .bind(account.to_string())
        .execute()
        .await?;
        // A new password ends every session and sign-in in flight, and voids
        // other outstanding links.
        move_stamp(&mut tx, account, &Via::default(), Some(audit.at)).await?;
        tx.query(
            "UPDATE password_links SET expires_at = $1 WHERE account_id = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now.0)
        .bind(account.to_string())
        .execute()
        .await?;
        self.commit_audited(tx, audit).await?;
        Ok(true)
    }

    /// "Change password": the session that changes it is locked first (a concurrent
    /// "sign out everywhere" either ends it before, and nothing changes, or waits), then
    /// the hash is replaced and the stamp moves on, every other session ending.
    pub(super) async fn change_password(
        &self,
        account: AccountId,
        password_hash: &str,
        keep_session: &TokenHash,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let now = audit.at;
        let mut tx = self.begin().await?;
        let held = tx
            .query("UPDATE sessions SET last_seen_at = last_seen_at WHERE token_hash = $1 AND account_id = $2")
            .bind(keep_session.as_str())
            .bind(account.to_string())
            .execute()
            .await?;
        if held != 1 {
            return Ok(false);
        }
        let changed = tx
            .query("UPDATE accounts SET password_hash = $1, updated_at = $2 WHERE id = $3 AND status = 'active'")
            .bind(password_hash)
            .bind(now.0)
            .bind(account.to_string())
            .execute()
            .await?;
        if changed != 1 {
            return Ok(false);
        }
        let via = Via { flow: None, session: Some(keep_session.clone()) };
        move_stamp(&mut tx, account, &via, Some(audit.at)).await?;
        tx.query(
            "UPDATE password_links SET expires_at = $1 WHERE account_id = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now.0)
        .bind(account.to_string())
        .execute()
        .await?;
        self.commit_audited(tx, audit).await?;
        Ok(true)
    }

    /// Uses the setup link (once) and creates the first platform admin.
    pub(super) async fn create_admin_with_setup_link(
        &self,
        hash: &TokenHash,
        a: &NewAccount,
        now: UnixTime,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let used = tx
            .query(
                "UPDATE password_links SET used_at = $1
                 WHERE token_hash = $2 AND purpose = 'setup' AND used_at IS NULL AND expires_at > $1",
            )
            .bind(now.0)
            .bind(hash.as_str())
            .execute()
            .await?;
        if used != 1 {
            return Ok(false);
        }
        tx.query(
            "INSERT INTO accounts (id, kind, realm, email, org_id, role, password_hash, status, created_at, updated_at)
             VALUES ($1, 'platform_admin', 'staff', $2, NULL, NULL, $3, 'active', $4, $4)",
        )
        .bind(a.id.to_string())
        .bind(a.email.as_str())
        .bind(a.password_hash.clone())
        .bind(now.0)
        .execute()
        .await
        .map_err(|e| on_constraint(e, "an account with this email", "organization"))?;
        self.commit_audited(tx, audit).await?;
        Ok(true)
    }
}

pub(super) fn account_from_row(row: &Row) -> StoreResult<Account> {
    let org_id: Option<String> = row.try_get("org_id")?;
    let role: Option<String> = row.try_get("role")?;
    Ok(Account {
        id: parse_with(&row.try_get::<String>("id")?, AccountId::parse, "account id")?,
        kind: parse_with(&row.try_get::<String>("kind")?, AccountKind::from_str, "account kind")?,
        email: parse_with(&row.try_get::<String>("email")?, Email::parse, "email")?,
        org_id: org_id.map(|o| parse_with(&o, OrgId::parse, "organization id")).transpose()?,
        role: role.map(|r| parse_with(&r, Role::from_str, "role")).transpose()?,
        status: parse_with(&row.try_get::<String>("status")?, AccountStatus::from_str, "status")?,
        password_hash: row.try_get("password_hash")?,
        created_at: UnixTime(row.try_get("created_at")?),
        joined_at: row.try_get::<Option<i64>>("joined_at")?.map(UnixTime),
        mfa_override: parse_with(&row.try_get::<String>("mfa_override")?, MemberOverride::from_str, "MFA override")?,
        preferred_factor: row
            .try_get::<Option<String>>("preferred_factor")?
            .map(|f| parse_with(&f, FactorKind::from_str, "factor kind"))
            .transpose()?,
        bypass: match (
            row.try_get::<Option<i64>>("bypass_granted_at")?,
            row.try_get::<Option<i64>>("bypass_expires_at")?,
        ) {
            (Some(granted_at), Some(expires_at)) => Some(Bypass {
                granted_at: UnixTime(granted_at),
                expires_at: UnixTime(expires_at),
                granted_by: row
                    .try_get::<Option<String>>("bypass_granted_by")?
                    .map(|a| parse_with(&a, AccountId::parse, "account id"))
                    .transpose()?,
            }),
            _ => None,
        },
        security_stamp: row.try_get("security_stamp")?,
    })
}

/// Stores a password link in the caller's transaction.
async fn insert_link(tx: &mut Tx, link: &NewPasswordLink) -> StoreResult<()> {
    tx.query(
        "INSERT INTO password_links (token_hash, purpose, account_id, created_at, expires_at, used_at)
         VALUES ($1, $2, $3, $4, $5, NULL)",
    )
    .bind(link.token_hash.as_str())
    .bind(link.purpose.as_str())
    .bind(link.account_id.map(|a| a.to_string()))
    .bind(link.created_at.0)
    .bind(link.expires_at.0)
    .execute()
    .await?;
    Ok(())
}

/// The account's security state changed (in the caller's transaction): its stamp
/// moves on, its sign-ins in flight end (all but the one in `via`, which takes the
/// new stamp), and with `end_sessions_at` its sessions end too (all but the one in
/// `via`). The apps each ended session signed into are queued a back-channel logout
/// in the same transaction, so no way of ending sessions can forget to tell them.
pub(super) async fn move_stamp(
    tx: &mut Tx,
    account: AccountId,
    via: &Via,
    end_sessions_at: Option<UnixTime>,
) -> StoreResult<()> {
    let row = tx
        .query("UPDATE accounts SET security_stamp = security_stamp + 1 WHERE id = $1 RETURNING security_stamp")
        .bind(account.to_string())
        .fetch_optional()
        .await?;
    let Some(row) = row else { return Ok(()) };
    let stamp: i64 = row.try_get("security_stamp")?;
    let keep_flow = via.flow.as_ref().map(|f| f.as_str()).unwrap_or("");
    tx.query("DELETE FROM login_flows WHERE account_id = $1 AND id_hash <> $2")
        .bind(account.to_string())
        .bind(keep_flow)
        .execute()
        .await?;
    tx.query("UPDATE login_flows SET account_id = $1, stamp = $2 WHERE id_hash = $3")
        .bind(account.to_string())
        .bind(stamp)
        .bind(keep_flow)
        .execute()
        .await?;
    if let Some(now) = end_sessions_at {
        let keep_session = via.session.as_ref().map(|s| s.as_str()).unwrap_or("");
        queue_logouts_for_ended_sessions(tx, account, keep_session, now).await?;
        tx.query("DELETE FROM sessions WHERE account_id = $1 AND token_hash <> $2")
            .bind(account.to_string())
            .bind(keep_session)
            .execute()
            .await?;
    }
    Ok(())
}

/// Queues a back-channel logout for every app (with a back-channel URI) that a
/// session of `account` other than `keep_session` signed into. A logout already
/// pending for the same app and session is left as it is.
async fn queue_logouts_for_ended_sessions(
    tx: &mut Tx,
    account: AccountId,
    keep_session: &str,
    now: UnixTime,
) -> StoreResult<()> {
    let rows = tx
        .query(
            "SELECT DISTINCT g.client_id, g.sid FROM oidc_grants g
             JOIN sessions s ON s.sid = g.sid AND s.account_id = g.account_id
             JOIN oidc_clients c ON c.client_id = g.client_id
             WHERE g.account_id = $1 AND s.token_hash <> $2 AND c.backchannel_logout_uri IS NOT NULL",
        )
        .bind(account.to_string())
        .bind(keep_session)
        .fetch_all()
        .await?;
    for row in rows {
        let client_id: String = row.try_get("client_id")?;
        let sid: String = row.try_get("sid")?;
        tx.query(
            "INSERT INTO oidc_logouts (id, client_id, account_id, sid, attempts, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, 0, $5, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(uuid::Uuid::new_v4().simple().to_string())
        .bind(client_id)
        .bind(account.to_string())
        .bind(sid)
        .bind(now.0)
        .execute()
        .await?;
    }
    Ok(())
}
