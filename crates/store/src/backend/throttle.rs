//! Throttles (failures counted per key, with the locks they earn), and each
//! account's consecutive failures per factor.

use std::str::FromStr;

use clinic_auth_core::{AccountId, FactorKind, ThrottleRule, ThrottleState, UnixTime};

use super::sql::{Row, Tx};
use super::{Db, count, counted, parse_with};
use crate::{NewAuditEvent, StoreResult};

impl Db {
    pub(super) async fn get_throttle(&self, key: &str) -> StoreResult<Option<ThrottleState>> {
        let row = self
            .query("SELECT failures, locked_until FROM throttles WHERE key = $1")
            .bind(key)
            .fetch_optional()
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(ThrottleState {
            failures: count(row.try_get("failures")?),
            locked_until: UnixTime(row.try_get("locked_until")?),
        }))
    }

    pub(super) async fn record_failure(
        &self,
        key: &str,
        rule: ThrottleRule,
        now: UnixTime,
        audit: Option<&NewAuditEvent>,
    ) -> StoreResult<ThrottleState> {
        let mut tx = self.begin().await?;
        // One statement counts the failure, so concurrent failures are all counted;
        // the count restarts when the window passed and no lock is in force.
        let row = tx
            .query(
                "INSERT INTO throttles (key, failures, window_start, locked_until) VALUES ($1, 1, $2, 0)
                 ON CONFLICT (key) DO UPDATE SET
                   failures = CASE WHEN throttles.window_start < $3 AND throttles.locked_until <= $2
                                   THEN 1 ELSE throttles.failures + 1 END,
                   window_start = CASE WHEN throttles.window_start < $3 AND throttles.locked_until <= $2
                                   THEN $2 ELSE throttles.window_start END
                 RETURNING failures, locked_until",
            )
            .bind(key)
            .bind(now.0)
            .bind(rule.window_start_cutoff(now).0)
            .fetch_one()
            .await?;
        let state = lock_if_due(&mut tx, key, rule, now, &row).await?;
        if let Some(audit) = audit {
            self.write_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(state)
    }

    pub(super) async fn clear_throttle(&self, key: &str) -> StoreResult<()> {
        self.query("DELETE FROM throttles WHERE key = $1").bind(key).execute().await?;
        Ok(())
    }

    pub(super) async fn reserve_attempt(
        &self,
        key: &str,
        rule: ThrottleRule,
        now: UnixTime,
    ) -> StoreResult<Option<ThrottleState>> {
        let mut tx = self.begin().await?;
        let state = count_failure_tx(&mut tx, key, rule, now).await?;
        if state.is_some() {
            tx.commit().await?;
        }
        Ok(state)
    }

    /// One statement counts the answer and checks the cap, so concurrent answers
    /// never count past `cap`.
    pub(super) async fn reserve_factor_attempt(
        &self,
        account: AccountId,
        factor: FactorKind,
        cap: u32,
    ) -> StoreResult<Option<u32>> {
        let row = self
            .query(
                "INSERT INTO factor_failures (account_id, factor, failures) VALUES ($1, $2, 1)
                 ON CONFLICT (account_id, factor) DO UPDATE SET failures = factor_failures.failures + 1
                 WHERE factor_failures.failures < $3
                 RETURNING failures",
            )
            .bind(account.to_string())
            .bind(factor.as_str())
            .bind(i64::from(cap))
            .fetch_optional()
            .await?;
        counted(row, "failures")
    }

    pub(super) async fn factor_failures(&self, account: AccountId) -> StoreResult<Vec<(FactorKind, u32)>> {
        let rows = self
            .query("SELECT factor, failures FROM factor_failures WHERE account_id = $1")
            .bind(account.to_string())
            .fetch_all()
            .await?;
        rows.iter()
            .map(|r| {
                let kind = parse_with(&r.try_get::<String>("factor")?, FactorKind::from_str, "factor kind")?;
                Ok((kind, count(r.try_get("failures")?)))
            })
            .collect()
    }

    pub(super) async fn clear_factor_failures(&self, account: AccountId) -> StoreResult<()> {
        self.query("DELETE FROM factor_failures WHERE account_id = $1").bind(account.to_string()).execute().await?;
        Ok(())
    }

    pub(super) async fn unlock_second_factor(
        &self,
        account: AccountId,
        throttle_key: &str,
        audit: &NewAuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx.query("DELETE FROM factor_failures WHERE account_id = $1").bind(account.to_string()).execute().await?;
        tx.query("DELETE FROM throttles WHERE key = $1").bind(throttle_key).execute().await?;
        self.commit_audited(tx, audit).await
    }
}

/// After counting a failure (`row`: its failures and lock): sets the lock the count
/// earns, in the caller's transaction, and returns the state.
async fn lock_if_due(
    tx: &mut Tx,
    key: &str,
    rule: ThrottleRule,
    now: UnixTime,
    row: &Row,
) -> StoreResult<ThrottleState> {
    let failures = count(row.try_get("failures")?);
    let mut locked_until = UnixTime(row.try_get("locked_until")?);
    if let Some(until) = rule.locked_until(failures, now).filter(|u| *u > locked_until) {
        locked_until = until;
        tx.query("UPDATE throttles SET locked_until = $1 WHERE key = $2").bind(until.0).bind(key).execute().await?;
    }
    Ok(ThrottleState { failures, locked_until })
}

/// Counts one failure against `key` in the caller's transaction, only while it is not
/// locked at `now` (`None`: locked, nothing counted), and sets the lock the count
/// earns before commit, so a concurrent attempt waiting on the row sees it.
pub(super) async fn count_failure_tx(
    tx: &mut Tx,
    key: &str,
    rule: ThrottleRule,
    now: UnixTime,
) -> StoreResult<Option<ThrottleState>> {
    let row = tx
        .query(
            "INSERT INTO throttles (key, failures, window_start, locked_until) VALUES ($1, 1, $2, 0)
             ON CONFLICT (key) DO UPDATE SET
               failures = CASE WHEN throttles.window_start < $3 THEN 1 ELSE throttles.failures + 1 END,
               window_start = CASE WHEN throttles.window_start < $3 THEN $2 ELSE throttles.window_start END
             WHERE throttles.locked_until <= $2
             RETURNING failures, locked_until",
        )
        .bind(key)
        .bind(now.0)
        .bind(rule.window_start_cutoff(now).0)
        .fetch_optional()
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(lock_if_due(tx, key, rule, now, &row).await?))
}
