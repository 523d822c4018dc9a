//! A second-factor answer of a sign-in: everything it is judged against is read in
//! one statement on PostgreSQL (one read transaction on SQLite), and it is settled
//! in one write transaction. A right answer's transaction re-checks every limit,
//! uses the answer up, clears the counts, ends the flow, starts the session and
//! appends its audit events; a wrong answer's counts it everywhere at once.
//! Nothing is written in between, so an answer costs one write.

use std::str::FromStr;

use clinic_auth_core::{AccountId, FactorKind, ThrottleState, TokenHash, UnixTime};

use super::accounts::account_from_row;
use super::codes::code_from_row;
use super::factors::factor_from_row;
use super::flows::flow_from_row;
use super::orgs::org_from_row;
use super::sessions::insert_session_row;
use super::sql::{Pool, Row, Tx};
use super::throttle::count_failure_tx;
use super::{Db, count, parse_with};
use crate::{
    AcceptedAnswer, AfterAnswer, AnswerBlocked, AnswerContext, AnswerLimits, Consume, RefusalCounted, RefusedAnswer,
    StoreError, StoreResult,
};

impl Db {
    pub(super) async fn load_answer(
        &self,
        flow: &TokenHash,
        lockout_prefix: &str,
    ) -> StoreResult<Option<AnswerContext>> {
        match self.pool {
            Pool::Postgres(_) => self.load_answer_at_once(flow, lockout_prefix).await,
            Pool::Sqlite(_) => self.load_answer_each(flow, lockout_prefix).await,
        }
    }

    /// PostgreSQL: every row the answer is judged against, in one statement (one
    /// round trip, one snapshot), each row sent as a JSON object tagged with its table.
    async fn load_answer_at_once(&self, flow: &TokenHash, lockout_prefix: &str) -> StoreResult<Option<AnswerContext>> {
        let rows = self
            .query(
                "WITH f AS (SELECT * FROM login_flows WHERE id_hash = $1),
                      a AS (SELECT * FROM accounts WHERE id = (SELECT account_id FROM f))
                 SELECT 'flow' AS t, to_jsonb(f)::text AS j FROM f
                 UNION ALL SELECT 'account', to_jsonb(a)::text FROM a
                 UNION ALL SELECT 'org', to_jsonb(o)::text FROM organizations o WHERE o.id = (SELECT org_id FROM a)
                 UNION ALL SELECT 'factor', to_jsonb(x)::text FROM factors x WHERE x.account_id = (SELECT id FROM a)
                 UNION ALL SELECT 'recovery', to_jsonb(r)::text FROM recovery_codes r WHERE r.account_id = (SELECT id FROM a)
                 UNION ALL SELECT 'code', to_jsonb(c)::text FROM code_challenges c WHERE c.account_id = (SELECT id FROM a)
                 UNION ALL SELECT 'throttle', to_jsonb(h)::text FROM throttles h WHERE h.key = $2 || (SELECT id FROM a)
                 UNION ALL SELECT 'failure', to_jsonb(e)::text FROM factor_failures e WHERE e.account_id = (SELECT id FROM a)",
            )
            .bind(flow.as_str())
            .bind(lockout_prefix)
            .fetch_all()
            .await?;
        let (mut flow_row, mut account_row, mut org_row, mut recovery_row, mut throttle_row) =
            (None, None, None, None, None);
        let (mut factor_rows, mut code_rows, mut failure_rows) = (Vec::new(), Vec::new(), Vec::new());
        for r in rows {
            let row = Row::from_json_text(&r.try_get::<String>("j")?)?;
            match r.try_get::<String>("t")?.as_str() {
                "flow" => flow_row = Some(row),
                "account" => account_row = Some(row),
                "org" => org_row = Some(row),
                "recovery" => recovery_row = Some(row),
                "throttle" => throttle_row = Some(row),
                "factor" => factor_rows.push(row),
                "code" => code_rows.push(row),
                _ => failure_rows.push(row),
            }
        }
        let Some(flow_row) = flow_row else { return Ok(None) };
        let mut cx = context_of(&flow_row)?;
        let Some(id) = cx.flow.step.account_id() else { return Ok(Some(cx)) };
        let account = account_row.as_ref().map(account_from_row).transpose()?;
        // The row's account column is set from the step; should they ever disagree
        // (or the account be gone), the reads one at a time follow the step.
        let Some(account) = account.filter(|a| a.id == id) else {
            return self.load_answer_each(flow, lockout_prefix).await;
        };
        cx.org = org_row.as_ref().map(org_from_row).transpose()?;
        cx.account = Some(account);
        cx.factors = factor_rows.iter().map(factor_from_row).collect::<StoreResult<_>>()?;
        cx.factors.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        cx.recovery_code_hash = recovery_row.map(|r| r.try_get("code_hash")).transpose()?;
        cx.codes = code_rows.iter().map(code_from_row).collect::<StoreResult<_>>()?;
        cx.throttle = throttle_row.as_ref().map(throttle_from_row).transpose()?;
        cx.factor_failures = failure_rows.iter().map(failure_from_row).collect::<StoreResult<_>>()?;
        Ok(Some(cx))
    }

    /// The same reads one at a time: on SQLite in one read transaction (see `Reads`).
    /// Every fact the verdict rests on is checked again by the guarded statements of
    /// the write that settles it, so a change between two reads cannot pass an answer.
    pub(super) async fn load_answer_each(
        &self,
        flow: &TokenHash,
        lockout_prefix: &str,
    ) -> StoreResult<Option<AnswerContext>> {
        let mut reads = self.pool.reads()?;
        let Some(row) =
            reads.query("SELECT * FROM login_flows WHERE id_hash = $1").bind(flow.as_str()).fetch_optional().await?
        else {
            return Ok(None);
        };
        let mut cx = context_of(&row)?;
        let Some(id) = cx.flow.step.account_id() else { return Ok(Some(cx)) };
        let id = id.to_string();
        let Some(row) = reads.query("SELECT * FROM accounts WHERE id = $1").bind(&id).fetch_optional().await? else {
            return Ok(Some(cx));
        };
        let account = account_from_row(&row)?;
        if let Some(org) = &account.org_id {
            let row =
                reads.query("SELECT * FROM organizations WHERE id = $1").bind(org.as_str()).fetch_optional().await?;
            cx.org = row.as_ref().map(org_from_row).transpose()?;
        }
        cx.account = Some(account);
        let rows = reads
            .query("SELECT * FROM factors WHERE account_id = $1 ORDER BY created_at, id")
            .bind(&id)
            .fetch_all()
            .await?;
        cx.factors = rows.iter().map(factor_from_row).collect::<StoreResult<_>>()?;
        let row = reads
            .query("SELECT code_hash FROM recovery_codes WHERE account_id = $1")
            .bind(&id)
            .fetch_optional()
            .await?;
        cx.recovery_code_hash = row.map(|r| r.try_get("code_hash")).transpose()?;
        let rows = reads.query("SELECT * FROM code_challenges WHERE account_id = $1").bind(&id).fetch_all().await?;
        cx.codes = rows.iter().map(code_from_row).collect::<StoreResult<_>>()?;
        let lockout_key = format!("{lockout_prefix}{id}");
        let row = reads
            .query("SELECT failures, locked_until FROM throttles WHERE key = $1")
            .bind(&lockout_key)
            .fetch_optional()
            .await?;
        cx.throttle = row.as_ref().map(throttle_from_row).transpose()?;
        let rows = reads
            .query("SELECT factor, failures FROM factor_failures WHERE account_id = $1")
            .bind(&id)
            .fetch_all()
            .await?;
        cx.factor_failures = rows.iter().map(failure_from_row).collect::<StoreResult<_>>()?;
        Ok(Some(cx))
    }

    pub(super) async fn accept_answer(&self, a: &AcceptedAnswer<'_>) -> StoreResult<Result<(), AnswerBlocked>> {
        let l = &a.limits;
        let account = l.account.to_string();
        let mut tx = self.begin().await?;
        // The flow first: it must still be this account's, under the same stamp, with
        // the account active and answers left, and no lockout or factor cap in force
        // (one may have come since the read). Ending (or moving) it here makes a flow
        // good for one session, even when two answers race.
        let flow_ok = match a.then {
            AfterAnswer::Session(_) => tx
                .query(
                    "DELETE FROM login_flows WHERE id_hash = $1 AND account_id = $2 AND attempts < $3 AND expires_at > $4
                       AND stamp = (SELECT security_stamp FROM accounts WHERE id = $2 AND status = 'active')
                       AND NOT EXISTS (SELECT 1 FROM throttles WHERE key = $5 AND locked_until > $4)
                       AND NOT EXISTS (SELECT 1 FROM factor_failures WHERE account_id = $2 AND factor = $6 AND failures >= $7)",
                )
                .bind(l.flow.as_str())
                .bind(&account)
                .bind(i64::from(l.max_flow_attempts))
                .bind(l.now.0)
                .bind(l.throttle_key)
                .bind(l.method.as_str())
                .bind(i64::from(l.failure_cap))
                .execute()
                .await?,
            AfterAnswer::NextStep(step) => {
                let state = serde_json::to_string(step).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                tx.query(
                    "UPDATE login_flows SET state = $8, attempts = attempts + 1
                     WHERE id_hash = $1 AND account_id = $2 AND attempts < $3 AND expires_at > $4
                       AND stamp = (SELECT security_stamp FROM accounts WHERE id = $2 AND status = 'active')
                       AND NOT EXISTS (SELECT 1 FROM throttles WHERE key = $5 AND locked_until > $4)
                       AND NOT EXISTS (SELECT 1 FROM factor_failures WHERE account_id = $2 AND factor = $6 AND failures >= $7)",
                )
                .bind(l.flow.as_str())
                .bind(&account)
                .bind(i64::from(l.max_flow_attempts))
                .bind(l.now.0)
                .bind(l.throttle_key)
                .bind(l.method.as_str())
                .bind(i64::from(l.failure_cap))
                .bind(state)
                .execute()
                .await?
            }
        };
        if flow_ok != 1 {
            return Ok(Err(self.why_blocked(&mut tx, l).await?));
        }
        // A right answer clears the lockout and the failure counts the read saw (a
        // count that came since stays: below the limits it locks nothing by itself).
        if l.clear_counts {
            tx.query("DELETE FROM throttles WHERE key = $1").bind(l.throttle_key).execute().await?;
            tx.query("DELETE FROM factor_failures WHERE account_id = $1").bind(&account).execute().await?;
        }
        if !consume(&mut tx, l.account, l.now, a.consume).await? {
            return Ok(Err(AnswerBlocked::AlreadyUsed));
        }
        if let AfterAnswer::Session(s) = a.then {
            insert_session_row(&mut tx, s).await?;
        }
        self.write_audits(&mut tx, a.audit).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    pub(super) async fn refuse_answer(
        &self,
        r: &RefusedAnswer<'_>,
    ) -> StoreResult<Result<RefusalCounted, AnswerBlocked>> {
        let l = &r.limits;
        let account = l.account.to_string();
        let mut tx = self.begin().await?;
        let row = tx
            .query(
                "UPDATE login_flows SET attempts = attempts + 1
                 WHERE id_hash = $1 AND account_id = $2 AND attempts < $3 AND expires_at > $4
                 RETURNING attempts",
            )
            .bind(l.flow.as_str())
            .bind(&account)
            .bind(i64::from(l.max_flow_attempts))
            .bind(l.now.0)
            .fetch_optional()
            .await?;
        let Some(flow_attempts) = row.map(|r| r.try_get::<i64>("attempts")).transpose()?.map(count) else {
            return Ok(Err(AnswerBlocked::FlowOver));
        };
        let Some(throttle) = count_failure_tx(&mut tx, l.throttle_key, l.throttle_rule, l.now).await? else {
            let until = self.locked_until(&mut tx, l.throttle_key).await?;
            return Ok(Err(AnswerBlocked::Locked(until)));
        };
        let row = tx
            .query(
                "INSERT INTO factor_failures (account_id, factor, failures) VALUES ($1, $2, 1)
                 ON CONFLICT (account_id, factor) DO UPDATE SET failures = factor_failures.failures + 1
                 WHERE factor_failures.failures < $3
                 RETURNING failures",
            )
            .bind(&account)
            .bind(l.method.as_str())
            .bind(i64::from(l.failure_cap))
            .fetch_optional()
            .await?;
        let Some(factor_failures) = row.map(|r| r.try_get::<i64>("failures")).transpose()?.map(count) else {
            return Ok(Err(AnswerBlocked::FactorLocked));
        };
        if let Some((channel, code_hash, max)) = r.sent_code {
            // The code's own entries: it is spent (and deleted) at its limit.
            let left = tx
                .query(
                    "UPDATE code_challenges SET attempts = attempts + 1
                     WHERE account_id = $1 AND channel = $2 AND code_hash = $3 RETURNING attempts",
                )
                .bind(&account)
                .bind(channel.as_str())
                .bind(code_hash)
                .fetch_optional()
                .await?;
            if left.map(|r| r.try_get::<i64>("attempts")).transpose()?.is_some_and(|n| count(n) >= max) {
                tx.query("DELETE FROM code_challenges WHERE account_id = $1 AND channel = $2 AND code_hash = $3")
                    .bind(&account)
                    .bind(channel.as_str())
                    .bind(code_hash)
                    .execute()
                    .await?;
            }
        }
        if flow_attempts >= l.max_flow_attempts {
            // The flow's last answer was wrong: the sign-in starts over.
            tx.query("DELETE FROM login_flows WHERE id_hash = $1").bind(l.flow.as_str()).execute().await?;
        }
        // The audit events last, just before commit: the chain's head is held briefly.
        let factor_locked = factor_failures >= l.failure_cap;
        if factor_locked {
            self.write_audits(&mut tx, &[r.audit.clone(), r.locked_audit.clone()]).await?;
        } else {
            self.write_audit(&mut tx, r.audit).await?;
        }
        tx.commit().await?;
        Ok(Ok(RefusalCounted { flow_attempts, factor_failures, throttle, factor_locked }))
    }

    /// Why the guarded end of a flow found nothing: a lockout, the factor's cap, or
    /// the flow itself is over.
    async fn why_blocked(&self, tx: &mut Tx, l: &AnswerLimits<'_>) -> StoreResult<AnswerBlocked> {
        let until = self.locked_until(tx, l.throttle_key).await?;
        if until > l.now {
            return Ok(AnswerBlocked::Locked(until));
        }
        let row = tx
            .query("SELECT failures FROM factor_failures WHERE account_id = $1 AND factor = $2")
            .bind(l.account.to_string())
            .bind(l.method.as_str())
            .fetch_optional()
            .await?;
        if row.map(|r| r.try_get::<i64>("failures")).transpose()?.is_some_and(|n| count(n) >= l.failure_cap) {
            return Ok(AnswerBlocked::FactorLocked);
        }
        Ok(AnswerBlocked::FlowOver)
    }

    async fn locked_until(&self, tx: &mut Tx, key: &str) -> StoreResult<UnixTime> {
        let row = tx.query("SELECT locked_until FROM throttles WHERE key = $1").bind(key).fetch_optional().await?;
        Ok(UnixTime(row.map(|r| r.try_get("locked_until")).transpose()?.unwrap_or(0)))
    }
}

/// An answer's context with its flow alone.
fn context_of(flow: &Row) -> StoreResult<AnswerContext> {
    Ok(AnswerContext {
        flow: flow_from_row(flow)?,
        flow_attempts: count(flow.try_get("attempts")?),
        account: None,
        org: None,
        factors: Vec::new(),
        recovery_code_hash: None,
        codes: Vec::new(),
        throttle: None,
        factor_failures: Vec::new(),
    })
}

fn throttle_from_row(r: &Row) -> StoreResult<ThrottleState> {
    Ok(ThrottleState { failures: count(r.try_get("failures")?), locked_until: UnixTime(r.try_get("locked_until")?) })
}

fn failure_from_row(r: &Row) -> StoreResult<(FactorKind, u32)> {
    let kind = parse_with(&r.try_get::<String>("factor")?, FactorKind::from_str, "factor kind")?;
    Ok((kind, count(r.try_get("failures")?)))
}

/// Uses the answer up (in the caller's transaction); false when it was used or
/// replaced meanwhile.
async fn consume(tx: &mut Tx, account: AccountId, now: UnixTime, c: Consume<'_>) -> StoreResult<bool> {
    let account = account.to_string();
    let done = match c {
        Consume::TotpStep { factor_id, step } => {
            tx.query(
                "UPDATE factors SET last_used_step = $1, last_used_at = $2
                 WHERE id = $3 AND account_id = $4 AND (last_used_step IS NULL OR last_used_step < $1)",
            )
            .bind(step)
            .bind(now.0)
            .bind(factor_id)
            .bind(&account)
            .execute()
            .await?
        }
        Consume::RecoveryCode { expected, new_hash } => {
            tx.query(
                "UPDATE recovery_codes SET code_hash = $1, created_at = $2 WHERE account_id = $3 AND code_hash = $4",
            )
            .bind(new_hash)
            .bind(now.0)
            .bind(&account)
            .bind(expected)
            .execute()
            .await?
        }
        Consume::SentCode { channel, code_hash, max_attempts } => {
            let done = tx
                .query(
                    "DELETE FROM code_challenges WHERE account_id = $1 AND channel = $2 AND code_hash = $3
                       AND attempts < $4 AND expires_at > $5",
                )
                .bind(&account)
                .bind(channel.as_str())
                .bind(code_hash)
                .bind(i64::from(max_attempts))
                .bind(now.0)
                .execute()
                .await?;
            if done == 1 {
                tx.query("UPDATE factors SET last_used_at = $3 WHERE account_id = $1 AND kind = $2")
                    .bind(&account)
                    .bind(channel.as_str())
                    .bind(now.0)
                    .execute()
                    .await?;
            }
            done
        }
    };
    Ok(done == 1)
}
