//! "Change email": changes of an account's sign-in email waiting for the link sent to
//! the new address, and the transaction that makes one.

use clinic_auth_core::{AccountId, Email, TokenHash, UnixTime};

use super::sql::Row;
use super::{Db, parse_with};
use crate::{EmailChange, EmailChangeConfirmed, NewAuditEvent, NewEmailChange, StoreResult};

impl Db {
    /// The account's row is locked first, so two requests of one account are stored
    /// one after the other and only the later one stays usable.
    pub(super) async fn insert_email_change(&self, c: &NewEmailChange, audit: &NewAuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx.query("UPDATE accounts SET updated_at = updated_at WHERE id = $1")
            .bind(c.account_id.to_string())
            .execute()
            .await?;
        tx.query(
            "UPDATE email_changes SET expires_at = $1 WHERE account_id = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(c.created_at.0)
        .bind(c.account_id.to_string())
        .execute()
        .await?;
        tx.query(
            "INSERT INTO email_changes (token_hash, account_id, new_email, old_email, stamp, created_at, expires_at, used_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(c.token_hash.as_str())
        .bind(c.account_id.to_string())
        .bind(c.new_email.as_str())
        .bind(c.old_email.as_str())
        .bind(c.stamp)
        .bind(c.created_at.0)
        .bind(c.expires_at.0)
        .execute()
        .await?;
        self.commit_audited(tx, audit).await
    }

    pub(super) async fn get_email_change(&self, hash: &TokenHash) -> StoreResult<Option<EmailChange>> {
        let row = self
            .query("SELECT * FROM email_changes WHERE token_hash = $1")
            .bind(hash.as_str())
            .fetch_optional()
            .await?;
        row.as_ref().map(email_change_from_row).transpose()
    }

    pub(super) async fn pending_email_change(
        &self,
        account: AccountId,
        now: UnixTime,
    ) -> StoreResult<Option<EmailChange>> {
        let row = self
            .query(
                "SELECT * FROM email_changes WHERE account_id = $1 AND used_at IS NULL AND expires_at > $2
                 ORDER BY created_at DESC, token_hash LIMIT 1",
            )
            .bind(account.to_string())
            .bind(now.0)
            .fetch_optional()
            .await?;
        row.as_ref().map(email_change_from_row).transpose()
    }

    pub(super) async fn cancel_email_change(&self, account: AccountId, audit: &NewAuditEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let ended = tx
            .query("UPDATE email_changes SET expires_at = $1 WHERE account_id = $2 AND used_at IS NULL AND expires_at > $1")
            .bind(audit.at.0)
            .bind(account.to_string())
            .execute()
            .await?;
        self.commit_audited_if(tx, ended > 0, audit).await
    }

    /// Marking the link used is the first statement, so of two confirms of one link
    /// the second finds it used (PostgreSQL re-checks the row after the first
    /// commits). The account's email changes only under the conditions of the
    /// request; a unique-key violation (another account of the realm took the
    /// address, perhaps a moment ago) rolls everything back.
    pub(super) async fn confirm_email_change(
        &self,
        hash: &TokenHash,
        now: UnixTime,
        audit: &NewAuditEvent,
    ) -> StoreResult<EmailChangeConfirmed> {
        let mut tx = self.begin().await?;
        let row = tx
            .query(
                "UPDATE email_changes SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
                 RETURNING account_id, new_email, old_email, stamp",
            )
            .bind(now.0)
            .bind(hash.as_str())
            .fetch_optional()
            .await?;
        let Some(row) = row else { return Ok(EmailChangeConfirmed::Unusable) };
        let account: String = row.try_get("account_id")?;
        let new_email: String = row.try_get("new_email")?;
        let old_email: String = row.try_get("old_email")?;
        let stamp: i64 = row.try_get("stamp")?;
        let changed = tx
            .query(
                "UPDATE accounts SET email = $1, updated_at = $2
                 WHERE id = $3 AND email = $4 AND security_stamp = $5 AND status = 'active'",
            )
            .bind(new_email.as_str())
            .bind(now.0)
            .bind(account.as_str())
            .bind(old_email.as_str())
            .bind(stamp)
            .execute()
            .await;
        match changed {
            Ok(1) => {}
            Ok(_) => return Ok(EmailChangeConfirmed::AccountChanged),
            Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
                return Ok(EmailChangeConfirmed::AddressTaken);
            }
            Err(e) => return Err(e.into()),
        }
        // Links to set a password went to the old address: none works any more.
        tx.query(
            "UPDATE password_links SET expires_at = $1 WHERE account_id = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now.0)
        .bind(account.as_str())
        .execute()
        .await?;
        self.commit_audited(tx, audit).await?;
        Ok(EmailChangeConfirmed::Changed)
    }
}

fn email_change_from_row(row: &Row) -> StoreResult<EmailChange> {
    Ok(EmailChange {
        account_id: parse_with(&row.try_get::<String>("account_id")?, AccountId::parse, "account id")?,
        new_email: parse_with(&row.try_get::<String>("new_email")?, Email::parse, "email")?,
        old_email: parse_with(&row.try_get::<String>("old_email")?, Email::parse, "email")?,
        stamp: row.try_get("stamp")?,
        created_at: UnixTime(row.try_get("created_at")?),
        expires_at: UnixTime(row.try_get("expires_at")?),
        used_at: row.try_get::<Option<i64>>("used_at")?.map(UnixTime),
    })
}
