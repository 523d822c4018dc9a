//! Codes sent by email or text message, one per account and channel.

use std::str::FromStr;

use clinic_auth_core::{AccountId, CodeChallenge, FactorKind, UnixTime};

use super::sql::Row;
use super::{Db, count, counted, parse_with};
use crate::{NewAuditEvent, StoreResult, StoredCode};

impl Db {
    /// Stores a just-sent code, replacing any earlier one for the account and channel
    /// (and its count of attempts).
    pub(super) async fn put_code(&self, c: &StoredCode, audit: &NewAuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx.query(
            "INSERT INTO code_challenges (account_id, channel, purpose, target, code_hash, sent_at, expires_at, attempts, bound_to)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)
             ON CONFLICT (account_id, channel) DO UPDATE SET purpose = excluded.purpose, target = excluded.target,
               code_hash = excluded.code_hash, sent_at = excluded.sent_at, expires_at = excluded.expires_at, attempts = 0,
               bound_to = excluded.bound_to",
        )
        .bind(c.account_id.to_string())
        .bind(c.channel.as_str())
        .bind(&c.purpose)
        .bind(&c.target)
        .bind(&c.code_hash)
        .bind(c.challenge.sent_at.0)
        .bind(c.challenge.expires_at.0)
        .bind(&c.bound_to)
        .execute()
        .await?;
        self.commit_audited(tx, audit).await
    }

    pub(super) async fn get_code(&self, account: AccountId, channel: FactorKind) -> StoreResult<Option<StoredCode>> {
        let row = self
            .query("SELECT * FROM code_challenges WHERE account_id = $1 AND channel = $2")
            .bind(account.to_string())
            .bind(channel.as_str())
            .fetch_optional()
            .await?;
        row.as_ref().map(code_from_row).transpose()
    }

    /// One statement counts the entry, so concurrent entries are all counted.
    pub(super) async fn count_code_attempt(&self, account: AccountId, channel: FactorKind) -> StoreResult<Option<u32>> {
        let row = self
            .query(
                "UPDATE code_challenges SET attempts = attempts + 1 WHERE account_id = $1 AND channel = $2 RETURNING attempts",
            )
            .bind(account.to_string())
            .bind(channel.as_str())
            .fetch_optional()
            .await?;
        counted(row, "attempts")
    }

    /// The DELETE guarded by the code's hash is the check: of two concurrent uses of
    /// one code, one deletes it and the other finds nothing.
    pub(super) async fn consume_code(
        &self,
        account: AccountId,
        channel: FactorKind,
        code_hash: &str,
        used: Option<(UnixTime, &NewAuditEvent)>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = tx
            .query("DELETE FROM code_challenges WHERE account_id = $1 AND channel = $2 AND code_hash = $3")
            .bind(account.to_string())
            .bind(channel.as_str())
            .bind(code_hash)
            .execute()
            .await?;
        if done != 1 {
            return Ok(false);
        }
        if let Some((now, audit)) = used {
            tx.query("UPDATE factors SET last_used_at = $3 WHERE account_id = $1 AND kind = $2")
                .bind(account.to_string())
                .bind(channel.as_str())
                .bind(now.0)
                .execute()
                .await?;
            self.write_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn delete_code(&self, account: AccountId, channel: FactorKind) -> StoreResult<()> {
        self.query("DELETE FROM code_challenges WHERE account_id = $1 AND channel = $2")
            .bind(account.to_string())
            .bind(channel.as_str())
            .execute()
            .await?;
        Ok(())
    }
}

pub(super) fn code_from_row(row: &Row) -> StoreResult<StoredCode> {
    Ok(StoredCode {
        account_id: parse_with(&row.try_get::<String>("account_id")?, AccountId::parse, "account id")?,
        channel: parse_with(&row.try_get::<String>("channel")?, FactorKind::from_str, "channel")?,
        purpose: row.try_get("purpose")?,
        target: row.try_get("target")?,
        code_hash: row.try_get("code_hash")?,
        challenge: CodeChallenge {
            sent_at: UnixTime(row.try_get("sent_at")?),
            expires_at: UnixTime(row.try_get("expires_at")?),
            attempts: count(row.try_get("attempts")?),
        },
        bound_to: row.try_get("bound_to")?,
    })
}
