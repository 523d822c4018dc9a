//! Login flows: a sign-in between its first step and the session it earns.

use std::str::FromStr;

use clinic_auth_core::{Email, FlowStep, LoginFlow, OrgId, Realm, TokenHash, UnixTime};

use super::sql::Row;
use super::{Db, corrupt, counted, parse_with};
use crate::{AbandonedSignIn, StoreError, StoreResult};

impl Db {
    pub(super) async fn insert_flow(&self, id: &TokenHash, flow: &LoginFlow) -> StoreResult<()> {
        let state = serde_json::to_string(&flow.step).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.query(
            "INSERT INTO login_flows (id_hash, realm, email, state, created_at, expires_at, account_id, stamp, client_ip, org_hint)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id.as_str())
        .bind(flow.realm.as_str())
        .bind(flow.email.as_str())
        .bind(state)
        .bind(flow.created_at.0)
        .bind(flow.expires_at.0)
        .bind(flow.step.account_id().map(|a| a.to_string()))
        .bind(flow.stamp)
        .bind(flow.client_ip.as_deref())
        .bind(flow.org_hint.as_ref().map(|o| o.as_str().to_owned()))
        .execute()
        .await?;
        Ok(())
    }

    pub(super) async fn get_flow(&self, id: &TokenHash) -> StoreResult<Option<LoginFlow>> {
        let row = self.query("SELECT * FROM login_flows WHERE id_hash = $1").bind(id.as_str()).fetch_optional().await?;
        row.as_ref().map(flow_from_row).transpose()
    }

    pub(super) async fn delete_flow(&self, id: &TokenHash) -> StoreResult<()> {
        self.query("DELETE FROM login_flows WHERE id_hash = $1").bind(id.as_str()).execute().await?;
        Ok(())
    }

    pub(super) async fn update_flow(&self, id: &TokenHash, flow: &LoginFlow) -> StoreResult<bool> {
        let state = serde_json::to_string(&flow.step).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The account and stamp are set once, when the password is accepted; a
        // later change to the account moves the stamp in the row, not here.
        let done = self
            .query(
                "UPDATE login_flows SET state = $1, account_id = COALESCE(account_id, $3),
                   stamp = CASE WHEN account_id IS NULL THEN $4 ELSE stamp END,
                   client_ip = COALESCE(client_ip, $5)
                 WHERE id_hash = $2",
            )
            .bind(state)
            .bind(id.as_str())
            .bind(flow.step.account_id().map(|a| a.to_string()))
            .bind(flow.stamp)
            .bind(flow.client_ip.as_deref())
            .execute()
            .await?;
        Ok(done == 1)
    }

    /// One statement counts the answer and checks the limit, so concurrent answers
    /// never exceed `max`.
    pub(super) async fn reserve_flow_attempt(&self, id: &TokenHash, max: u32) -> StoreResult<Option<u32>> {
        let row = self
            .query("UPDATE login_flows SET attempts = attempts + 1 WHERE id_hash = $1 AND attempts < $2 RETURNING attempts")
            .bind(id.as_str())
            .bind(i64::from(max))
            .fetch_optional()
            .await?;
        counted(row, "attempts")
    }

    /// One DELETE … RETURNING: of several instances purging at once, each abandoned
    /// sign-in is reported by one.
    pub(super) async fn take_abandoned_sign_ins(&self, now: UnixTime) -> StoreResult<Vec<AbandonedSignIn>> {
        let rows = self
            .query(
                "DELETE FROM login_flows WHERE expires_at <= $1 AND account_id IS NOT NULL
                 RETURNING state, created_at, client_ip",
            )
            .bind(now.0)
            .fetch_all()
            .await?;
        let mut taken = Vec::new();
        for row in rows {
            let state: String = row.try_get("state")?;
            let Ok(step) = serde_json::from_str::<FlowStep>(&state) else { continue };
            if let FlowStep::SecondFactor { account_id, .. } = step {
                taken.push(AbandonedSignIn {
                    account_id,
                    started_at: UnixTime(row.try_get("created_at")?),
                    client_ip: row.try_get("client_ip")?,
                });
            }
        }
        Ok(taken)
    }
}

pub(super) fn flow_from_row(row: &Row) -> StoreResult<LoginFlow> {
    let state: String = row.try_get("state")?;
    let step: FlowStep = serde_json::from_str(&state).map_err(|_| corrupt("login flow state"))?;
    Ok(LoginFlow {
        realm: parse_with(&row.try_get::<String>("realm")?, Realm::from_str, "realm")?,
        email: parse_with(&row.try_get::<String>("email")?, Email::parse, "email")?,
        step,
        created_at: UnixTime(row.try_get("created_at")?),
        expires_at: UnixTime(row.try_get("expires_at")?),
        stamp: row.try_get("stamp")?,
        client_ip: row.try_get("client_ip")?,
        // A hint only: one that no longer parses is no hint.
        org_hint: row.try_get::<Option<String>>("org_hint")?.and_then(|o| OrgId::parse(&o).ok()),
    })
}
