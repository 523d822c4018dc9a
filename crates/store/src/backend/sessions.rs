//! Sessions: what a finished sign-in earns, until it ends or idles out.

use clinic_auth_core::{AccountId, TokenHash, UnixTime};

use super::accounts::move_stamp;
use super::sql::{Row, Tx};
use super::{Db, corrupt, parse_with};
use crate::{ClientInfo, NewAuditEvent, NewSession, SessionRecord, SessionSummary, StoreError, StoreResult, Via};

impl Db {
    /// Starts a session and ends the login flow that earned it.
    pub(super) async fn insert_session(
        &self,
        s: &NewSession,
        finished_flow: &TokenHash,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_session_tx(&mut tx, s, finished_flow).await?;
        self.commit_audited(tx, audit).await
    }

    pub(super) async fn get_session(&self, token: &TokenHash) -> StoreResult<Option<SessionRecord>> {
        let row = self
            .query(
                "SELECT account_id, csrf_token, created_at, last_seen_at, verified_at, sid, proved
                 FROM sessions WHERE token_hash = $1",
            )
            .bind(token.as_str())
            .fetch_optional()
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SessionRecord {
            account_id: parse_with(&row.try_get::<String>("account_id")?, AccountId::parse, "account id")?,
            csrf_token: row.try_get("csrf_token")?,
            created_at: UnixTime(row.try_get("created_at")?),
            last_seen_at: UnixTime(row.try_get("last_seen_at")?),
            verified_at: row.try_get::<Option<i64>>("verified_at")?.map(UnixTime),
            // Nullable only in SQLite's schema; the store always writes it.
            sid: row.try_get::<Option<String>>("sid")?.ok_or_else(|| corrupt("session id"))?,
            proved: row.try_get("proved")?,
        }))
    }

    pub(super) async fn touch_session(&self, token: &TokenHash, now: UnixTime) -> StoreResult<()> {
        self.query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2 AND last_seen_at < $1")
            .bind(now.0)
            .bind(token.as_str())
            .execute()
            .await?;
        Ok(())
    }

    pub(super) async fn mark_session_verified(
        &self,
        token: &TokenHash,
        now: UnixTime,
        proved: &str,
    ) -> StoreResult<()> {
        self.query("UPDATE sessions SET verified_at = $1, proved = $3 WHERE token_hash = $2")
            .bind(now.0)
            .bind(token.as_str())
            .bind(proved)
            .execute()
            .await?;
        Ok(())
    }

    pub(super) async fn delete_session(&self, token: &TokenHash, audit: Option<&NewAuditEvent>) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx.query("DELETE FROM sessions WHERE token_hash = $1").bind(token.as_str()).execute().await?;
        if let Some(audit) = audit {
            self.write_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The account's sessions, newest first (by start, then by id, so that the order
    /// does not move as they are used).
    pub(super) async fn list_sessions(&self, account: AccountId) -> StoreResult<Vec<SessionSummary>> {
        let rows = self
            .query(
                "SELECT sid, created_at, last_seen_at, client_ip, user_agent FROM sessions
                 WHERE account_id = $1 ORDER BY created_at DESC, sid",
            )
            .bind(account.to_string())
            .fetch_all()
            .await?;
        rows.iter().map(summary).collect()
    }

    /// Ends one session of the account by its public id: a `sid` of another account
    /// matches nothing, so nobody can end (or learn of) someone else's session.
    pub(super) async fn end_session_by_sid(
        &self,
        account: AccountId,
        sid: &str,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = tx
            .query("DELETE FROM sessions WHERE account_id = $1 AND sid = $2")
            .bind(account.to_string())
            .bind(sid)
            .execute()
            .await?;
        self.commit_audited_if(tx, done == 1, audit).await
    }

    /// Ends every session of the account but `keep`, in one statement that also
    /// checks `keep` is still there (a session ended meanwhile ends nothing more). The
    /// stamp is left alone: moving it would end `keep`'s OpenID Connect grants too.
    pub(super) async fn end_other_sessions(
        &self,
        account: AccountId,
        keep: &TokenHash,
        audit: &NewAuditEvent,
    ) -> StoreResult<Vec<SessionSummary>> {
        let mut tx = self.begin().await?;
        let rows = tx
            .query(
                "DELETE FROM sessions WHERE account_id = $1 AND token_hash <> $2
                   AND EXISTS (SELECT 1 FROM sessions WHERE token_hash = $2 AND account_id = $1)
                 RETURNING sid, created_at, last_seen_at, client_ip, user_agent",
            )
            .bind(account.to_string())
            .bind(keep.as_str())
            .fetch_all()
            .await?;
        let ended = rows.iter().map(summary).collect::<StoreResult<Vec<_>>>()?;
        self.commit_audited_if(tx, !ended.is_empty(), audit).await?;
        Ok(ended)
    }

    /// Ends every session of an account (and its sign-ins in flight); the number of
    /// sessions ended.
    pub(super) async fn revoke_sessions(&self, id: AccountId, audit: &NewAuditEvent) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let n = tx.query("DELETE FROM sessions WHERE account_id = $1").bind(id.to_string()).execute().await?;
        move_stamp(&mut tx, id, &Via::default(), None).await?;
        self.commit_audited(tx, audit).await?;
        Ok(n)
    }

    pub(super) async fn count_sessions(&self, id: AccountId) -> StoreResult<i64> {
        let row = self
            .query("SELECT COUNT(*) AS n FROM sessions WHERE account_id = $1")
            .bind(id.to_string())
            .fetch_one()
            .await?;
        Ok(row.try_get("n")?)
    }
}

/// A [`SessionSummary`] from a row of `sid, created_at, last_seen_at, client_ip,
/// user_agent`.
fn summary(row: &Row) -> StoreResult<SessionSummary> {
    Ok(SessionSummary {
        // Nullable only in SQLite's schema; the store always writes it.
        sid: row.try_get::<Option<String>>("sid")?.ok_or_else(|| corrupt("session id"))?,
        created_at: UnixTime(row.try_get("created_at")?),
        last_seen_at: UnixTime(row.try_get("last_seen_at")?),
        client: ClientInfo { ip: row.try_get("client_ip")?, user_agent: row.try_get("user_agent")? },
    })
}

/// Starts a session and deletes the flow that earned it, in the caller's
/// transaction; only while the flow is still current for the account (its stamp is
/// the account's and the account is active).
pub(super) async fn insert_session_tx(tx: &mut Tx, s: &NewSession, finished_flow: &TokenHash) -> StoreResult<()> {
    // A flow that goes straight from its password to a session vouches for the
    // stamp read with the password.
    tx.query("UPDATE login_flows SET account_id = $2, stamp = $3 WHERE id_hash = $1 AND account_id IS NULL")
        .bind(finished_flow.as_str())
        .bind(s.account_id.to_string())
        .bind(s.stamp)
        .execute()
        .await?;
    // Deleting the flow first makes a flow good for one session only, even when
    // two requests race with the same flow id.
    let done = tx
        .query(
            "DELETE FROM login_flows WHERE id_hash = $1 AND account_id = $2
               AND stamp = (SELECT security_stamp FROM accounts WHERE id = $2 AND status = 'active')",
        )
        .bind(finished_flow.as_str())
        .bind(s.account_id.to_string())
        .execute()
        .await?;
    if done != 1 {
        return Err(StoreError::MissingReference("login flow"));
    }
    insert_session_row(tx, s).await
}

/// The session's row (in the caller's transaction, which ended its flow).
pub(super) async fn insert_session_row(tx: &mut Tx, s: &NewSession) -> StoreResult<()> {
    tx.query(
        "INSERT INTO sessions (token_hash, account_id, csrf_token, created_at, last_seen_at, client_ip, user_agent, verified_at,
           sid, proved)
         VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9)",
    )
    .bind(s.token_hash.as_str())
    .bind(s.account_id.to_string())
    .bind(&s.csrf_token)
    .bind(s.now.0)
    .bind(&s.client.ip)
    .bind(&s.client.user_agent)
    .bind(s.second_factor.then_some(s.now.0))
    .bind(&s.sid)
    .bind(&s.proved)
    .execute()
    .await?;
    Ok(())
}
