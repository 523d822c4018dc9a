//! OpenID Connect: registered apps, signing keys, authorization requests waiting for
//! their sign-in, grants with their codes and tokens, and back-channel logouts.
//!
//! A grant's row is locked (a no-op UPDATE guarded by `revoked_at IS NULL`, which
//! works in both databases) before tokens are stored for it, so a revocation either
//! comes first and no token is stored, or comes after and deletes them.

use std::str::FromStr;

use clinic_auth_core::{AccountId, OrgId, Realm, TokenHash, UnixTime};

use super::sql::{Row, Tx};
use super::{Db, corrupt, count, on_constraint, parse_with};
use crate::{
    AuthorizationRequest, CodeTaken, LogoutDelivery, NewAuditEvent, NewOidcToken, OidcClient, OidcCode, OidcGrant,
    OidcToken, OidcTokenKind, PendingLogout, RefreshTaken, SigningKey, StoreError, StoreResult,
};

impl Db {
    pub(super) async fn insert_oidc_client(&self, c: &OidcClient, audit: &NewAuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx.query(
            "INSERT INTO oidc_clients (client_id, name, secret_hash, org_id, realm, require_mfa, redirect_uris,
               post_logout_redirect_uris, backchannel_logout_uri, id_token_alg, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&c.client_id)
        .bind(&c.name)
        .bind(c.secret_hash.clone())
        .bind(c.org_id.as_ref().map(|o| o.as_str().to_owned()))
        .bind(c.realm.as_str())
        .bind(c.require_mfa)
        .bind(to_json(&c.redirect_uris)?)
        .bind(to_json(&c.post_logout_redirect_uris)?)
        .bind(c.backchannel_logout_uri.clone())
        .bind(&c.id_token_alg)
        .bind(c.created_at.0)
        .execute()
        .await
        .map_err(|e| on_constraint(e, "client", "organization"))?;
        self.commit_audited(tx, audit).await
    }

    pub(super) async fn get_oidc_client(&self, client_id: &str) -> StoreResult<Option<OidcClient>> {
        let row =
            self.query("SELECT * FROM oidc_clients WHERE client_id = $1").bind(client_id).fetch_optional().await?;
        row.as_ref().map(client_from_row).transpose()
    }

    pub(super) async fn list_oidc_clients(&self) -> StoreResult<Vec<OidcClient>> {
        let rows = self.query("SELECT * FROM oidc_clients ORDER BY name, client_id").fetch_all().await?;
        rows.iter().map(client_from_row).collect()
    }

    /// With `retire`, the keys that still sign stop before the new one is stored, in
    /// one transaction: there is never a moment with two current keys, or none.
    pub(super) async fn add_signing_key(
        &self,
        k: &SigningKey,
        retire: Option<(UnixTime, UnixTime)>,
        audit: Option<&NewAuditEvent>,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        if let Some((at, until)) = retire {
            tx.query("UPDATE oidc_signing_keys SET retired_at = $1, publish_until = $2 WHERE retired_at IS NULL")
                .bind(at.0)
                .bind(until.0)
                .execute()
                .await?;
        }
        tx.query(
            "INSERT INTO oidc_signing_keys (kid, alg, private_sealed, public_jwk, created_at, retired_at, publish_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.private_sealed)
        .bind(&k.public_jwk)
        .bind(k.created_at.0)
        .bind(k.retired_at.map(|t| t.0))
        .bind(k.publish_until.map(|t| t.0))
        .execute()
        .await
        .map_err(|e| on_constraint(e, "signing key", "signing key"))?;
        if let Some(audit) = audit {
            self.write_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn list_signing_keys(&self, now: UnixTime) -> StoreResult<Vec<SigningKey>> {
        let rows = self
            .query(
                "SELECT * FROM oidc_signing_keys WHERE publish_until IS NULL OR publish_until > $1
                 ORDER BY CASE WHEN retired_at IS NULL THEN 0 ELSE 1 END, created_at DESC, kid",
            )
            .bind(now.0)
            .fetch_all()
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SigningKey {
                    kid: row.try_get("kid")?,
                    alg: row.try_get("alg")?,
                    private_sealed: row.try_get("private_sealed")?,
                    public_jwk: row.try_get("public_jwk")?,
                    created_at: UnixTime(row.try_get("created_at")?),
                    retired_at: row.try_get::<Option<i64>>("retired_at")?.map(UnixTime),
                    publish_until: row.try_get::<Option<i64>>("publish_until")?.map(UnixTime),
                })
            })
            .collect()
    }

    /// Saves a request, replacing one under the same id.
    pub(super) async fn put_authorization_request(&self, id: &TokenHash, r: &AuthorizationRequest) -> StoreResult<()> {
        self.query(
            "INSERT INTO oidc_requests (id_hash, client_id, params, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id_hash) DO UPDATE SET client_id = excluded.client_id, params = excluded.params,
               created_at = excluded.created_at, expires_at = excluded.expires_at",
        )
        .bind(id.as_str())
        .bind(&r.client_id)
        .bind(&r.params)
        .bind(r.created_at.0)
        .bind(r.expires_at.0)
        .execute()
        .await?;
        Ok(())
    }

    /// The request as stored, expired or not (the caller checks `expires_at`).
    pub(super) async fn get_authorization_request(&self, id: &TokenHash) -> StoreResult<Option<AuthorizationRequest>> {
        let row = self
            .query("SELECT client_id, params, created_at, expires_at FROM oidc_requests WHERE id_hash = $1")
            .bind(id.as_str())
            .fetch_optional()
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(AuthorizationRequest {
            client_id: row.try_get("client_id")?,
            params: row.try_get("params")?,
            created_at: UnixTime(row.try_get("created_at")?),
            expires_at: UnixTime(row.try_get("expires_at")?),
        }))
    }

    pub(super) async fn delete_authorization_request(&self, id: &TokenHash) -> StoreResult<()> {
        self.query("DELETE FROM oidc_requests WHERE id_hash = $1").bind(id.as_str()).execute().await?;
        Ok(())
    }

    pub(super) async fn insert_oidc_grant(
        &self,
        g: &OidcGrant,
        c: &OidcCode,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx.query(
            "INSERT INTO oidc_grants (id, client_id, account_id, sid, stamp, scope, nonce, auth_time, proved, created_at,
               revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&g.id)
        .bind(&g.client_id)
        .bind(g.account_id.to_string())
        .bind(&g.sid)
        .bind(g.stamp)
        .bind(&g.scope)
        .bind(g.nonce.clone())
        .bind(g.auth_time.0)
        .bind(&g.proved)
        .bind(g.created_at.0)
        .bind(g.revoked_at.map(|t| t.0))
        .execute()
        .await
        .map_err(|e| on_constraint(e, "grant", "client or account"))?;
        tx.query(
            "INSERT INTO oidc_codes (code_hash, grant_id, redirect_uri, code_challenge, expires_at, used_at)
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(c.code_hash.as_str())
        .bind(&c.grant_id)
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(c.expires_at.0)
        .execute()
        .await
        .map_err(|e| on_constraint(e, "code", "grant"))?;
        self.commit_audited(tx, audit).await
    }

    /// The UPDATE that marks the code used is the check: of two racing presentations
    /// one changes the row and the other finds it used. Expiry is the caller's to
    /// check (an expired code presented again is still a replay).
    pub(super) async fn take_oidc_code(&self, code_hash: &TokenHash, now: UnixTime) -> StoreResult<CodeTaken> {
        let mut tx = self.begin().await?;
        let fresh = tx
            .query(
                "UPDATE oidc_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL
                 RETURNING grant_id, redirect_uri, code_challenge, expires_at",
            )
            .bind(code_hash.as_str())
            .bind(now.0)
            .fetch_optional()
            .await?;
        let taken = match fresh {
            Some(row) => {
                let code = OidcCode {
                    code_hash: code_hash.clone(),
                    grant_id: row.try_get("grant_id")?,
                    redirect_uri: row.try_get("redirect_uri")?,
                    code_challenge: row.try_get("code_challenge")?,
                    expires_at: UnixTime(row.try_get("expires_at")?),
                };
                let grant = grant_by_id(&mut tx, &code.grant_id).await?.ok_or_else(|| corrupt("code's grant"))?;
                CodeTaken::Fresh { code, grant }
            }
            None => {
                let row = tx
                    .query(
                        "SELECT g.* FROM oidc_codes c JOIN oidc_grants g ON g.id = c.grant_id WHERE c.code_hash = $1",
                    )
                    .bind(code_hash.as_str())
                    .fetch_optional()
                    .await?;
                match row {
                    Some(row) => CodeTaken::Reused { grant: grant_from_row(&row)? },
                    None => CodeTaken::Unknown,
                }
            }
        };
        tx.commit().await?;
        Ok(taken)
    }

    pub(super) async fn issue_oidc_tokens(
        &self,
        grant_id: &str,
        tokens: &[NewOidcToken],
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        if !lock_live_grant(&mut tx, grant_id).await? {
            return Ok(false);
        }
        insert_tokens(&mut tx, grant_id, tokens).await?;
        self.commit_audited(tx, audit).await?;
        Ok(true)
    }

    /// The token as stored, with its grant, expired or revoked or not (the caller
    /// checks).
    pub(super) async fn get_oidc_token(&self, token_hash: &TokenHash) -> StoreResult<Option<OidcToken>> {
        let row = self
            .query(
                "SELECT t.kind AS token_kind, t.expires_at AS token_expires_at, t.used_at AS token_used_at, g.*
                 FROM oidc_tokens t JOIN oidc_grants g ON g.id = t.grant_id WHERE t.token_hash = $1",
            )
            .bind(token_hash.as_str())
            .fetch_optional()
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(OidcToken {
            kind: OidcTokenKind::parse(&row.try_get::<String>("token_kind")?).ok_or_else(|| corrupt("token kind"))?,
            expires_at: UnixTime(row.try_get("token_expires_at")?),
            used_at: row.try_get::<Option<i64>>("token_used_at")?.map(UnixTime),
            grant: grant_from_row(&row)?,
        }))
    }

    /// The UPDATE that marks the token used is the check, as for codes; the grant is
    /// locked first so that a revocation cannot miss the successors. Expiry is the
    /// caller's to check.
    pub(super) async fn rotate_refresh_token(
        &self,
        token_hash: &TokenHash,
        now: UnixTime,
        new_tokens: &[NewOidcToken],
        audit: &NewAuditEvent,
    ) -> StoreResult<RefreshTaken> {
        let mut tx = self.begin().await?;
        tx.query(
            "UPDATE oidc_grants SET revoked_at = revoked_at WHERE revoked_at IS NULL
               AND id = (SELECT grant_id FROM oidc_tokens WHERE token_hash = $1)",
        )
        .bind(token_hash.as_str())
        .execute()
        .await?;
        let rotated = tx
            .query(
                "UPDATE oidc_tokens SET used_at = $2
                 WHERE token_hash = $1 AND kind = 'refresh' AND used_at IS NULL
                   AND grant_id IN (SELECT id FROM oidc_grants WHERE revoked_at IS NULL)
                 RETURNING grant_id",
            )
            .bind(token_hash.as_str())
            .bind(now.0)
            .fetch_optional()
            .await?;
        if let Some(row) = rotated {
            let grant_id: String = row.try_get("grant_id")?;
            insert_tokens(&mut tx, &grant_id, new_tokens).await?;
            let grant = grant_by_id(&mut tx, &grant_id).await?.ok_or_else(|| corrupt("token's grant"))?;
            self.commit_audited(tx, audit).await?;
            return Ok(RefreshTaken::Rotated { grant });
        }
        // Used before, or its grant was revoked: a replay. Nothing is stored.
        let row = tx
            .query(
                "SELECT g.* FROM oidc_tokens t JOIN oidc_grants g ON g.id = t.grant_id
                 WHERE t.token_hash = $1 AND t.kind = 'refresh'",
            )
            .bind(token_hash.as_str())
            .fetch_optional()
            .await?;
        Ok(match row {
            Some(row) => RefreshTaken::Reused { grant: grant_from_row(&row)? },
            None => RefreshTaken::Unknown,
        })
    }

    /// The grant row is kept, revoked, so a later replay of its code or refresh token
    /// is still recognised; its codes and tokens go.
    pub(super) async fn revoke_oidc_grant(
        &self,
        grant_id: &str,
        now: UnixTime,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = tx
            .query("UPDATE oidc_grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(grant_id)
            .bind(now.0)
            .execute()
            .await?;
        if done != 1 {
            return Ok(false);
        }
        tx.query("DELETE FROM oidc_tokens WHERE grant_id = $1").bind(grant_id).execute().await?;
        tx.query("DELETE FROM oidc_codes WHERE grant_id = $1").bind(grant_id).execute().await?;
        self.commit_audited(tx, audit).await?;
        Ok(true)
    }

    /// Only an access token: a refresh token is revoked by ending its grant.
    pub(super) async fn delete_oidc_token(&self, token_hash: &TokenHash, audit: &NewAuditEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = tx
            .query("DELETE FROM oidc_tokens WHERE token_hash = $1 AND kind = 'access'")
            .bind(token_hash.as_str())
            .execute()
            .await?;
        self.commit_audited_if(tx, done == 1, audit).await
    }

    pub(super) async fn list_oidc_grants(
        &self,
        account: AccountId,
        sid: Option<&str>,
        since: UnixTime,
    ) -> StoreResult<Vec<OidcGrant>> {
        let rows = self
            .query(
                "SELECT * FROM oidc_grants WHERE account_id = $1 AND ($2 IS NULL OR sid = $2) AND created_at >= $3
                 ORDER BY created_at DESC, id DESC",
            )
            .bind(account.to_string())
            .bind(sid)
            .bind(since.0)
            .fetch_all()
            .await?;
        rows.iter().map(grant_from_row).collect()
    }

    /// The unique index on pending (client, sid) pairs makes a duplicate a no-op,
    /// even when two sign-outs of one session race.
    pub(super) async fn enqueue_logouts(&self, logouts: &[PendingLogout]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        for l in logouts {
            tx.query(
                "INSERT INTO oidc_logouts (id, client_id, account_id, sid, attempts, next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&l.id)
            .bind(&l.client_id)
            .bind(l.account_id.to_string())
            .bind(&l.sid)
            .bind(i64::from(l.attempts))
            .bind(l.created_at.0)
            .execute()
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn due_logouts(&self, now: UnixTime, limit: u32) -> StoreResult<Vec<PendingLogout>> {
        let rows = self
            .query(
                "SELECT id, client_id, account_id, sid, attempts, created_at FROM oidc_logouts
                 WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= $1
                 ORDER BY created_at, id LIMIT $2",
            )
            .bind(now.0)
            .bind(i64::from(limit))
            .fetch_all()
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingLogout {
                    id: row.try_get("id")?,
                    client_id: row.try_get("client_id")?,
                    account_id: parse_with(&row.try_get::<String>("account_id")?, AccountId::parse, "account id")?,
                    sid: row.try_get("sid")?,
                    attempts: count(row.try_get("attempts")?),
                    created_at: UnixTime(row.try_get("created_at")?),
                })
            })
            .collect()
    }

    /// One UPDATE decides which instance sends a due logout.
    pub(super) async fn claim_logout(&self, id: &str, now: UnixTime, lease_until: UnixTime) -> StoreResult<bool> {
        let n = self
            .query(
                "UPDATE oidc_logouts SET next_attempt_at = $3
                 WHERE id = $1 AND next_attempt_at <= $2 AND delivered_at IS NULL AND gave_up_at IS NULL",
            )
            .bind(id)
            .bind(now.0)
            .bind(lease_until.0)
            .execute()
            .await?;
        Ok(n == 1)
    }

    /// Only a logout still queued changes: a late outcome never reopens one that was
    /// delivered or given up.
    pub(super) async fn finish_logout(
        &self,
        id: &str,
        outcome: LogoutDelivery,
        now: UnixTime,
        audit: Option<&NewAuditEvent>,
    ) -> StoreResult<()> {
        let (delivered_at, gave_up_at, next_attempt_at) = match outcome {
            LogoutDelivery::Delivered => (Some(now.0), None, None),
            LogoutDelivery::RetryAt(at) => (None, None, Some(at.0)),
            LogoutDelivery::GaveUp => (None, Some(now.0), None),
        };
        let mut tx = self.begin().await?;
        tx.query(
            "UPDATE oidc_logouts SET attempts = attempts + 1, delivered_at = $2, gave_up_at = $3,
               next_attempt_at = COALESCE($4, next_attempt_at)
             WHERE id = $1 AND delivered_at IS NULL AND gave_up_at IS NULL",
        )
        .bind(id)
        .bind(delivered_at)
        .bind(gave_up_at)
        .bind(next_attempt_at)
        .execute()
        .await?;
        if let Some(audit) = audit {
            self.write_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Expired requests, codes and tokens, and logouts finished more than a day ago.
    pub(super) async fn purge_expired_oidc(&self, now: UnixTime) -> StoreResult<u64> {
        let mut n = 0;
        n += self.query("DELETE FROM oidc_requests WHERE expires_at < $1").bind(now.0).execute().await?;
        n += self.query("DELETE FROM oidc_codes WHERE expires_at < $1").bind(now.0).execute().await?;
        n += self.query("DELETE FROM oidc_tokens WHERE expires_at < $1").bind(now.0).execute().await?;
        n += self
            .query("DELETE FROM oidc_logouts WHERE delivered_at < $1 OR gave_up_at < $1")
            .bind(now.0 - 24 * 3600)
            .execute()
            .await?;
        Ok(n)
    }
}

/// Locks a grant that is not revoked (PostgreSQL re-checks the condition after a
/// concurrent revocation commits); false when it is revoked or gone.
async fn lock_live_grant(tx: &mut Tx, grant_id: &str) -> StoreResult<bool> {
    let n = tx
        .query("UPDATE oidc_grants SET revoked_at = revoked_at WHERE id = $1 AND revoked_at IS NULL")
        .bind(grant_id)
        .execute()
        .await?;
    Ok(n == 1)
}

async fn insert_tokens(tx: &mut Tx, grant_id: &str, tokens: &[NewOidcToken]) -> StoreResult<()> {
    for t in tokens {
        tx.query(
            "INSERT INTO oidc_tokens (token_hash, grant_id, kind, expires_at, used_at) VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(t.token_hash.as_str())
        .bind(grant_id)
        .bind(t.kind.as_str())
        .bind(t.expires_at.0)
        .execute()
        .await
        .map_err(|e| on_constraint(e, "token", "grant"))?;
    }
    Ok(())
}

async fn grant_by_id(tx: &mut Tx, id: &str) -> StoreResult<Option<OidcGrant>> {
    let row = tx.query("SELECT * FROM oidc_grants WHERE id = $1").bind(id).fetch_optional().await?;
    row.as_ref().map(grant_from_row).transpose()
}

fn grant_from_row(row: &Row) -> StoreResult<OidcGrant> {
    Ok(OidcGrant {
        id: row.try_get("id")?,
        client_id: row.try_get("client_id")?,
        account_id: parse_with(&row.try_get::<String>("account_id")?, AccountId::parse, "account id")?,
        sid: row.try_get("sid")?,
        stamp: row.try_get("stamp")?,
        scope: row.try_get("scope")?,
        nonce: row.try_get("nonce")?,
        auth_time: UnixTime(row.try_get("auth_time")?),
        proved: row.try_get("proved")?,
        created_at: UnixTime(row.try_get("created_at")?),
        revoked_at: row.try_get::<Option<i64>>("revoked_at")?.map(UnixTime),
    })
}

fn client_from_row(row: &Row) -> StoreResult<OidcClient> {
    let org_id: Option<String> = row.try_get("org_id")?;
    Ok(OidcClient {
        client_id: row.try_get("client_id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        org_id: org_id.map(|o| parse_with(&o, OrgId::parse, "organization id")).transpose()?,
        realm: parse_with(&row.try_get::<String>("realm")?, Realm::from_str, "realm")?,
        require_mfa: row.try_get("require_mfa")?,
        redirect_uris: from_json(&row.try_get::<String>("redirect_uris")?, "redirect URIs")?,
        post_logout_redirect_uris: from_json(
            &row.try_get::<String>("post_logout_redirect_uris")?,
            "post-logout redirect URIs",
        )?,
        backchannel_logout_uri: row.try_get("backchannel_logout_uri")?,
        id_token_alg: row.try_get("id_token_alg")?,
        created_at: UnixTime(row.try_get("created_at")?),
    })
}

/// A list of URIs as a JSON array.
fn to_json(uris: &[String]) -> StoreResult<String> {
    serde_json::to_string(uris).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json(s: &str, what: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(s).map_err(|_| corrupt(what))
}
