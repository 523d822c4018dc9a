//! Second factors: enrolled ones, ones being set up, the recovery code, TOTP steps
//! used, an account's MFA settings, and the one-time bypass an admin grants.

use std::str::FromStr;

use clinic_auth_core::{AccountId, FactorKind, MemberOverride, TokenHash, UnixTime};

use super::accounts::move_stamp;
use super::sessions::insert_session_tx;
use super::sql::{Row, Tx};
use super::{Db, corrupt, parse_with};
use crate::{
    Bypass, Factor, NewAuditEvent, NewFactor, NewSession, PasskeyState, PendingFactor, SealedSecret, StoreResult,
};

impl Db {
    pub(super) async fn set_mfa_override(
        &self,
        id: AccountId,
        value: MemberOverride,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx.query("UPDATE accounts SET mfa_override = $1, updated_at = $2 WHERE id = $3")
            .bind(value.as_str())
            .bind(audit.at.0)
            .bind(id.to_string())
            .execute()
            .await?;
        self.commit_audited(tx, audit).await
    }

    pub(super) async fn set_preferred_factor(&self, id: AccountId, kind: Option<FactorKind>) -> StoreResult<()> {
        self.query("UPDATE accounts SET preferred_factor = $1 WHERE id = $2")
            .bind(kind.map(|k| k.as_str()))
            .bind(id.to_string())
            .execute()
            .await?;
        Ok(())
    }

    pub(super) async fn list_factors(&self, account: AccountId) -> StoreResult<Vec<Factor>> {
        let rows = self
            .query("SELECT * FROM factors WHERE account_id = $1 ORDER BY created_at, id")
            .bind(account.to_string())
            .fetch_all()
            .await?;
        rows.iter().map(factor_from_row).collect()
    }

    /// Saves (or replaces) a factor being set up.
    pub(super) async fn put_pending_factor(&self, p: &PendingFactor) -> StoreResult<()> {
        self.query(
            "INSERT INTO pending_factors (account_id, kind, secret, nonce, key_version, created_at, expires_at, bound_to)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (account_id, kind) DO UPDATE SET secret = excluded.secret, nonce = excluded.nonce,
               key_version = excluded.key_version, created_at = excluded.created_at, expires_at = excluded.expires_at,
               bound_to = excluded.bound_to",
        )
        .bind(p.account_id.to_string())
        .bind(p.kind.as_str())
        .bind(p.secret.ciphertext.clone())
        .bind(p.secret.nonce.clone())
        .bind(p.secret.key_version)
        .bind(p.created_at.0)
        .bind(p.expires_at.0)
        .bind(&p.bound_to)
        .execute()
        .await?;
        Ok(())
    }

    pub(super) async fn get_pending_factor(
        &self,
        account: AccountId,
        kind: FactorKind,
    ) -> StoreResult<Option<PendingFactor>> {
        let row = self
            .query("SELECT * FROM pending_factors WHERE account_id = $1 AND kind = $2")
            .bind(account.to_string())
            .bind(kind.as_str())
            .fetch_optional()
            .await?;
        let Some(row) = row else { return Ok(None) };
        let secret = sealed_from_row(&row)?.ok_or_else(|| corrupt("pending factor secret"))?;
        Ok(Some(PendingFactor {
            account_id: account,
            kind,
            secret,
            created_at: UnixTime(row.try_get("created_at")?),
            expires_at: UnixTime(row.try_get("expires_at")?),
            bound_to: row.try_get("bound_to")?,
        }))
    }

    /// Adds a confirmed factor (replacing one of its kind, passkeys aside) and its
    /// recovery code, clears the pending factor, and moves the account's stamp.
    pub(super) async fn enroll_factor(
        &self,
        f: &NewFactor,
        recovery_code_hash: Option<&str>,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx.query("DELETE FROM pending_factors WHERE account_id = $1 AND kind = $2")
            .bind(f.account_id.to_string())
            .bind(f.kind.as_str())
            .execute()
            .await?;
        if f.kind != FactorKind::Passkey {
            // One factor of each kind (passkeys aside): a new phone or number
            // replaces the old one, whose codes stop working now.
            tx.query("DELETE FROM factors WHERE account_id = $1 AND kind = $2")
                .bind(f.account_id.to_string())
                .bind(f.kind.as_str())
                .execute()
                .await?;
        }
        tx.query(
            "INSERT INTO factors (id, account_id, kind, label, secret, nonce, key_version, last_used_step, created_at, last_used_at, target)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
        )
        .bind(&f.id)
        .bind(f.account_id.to_string())
        .bind(f.kind.as_str())
        .bind(&f.label)
        .bind(f.secret.as_ref().map(|s| s.ciphertext.clone()))
        .bind(f.secret.as_ref().map(|s| s.nonce.clone()))
        .bind(f.secret.as_ref().map(|s| s.key_version))
        .bind(f.last_used_step)
        .bind(f.now.0)
        .bind(f.target.clone())
        .execute()
        .await?;
        if let Some(hash) = recovery_code_hash {
            put_recovery_code(&mut tx, f.account_id, hash, f.now).await?;
        }
        move_stamp(&mut tx, f.account_id, &audit.via, Some(audit.at)).await?;
        self.commit_audited(tx, audit).await
    }

    /// The guard (only a later step than the last one used) is in the UPDATE itself,
    /// so a step is accepted once even when two processes check the same code.
    pub(super) async fn use_totp_step(
        &self,
        factor_id: &str,
        step: i64,
        now: UnixTime,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = tx
            .query(
                "UPDATE factors SET last_used_step = $1, last_used_at = $2
                 WHERE id = $3 AND (last_used_step IS NULL OR last_used_step < $1)",
            )
            .bind(step)
            .bind(now.0)
            .bind(factor_id)
            .execute()
            .await?;
        self.commit_audited_if(tx, done == 1, audit).await
    }

    /// Removes one kind of factor, or (`None`) every factor with the recovery code,
    /// pending factors, preference and failure counts; moves the account's stamp.
    pub(super) async fn remove_factors(
        &self,
        account: AccountId,
        kind: Option<FactorKind>,
        audit: &NewAuditEvent,
    ) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let removed = tx
            .query("DELETE FROM factors WHERE account_id = $1 AND ($2 IS NULL OR kind = $2)")
            .bind(account.to_string())
            .bind(kind.map(|k| k.as_str()))
            .execute()
            .await?;
        if kind.is_none() {
            for sql in [
                "DELETE FROM recovery_codes WHERE account_id = $1",
                "DELETE FROM pending_factors WHERE account_id = $1",
                "UPDATE accounts SET preferred_factor = NULL WHERE id = $1",
                "DELETE FROM factor_failures WHERE account_id = $1",
            ] {
                tx.query(sql).bind(account.to_string()).execute().await?;
            }
        }
        move_stamp(&mut tx, account, &audit.via, Some(audit.at)).await?;
        self.commit_audited(tx, audit).await?;
        Ok(removed)
    }

    pub(super) async fn recovery_code_hash(&self, account: AccountId) -> StoreResult<Option<String>> {
        let row = self
            .query("SELECT code_hash FROM recovery_codes WHERE account_id = $1")
            .bind(account.to_string())
            .fetch_optional()
            .await?;
        Ok(row.map(|r| r.try_get("code_hash")).transpose()?)
    }

    /// The swap is guarded by the stored hash in the UPDATE itself, so a recovery
    /// code is used once even under concurrent use.
    pub(super) async fn replace_recovery_code(
        &self,
        account: AccountId,
        expected: Option<&str>,
        new_hash: &str,
        now: UnixTime,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = match expected {
            Some(old) => {
                tx.query(
                    "UPDATE recovery_codes SET code_hash = $1, created_at = $2 WHERE account_id = $3 AND code_hash = $4",
                )
                .bind(new_hash)
                .bind(now.0)
                .bind(account.to_string())
                .bind(old)
                .execute()
                .await?
            }
            None => put_recovery_code(&mut tx, account, new_hash, now).await?,
        };
        self.commit_audited_if(tx, done == 1, audit).await
    }

    /// Grants (or renews) a one-time bypass; false if the account is unknown.
    pub(super) async fn grant_bypass(&self, id: AccountId, b: &Bypass, audit: &NewAuditEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = tx
            .query(
                "UPDATE accounts SET bypass_granted_at = $1, bypass_expires_at = $2, bypass_granted_by = $3, updated_at = $1
                 WHERE id = $4",
            )
            .bind(b.granted_at.0)
            .bind(b.expires_at.0)
            .bind(b.granted_by.map(|a| a.to_string()))
            .bind(id.to_string())
            .execute()
            .await?;
        if done != 1 {
            return Ok(false);
        }
        move_stamp(&mut tx, id, &audit.via, None).await?;
        self.commit_audited(tx, audit).await?;
        Ok(true)
    }

    /// Uses a still-valid bypass: clears it and every factor, and starts the session
    /// when given, all in one transaction.
    pub(super) async fn use_bypass(
        &self,
        id: AccountId,
        now: UnixTime,
        audit: &NewAuditEvent,
        session: Option<(&NewSession, &TokenHash, &NewAuditEvent)>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        // Only one sign-in can clear a bypass, however many race for it.
        let used = tx
            .query(
                "UPDATE accounts SET bypass_granted_at = NULL, bypass_expires_at = NULL, bypass_granted_by = NULL
                 WHERE id = $1 AND bypass_expires_at > $2",
            )
            .bind(id.to_string())
            .bind(now.0)
            .execute()
            .await?;
        if used != 1 {
            return Ok(false);
        }
        for sql in [
            "DELETE FROM factors WHERE account_id = $1",
            "DELETE FROM recovery_codes WHERE account_id = $1",
            "DELETE FROM pending_factors WHERE account_id = $1",
            "DELETE FROM code_challenges WHERE account_id = $1",
            "UPDATE accounts SET preferred_factor = NULL WHERE id = $1",
            "DELETE FROM factor_failures WHERE account_id = $1",
        ] {
            tx.query(sql).bind(id.to_string()).execute().await?;
        }
        move_stamp(&mut tx, id, &audit.via, Some(audit.at)).await?;
        self.write_audit(&mut tx, audit).await?;
        if let Some((s, flow, signed_in)) = session {
            insert_session_tx(&mut tx, s, flow).await?;
            self.write_audit(&mut tx, signed_in).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

fn sealed_from_row(row: &Row) -> StoreResult<Option<SealedSecret>> {
    let ciphertext: Option<Vec<u8>> = row.try_get("secret")?;
    let nonce: Option<Vec<u8>> = row.try_get("nonce")?;
    let key_version: Option<i64> = row.try_get("key_version")?;
    Ok(match (ciphertext, nonce, key_version) {
        (Some(ciphertext), Some(nonce), Some(key_version)) => Some(SealedSecret { ciphertext, nonce, key_version }),
        _ => None,
    })
}

pub(super) fn factor_from_row(row: &Row) -> StoreResult<Factor> {
    Ok(Factor {
        id: row.try_get("id")?,
        account_id: parse_with(&row.try_get::<String>("account_id")?, AccountId::parse, "account id")?,
        kind: parse_with(&row.try_get::<String>("kind")?, FactorKind::from_str, "factor kind")?,
        label: row.try_get("label")?,
        secret: sealed_from_row(row)?,
        last_used_step: row.try_get("last_used_step")?,
        created_at: UnixTime(row.try_get("created_at")?),
        last_used_at: row.try_get::<Option<i64>>("last_used_at")?.map(UnixTime),
        target: row.try_get("target")?,
        passkey: match row.try_get::<Option<String>>("credential_id")? {
            Some(credential_id) => Some(PasskeyState {
                credential_id,
                sign_count: u32::try_from(row.try_get::<Option<i64>>("sign_count")?.unwrap_or(0))
                    .map_err(|_| corrupt("passkey signature counter"))?,
                backup_eligible: row.try_get("backup_eligible")?,
                backup_state: row.try_get("backup_state")?,
            }),
            None => None,
        },
    })
}

/// Sets the account's recovery code, replacing any earlier one (in the caller's
/// transaction); the rows written.
async fn put_recovery_code(tx: &mut Tx, account: AccountId, hash: &str, now: UnixTime) -> StoreResult<u64> {
    let done = tx
        .query(
            "INSERT INTO recovery_codes (account_id, code_hash, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (account_id) DO UPDATE SET code_hash = excluded.code_hash, created_at = excluded.created_at",
        )
        .bind(account.to_string())
        .bind(hash)
        .bind(now.0)
        .execute()
        .await?;
    Ok(done)
}
