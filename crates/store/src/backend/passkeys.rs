//! Passkeys (factors of kind `passkey`, with their clear parts), and the WebAuthn
//! ceremonies waiting for a response.

use clinic_auth_core::{AccountId, UnixTime};

use super::accounts::move_stamp;
use super::{Db, on_constraint, parse_with};
use crate::{Ceremony, NewAuditEvent, NewPasskey, PasskeyUse, StoreResult};

impl Db {
    pub(super) async fn insert_passkey(&self, p: &NewPasskey, audit: &NewAuditEvent, max: i64) -> StoreResult<bool> {
        let f = &p.factor;
        let mut tx = self.begin().await?;
        // Two devices trusted at once must not both slip under the limit. The
        // account's row is locked first (PostgreSQL's count below would otherwise
        // read a snapshot without the other's new row; SQLite serialises writers
        // anyway), and the limit is checked by the INSERT itself.
        tx.query("UPDATE accounts SET updated_at = updated_at WHERE id = $1")
            .bind(f.account_id.to_string())
            .execute()
            .await?;
        let done = tx
            .query(
                "INSERT INTO factors (id, account_id, kind, label, secret, nonce, key_version, created_at, last_used_at,
                   credential_id, sign_count, backup_eligible, backup_state)
                 SELECT $1, $2, 'passkey', $3, $4, $5, $6, $7, NULL, $8, $9, $10, $11
                 WHERE (SELECT COUNT(*) FROM factors WHERE account_id = $2 AND kind = 'passkey') < $12",
            )
            .bind(&f.id)
            .bind(f.account_id.to_string())
            .bind(&f.label)
            .bind(f.secret.as_ref().map(|s| s.ciphertext.clone()))
            .bind(f.secret.as_ref().map(|s| s.nonce.clone()))
            .bind(f.secret.as_ref().map(|s| s.key_version))
            .bind(f.now.0)
            .bind(&p.state.credential_id)
            .bind(i64::from(p.state.sign_count))
            .bind(p.state.backup_eligible)
            .bind(p.state.backup_state)
            .bind(max)
            .execute()
            .await
            .map_err(|e| on_constraint(e, "passkey", "account"))?;
        if done != 1 {
            return Ok(false);
        }
        move_stamp(&mut tx, f.account_id, &audit.via, Some(audit.at)).await?;
        self.commit_audited(tx, audit).await?;
        Ok(true)
    }

    pub(super) async fn use_passkey(&self, u: &PasskeyUse, audit: &NewAuditEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        // The counter guard is in the UPDATE itself, so two processes accepting
        // the same assertion cannot both succeed.
        let done = tx
            .query(
                "UPDATE factors SET sign_count = $1, backup_state = $2, secret = $3, nonce = $4, key_version = $5,
                   last_used_at = $6
                 WHERE id = $7 AND account_id = $9 AND kind = 'passkey' AND ($8 = 0 OR COALESCE(sign_count, 0) < $1)",
            )
            .bind(i64::from(u.sign_count))
            .bind(u.backup_state)
            .bind(u.sealed.ciphertext.clone())
            .bind(u.sealed.nonce.clone())
            .bind(u.sealed.key_version)
            .bind(u.now.0)
            .bind(&u.factor_id)
            .bind(i64::from(u.counter_must_advance))
            .bind(u.account_id.to_string())
            .execute()
            .await?;
        self.commit_audited_if(tx, done == 1, audit).await
    }

    pub(super) async fn rename_passkey(
        &self,
        account: AccountId,
        factor_id: &str,
        name: &str,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = tx
            .query("UPDATE factors SET label = $1 WHERE id = $2 AND account_id = $3 AND kind = 'passkey'")
            .bind(name)
            .bind(factor_id)
            .bind(account.to_string())
            .execute()
            .await?;
        self.commit_audited_if(tx, done == 1, audit).await
    }

    pub(super) async fn remove_passkey(
        &self,
        account: AccountId,
        factor_id: &str,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = tx
            .query("DELETE FROM factors WHERE id = $1 AND account_id = $2 AND kind = 'passkey'")
            .bind(factor_id)
            .bind(account.to_string())
            .execute()
            .await?;
        if done != 1 {
            return Ok(false);
        }
        // A preference for passkeys means nothing once none is left.
        tx.query(
            "UPDATE accounts SET preferred_factor = NULL WHERE id = $1 AND preferred_factor = 'passkey'
               AND NOT EXISTS (SELECT 1 FROM factors WHERE account_id = $1 AND kind = 'passkey')",
        )
        .bind(account.to_string())
        .execute()
        .await?;
        move_stamp(&mut tx, account, &audit.via, Some(audit.at)).await?;
        self.commit_audited(tx, audit).await?;
        Ok(true)
    }

    /// Saves a ceremony, replacing one under the same key.
    pub(super) async fn put_ceremony(&self, c: &Ceremony) -> StoreResult<()> {
        self.query(
            "INSERT INTO webauthn_ceremonies (ceremony_key, account_id, state, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (ceremony_key) DO UPDATE SET account_id = excluded.account_id, state = excluded.state,
               created_at = excluded.created_at, expires_at = excluded.expires_at",
        )
        .bind(&c.key)
        .bind(c.account_id.to_string())
        .bind(&c.state)
        .bind(c.created_at.0)
        .bind(c.expires_at.0)
        .execute()
        .await
        .map_err(|e| on_constraint(e, "ceremony", "account"))?;
        Ok(())
    }

    pub(super) async fn take_ceremony(&self, key: &str, now: UnixTime) -> StoreResult<Option<Ceremony>> {
        // Deleted as it is read: a second response to the same options finds nothing.
        let row = self
            .query("DELETE FROM webauthn_ceremonies WHERE ceremony_key = $1 RETURNING *")
            .bind(key)
            .fetch_optional()
            .await?;
        let Some(row) = row else { return Ok(None) };
        let c = Ceremony {
            key: row.try_get("ceremony_key")?,
            account_id: parse_with(&row.try_get::<String>("account_id")?, AccountId::parse, "account id")?,
            state: row.try_get("state")?,
            created_at: UnixTime(row.try_get("created_at")?),
            expires_at: UnixTime(row.try_get("expires_at")?),
        };
        Ok((now < c.expires_at).then_some(c))
    }
}
