//! The audit trail: one hash chain per organization (and one for the platform),
//! appended to in the transaction of the change each event records, verified in one
//! snapshot, and re-keyed once when migration 0006 upgrades an unkeyed trail.

use std::collections::{BTreeMap, BTreeSet};

use clinic_auth_core::UnixTime;
use clinic_auth_core::audit::{
    ChainBreak, ChainHead, ChainKeys, ChainVerifier, ChainedFields, GENESIS, PLATFORM_CHAIN, StoredLink,
};
use futures_util::TryStreamExt;

use super::Db;
use super::sql::{Query, Row, Tx};
use crate::{AuditEvent, AuditFilter, AuditVerification, ClientInfo, NewAuditEvent, StoreResult, Via};

impl Db {
    /// Appends an event to its chain inside the caller's transaction.
    pub(super) async fn write_audit(&self, tx: &mut Tx, e: &NewAuditEvent) -> StoreResult<()> {
        self.write_audits(tx, std::slice::from_ref(e)).await
    }

    /// Appends events to their chains inside the caller's transaction, in order. Each
    /// run of events on one chain claims its places with one statement (which makes
    /// or moves the chain's head and returns the hash it links to), stores them (two
    /// to a statement on PostgreSQL) and writes the head's new hash once: three
    /// round trips for a run of one or two on PostgreSQL. Callers append last, just before commit, so the head row (locked
    /// from the claim until commit on PostgreSQL) is held for as little as possible.
    pub(super) async fn write_audits(&self, tx: &mut Tx, events: &[NewAuditEvent]) -> StoreResult<()> {
        let mut rest = events;
        while let Some(first) = rest.first() {
            let chain = chain_of(first);
            let run = rest.iter().take_while(|e| chain_of(e) == chain).count();
            let (now, later) = rest.split_at(run);
            self.append_run(tx, &chain, now).await?;
            rest = later;
        }
        Ok(())
    }

    async fn append_run(&self, tx: &mut Tx, chain: &str, events: &[NewAuditEvent]) -> StoreResult<()> {
        let started = std::time::Instant::now();
        let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
        // The first event of a new chain links to GENESIS at place 1.
        let head = tx
            .query(
                "INSERT INTO audit_chain_heads (chain, seq, hash) VALUES ($1, $2, $3)
                 ON CONFLICT (chain) DO UPDATE SET seq = audit_chain_heads.seq + $2
                 RETURNING seq, hash",
            )
            .bind(chain)
            .bind(n)
            .bind(GENESIS)
            .fetch_one()
            .await?;
        let last: i64 = head.try_get("seq")?;
        let mut prev: String = head.try_get("hash")?;
        let mut linked = Vec::with_capacity(events.len());
        for (i, e) in (0..).zip(events) {
            let link = Link::new(chain, last - n + 1 + i, e, prev);
            prev = self.keys.link_hash(&link.prev_hash, &link.fields(e));
            linked.push((link, prev.clone()));
            tx.count_on_commit(clinic_auth_core::audit::tally::tally(e.kind, e.outcome, &e.detail));
        }
        // PostgreSQL pays a round trip a statement, so two events go in one; SQLite
        // runs a statement in microseconds in-process, where a prepared one-row
        // insert run twice is cheaper than the two-row form (measured: ~6% of an
        // answer's server CPU).
        let per_statement = if tx.statements_are_round_trips() { 2 } else { 1 };
        for pair in events.iter().zip(linked).collect::<Vec<_>>().chunks(per_statement) {
            let q = match pair.len() {
                1 => tx.query(
                    "INSERT INTO audit_events (at, kind, outcome, org_id, actor_id, subject_id, client_ip, user_agent, detail, chain, seq, prev_hash, hash)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                ),
                _ => tx.query(
                    "INSERT INTO audit_events (at, kind, outcome, org_id, actor_id, subject_id, client_ip, user_agent, detail, chain, seq, prev_hash, hash)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13),
                            ($14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)",
                ),
            };
            pair.iter().fold(q, |q, (e, (link, hash))| link.bind(q, e, hash)).execute().await?;
        }
        tx.query("UPDATE audit_chain_heads SET hash = $1 WHERE chain = $2").bind(&prev).bind(chain).execute().await?;
        metrics::histogram!(crate::AUDIT_APPEND_SECONDS).record(started.elapsed().as_secs_f64());
        Ok(())
    }

    pub(super) async fn append_audit(&self, event: &NewAuditEvent) -> StoreResult<()> {
        let tx = self.begin().await?;
        self.commit_audited(tx, event).await
    }

    /// Events matching `f`, newest first (100 unless `f.limit` says otherwise).
    pub(super) async fn list_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEvent>> {
        // Two spellings, one per direction, so each walks the primary key's index.
        let (sql, cursor) = match f.after_id {
            None => (
                "SELECT * FROM audit_events
                 WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR subject_id = $2) AND ($3 IS NULL OR kind = $3)
                   AND ($5 IS NULL OR subject_id = $5 OR actor_id = $5)
                   AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7) AND ($8 IS NULL OR id < $8)
                 ORDER BY id DESC LIMIT $4",
                f.before_id,
            ),
            Some(after) => (
                "SELECT * FROM audit_events
                 WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR subject_id = $2) AND ($3 IS NULL OR kind = $3)
                   AND ($5 IS NULL OR subject_id = $5 OR actor_id = $5)
                   AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7) AND id > $8
                 ORDER BY id LIMIT $4",
                Some(after),
            ),
        };
        let rows = self
            .query(sql)
            .bind(f.org_id.as_ref().map(|o| o.as_str().to_owned()))
            .bind(f.subject_id.map(|s| s.to_string()))
            .bind(f.kind.clone())
            .bind(if f.limit > 0 { f.limit } else { 100 })
            .bind(f.member.map(|s| s.to_string()))
            .bind(f.since.map(|t| t.0))
            .bind(f.until.map(|t| t.0))
            .bind(cursor)
            .fetch_all()
            .await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// Walks every chain in one snapshot (so appends meanwhile cannot look like a
    /// broken chain), streaming the events rather than holding them.
    pub(super) async fn verify_audit(
        &self,
        checkpoint: &BTreeMap<String, ChainHead>,
    ) -> StoreResult<AuditVerification> {
        let mut tx = self.begin_read().await?;
        let mut heads: BTreeMap<String, (i64, String)> = tx
            .query("SELECT chain, seq, hash FROM audit_chain_heads ORDER BY chain")
            .fetch_all()
            .await?
            .iter()
            .map(|r| Ok((r.try_get("chain")?, (r.try_get("seq")?, r.try_get("hash")?))))
            .collect::<StoreResult<_>>()?;
        let orgs: Vec<String> = tx
            .query("SELECT id FROM organizations ORDER BY id")
            .fetch_all()
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let mut report = AuditVerification::default();
        let mut seen = BTreeSet::new();
        let keys = &*self.keys;
        {
            let mut rows = tx
                .query(
                    "SELECT id, at, kind, outcome, org_id, actor_id, subject_id, client_ip, user_agent, detail,
                            COALESCE(chain, '') AS chain, COALESCE(seq, 0) AS seq,
                            COALESCE(prev_hash, '') AS prev_hash, COALESCE(hash, '') AS hash
                     FROM audit_events ORDER BY audit_events.chain, audit_events.seq",
                )
                .fetch();
            // In the order of the (chain, seq) index, so the trail streams from it
            // instead of being sorted first (the table's columns, not the COALESCE'd
            // aliases: those would need a sort of every event). A chainless event,
            // which only a trail from before chains has, breaks its chain wherever
            // it comes.
            // The chain being read, and its verifier until it breaks.
            let mut run: Option<(String, Option<ChainVerifier<'_>>)> = None;
            while let Some(r) = rows.try_next().await? {
                let chain: String = r.try_get("chain")?;
                if run.as_ref().is_none_or(|(c, _)| *c != chain) {
                    if let Some((c, v)) = run.take() {
                        finish_chain(&mut heads, &mut report, c, v);
                    }
                    seen.insert(chain.clone());
                    let v = ChainVerifier::new(keys, &chain, checkpoint.get(&chain).cloned());
                    run = Some((chain.clone(), Some(v)));
                }
                let Some((_, Some(verifier))) = run.as_mut() else { continue };
                let event = audit_from_row(&r)?;
                let (prev_hash, hash): (String, String) = (r.try_get("prev_hash")?, r.try_get("hash")?);
                let link = StoredLink {
                    id: event.id,
                    fields: chained_fields(&event, &chain, r.try_get("seq")?),
                    prev_hash: &prev_hash,
                    hash: &hash,
                };
                if let Err(b) = verifier.push(&link) {
                    report.breaks.push(b);
                    if let Some((_, v)) = run.as_mut() {
                        *v = None;
                    }
                }
            }
            if let Some((c, v)) = run.take() {
                finish_chain(&mut heads, &mut report, c, v);
            }
        }
        // A head, or a checkpoint, without any event left: the whole chain was deleted.
        let leftover: BTreeSet<String> =
            heads.keys().chain(checkpoint.keys()).filter(|c| !seen.contains(*c)).cloned().collect();
        for chain in leftover {
            seen.insert(chain.clone());
            let v = ChainVerifier::new(keys, &chain, checkpoint.get(&chain).cloned());
            finish_chain(&mut heads, &mut report, chain, Some(v));
        }
        // Every organization's creation is its chain's first event, and every
        // platform admin's creation is on the platform chain.
        for org in orgs {
            if !seen.contains(&org) {
                report.breaks.push(ChainBreak::ChainMissing { chain: org });
            }
        }
        let admins: i64 = tx
            .query("SELECT COUNT(*) AS n FROM accounts WHERE kind = 'platform_admin'")
            .fetch_one()
            .await?
            .try_get("n")?;
        if admins > 0 && !seen.contains(PLATFORM_CHAIN) {
            report.breaks.push(ChainBreak::PlatformChainMissing);
        }
        // migrate takes the one genuine re-key request (migration 0006's) at once;
        // one still here was refused.
        let pending: i64 = tx.query("SELECT COUNT(*) AS n FROM audit_rekey_pending").fetch_one().await?.try_get("n")?;
        if pending > 0 {
            report.breaks.push(ChainBreak::RekeyRequested);
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Re-keys the trail once, when migration 0006 upgrades one from before keyed
    /// hashes (`fresh_0006`: it was applied in this very `migrate`). Events with plain
    /// hashes are re-keyed only as far as their old chain (and its head) verifies;
    /// events without any hash only when no chain exists at all (a trail from before
    /// chains). Whatever did not verify keeps its old hash, so `audit verify` reports
    /// it. A request beside a keyed trail, or one not made by the migration, is
    /// refused and left in place for `audit verify` to report: otherwise a database
    /// writer could have any edit blessed. The first instance to take the request
    /// does it; an event on the platform chain records it.
    pub(super) async fn rekey_audit_if_pending(&self, fresh_0006: bool) -> StoreResult<()> {
        // Decided before touching the trail: this runs at every start, and counting
        // a trail of millions (as it once did) read all of it, holding the writer.
        if !fresh_0006 {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let keyed: bool = tx
            .query(
                "SELECT EXISTS (SELECT 1 FROM audit_events WHERE hash LIKE 'v%')
                     OR EXISTS (SELECT 1 FROM audit_chain_heads WHERE hash LIKE 'v%') AS keyed",
            )
            .fetch_one()
            .await?
            .try_get("keyed")?;
        if keyed {
            return Ok(());
        }
        let taken = tx.query("DELETE FROM audit_rekey_pending").execute().await?;
        if taken == 0 {
            return Ok(());
        }
        let heads: BTreeMap<String, (i64, String)> = tx
            .query("SELECT chain, seq, hash FROM audit_chain_heads")
            .fetch_all()
            .await?
            .iter()
            .map(|r| Ok((r.try_get("chain")?, (r.try_get("seq")?, r.try_get("hash")?))))
            .collect::<StoreResult<_>>()?;
        let rows = tx.query("SELECT * FROM audit_events ORDER BY chain, seq, id").fetch_all().await?;
        let events = rows.iter().map(audit_from_row).collect::<StoreResult<Vec<_>>>()?;
        // Each event's chain and prev_hash, beside it.
        let links: Vec<(Option<String>, Option<String>)> =
            rows.iter().map(|r| Ok((r.try_get("chain")?, r.try_get("prev_hash")?))).collect::<StoreResult<_>>()?;
        let chained = heads.len() + events.iter().filter(|e| e.hash.is_some()).count();
        let (rekeyed, refused) = if chained == 0 {
            (self.chain_unchained(&mut tx, &events).await?, 0)
        } else {
            self.rekey_chains(&mut tx, &heads, &events, &links).await?
        };
        if !events.is_empty() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            let event = NewAuditEvent {
                at: UnixTime(now),
                kind: "audit_chain_rekeyed",
                outcome: if refused == 0 { "success" } else { "failure" },
                org_id: None,
                actor_id: None,
                subject_id: None,
                client: ClientInfo { ip: "local".into(), user_agent: "clinic-auth migrate".into() },
                detail: serde_json::json!({"events": rekeyed, "not_verified": refused}).to_string(),
                via: Via::default(),
            };
            self.write_audit(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A trail from before chains: nothing to check, chain it in id order. The
    /// events chained.
    async fn chain_unchained(&self, tx: &mut Tx, events: &[AuditEvent]) -> StoreResult<i64> {
        let mut by_id: Vec<&AuditEvent> = events.iter().collect();
        by_id.sort_by_key(|e| e.id);
        let mut rekeyed = 0i64;
        for e in by_id {
            let chain = e.org_id.clone().unwrap_or_else(|| PLATFORM_CHAIN.to_owned());
            let fields = chained_fields(e, &chain, 0);
            let (seq, prev, hash) = advance_chain(&self.keys, tx, &fields).await?;
            tx.query("UPDATE audit_events SET chain = $1, seq = $2, prev_hash = $3, hash = $4 WHERE id = $5")
                .bind(&chain)
                .bind(seq)
                .bind(&prev)
                .bind(&hash)
                .bind(e.id)
                .execute()
                .await?;
            rekeyed += 1;
        }
        Ok(rekeyed)
    }

    /// Plain hash chains: each re-keyed as far as it verifies, in place. The events
    /// re-keyed and refused.
    async fn rekey_chains(
        &self,
        tx: &mut Tx,
        heads: &BTreeMap<String, (i64, String)>,
        events: &[AuditEvent],
        links: &[(Option<String>, Option<String>)],
    ) -> StoreResult<(i64, i64)> {
        let (mut rekeyed, mut refused) = (0i64, 0i64);
        let mut by_chain: BTreeMap<String, Vec<(&AuditEvent, &str)>> = BTreeMap::new();
        for (e, (chain, prev_hash)) in events.iter().zip(links) {
            match (chain, prev_hash, &e.hash) {
                (Some(c), Some(p), Some(_)) => by_chain.entry(c.clone()).or_default().push((e, p)),
                // Never chained although chains exist: not ours to bless.
                _ => refused += 1,
            }
        }
        for chain in heads.keys() {
            by_chain.entry(chain.clone()).or_default();
        }
        for (chain, chain_events) in &by_chain {
            let mut old = ChainVerifier::unkeyed(chain);
            let mut prev = GENESIS.to_owned();
            let mut done = 0usize;
            for (e, old_prev) in chain_events {
                let old_hash = e.hash.as_deref().unwrap_or("");
                let fields = chained_fields(e, chain, e.seq.unwrap_or(0));
                let link = StoredLink { id: e.id, fields: fields.clone(), prev_hash: old_prev, hash: old_hash };
                if old.push(&link).is_err() {
                    break;
                }
                let hash = self.keys.link_hash(&prev, &fields);
                tx.query("UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE id = $3")
                    .bind(&prev)
                    .bind(&hash)
                    .bind(e.id)
                    .execute()
                    .await?;
                prev = hash;
                done += 1;
            }
            rekeyed += done as i64;
            refused += (chain_events.len() - done) as i64;
            // The head moves only when the whole old chain, head and all, verified:
            // a chain cut short stays reported as cut short.
            let head = heads.get(chain).map(|(seq, hash)| (*seq, hash.as_str()));
            if done == chain_events.len() && old.finish(head).is_ok() {
                tx.query(
                    "INSERT INTO audit_chain_heads (chain, seq, hash) VALUES ($1, $2, $3)
                     ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                )
                .bind(chain)
                .bind(done as i64)
                .bind(&prev)
                .execute()
                .await?;
            }
        }
        Ok((rekeyed, refused))
    }
}

/// Takes the next place in `f.chain` (locking its head until commit) and returns
/// (seq, prev_hash, hash) for the event `f` (whose `seq` is ignored).
/// Claims the next place on `f.chain` for an event already stored (the one-time
/// chaining of a trail from before chains): its seq, the hash it links to, its hash.
async fn advance_chain(keys: &ChainKeys, tx: &mut Tx, f: &ChainedFields<'_>) -> StoreResult<(i64, String, String)> {
    let head = tx
        .query(
            "INSERT INTO audit_chain_heads (chain, seq, hash) VALUES ($1, 1, $2)
             ON CONFLICT (chain) DO UPDATE SET seq = audit_chain_heads.seq + 1
             RETURNING seq, hash",
        )
        .bind(f.chain)
        .bind(GENESIS)
        .fetch_one()
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev: String = head.try_get("hash")?;
    let hash = keys.link_hash(&prev, &ChainedFields { seq, ..f.clone() });
    tx.query("UPDATE audit_chain_heads SET hash = $1 WHERE chain = $2").bind(&hash).bind(f.chain).execute().await?;
    Ok((seq, prev, hash))
}

/// An event's place on its chain, in the columns the chained fields name.
struct Link<'c> {
    chain: &'c str,
    seq: i64,
    org: Option<String>,
    actor: Option<String>,
    subject: Option<String>,
    prev_hash: String,
}

impl<'c> Link<'c> {
    fn new(chain: &'c str, seq: i64, e: &NewAuditEvent, prev_hash: String) -> Self {
        Link {
            chain,
            seq,
            org: e.org_id.as_ref().map(|o| o.as_str().to_owned()),
            actor: e.actor_id.map(|a| a.to_string()),
            subject: e.subject_id.map(|a| a.to_string()),
            prev_hash,
        }
    }

    fn fields<'a>(&'a self, e: &'a NewAuditEvent) -> ChainedFields<'a> {
        ChainedFields {
            chain: self.chain,
            seq: self.seq,
            at: e.at.0,
            kind: e.kind,
            outcome: e.outcome,
            org_id: self.org.as_deref(),
            actor_id: self.actor.as_deref(),
            subject_id: self.subject.as_deref(),
            client_ip: &e.client.ip,
            user_agent: &e.client.user_agent,
            detail: &e.detail,
        }
    }

    /// Binds the event's thirteen columns, in the order the inserts name them.
    fn bind<'q>(&self, q: Query<'q>, e: &NewAuditEvent, hash: &str) -> Query<'q> {
        q.bind(e.at.0)
            .bind(e.kind)
            .bind(e.outcome)
            .bind(self.org.clone())
            .bind(self.actor.clone())
            .bind(self.subject.clone())
            .bind(e.client.ip.clone())
            .bind(e.client.user_agent.clone())
            .bind(e.detail.clone())
            .bind(self.chain.to_owned())
            .bind(self.seq)
            .bind(self.prev_hash.clone())
            .bind(hash.to_owned())
    }
}

/// The chain an event goes on: its organization's, or the platform's.
fn chain_of(e: &NewAuditEvent) -> String {
    e.org_id.as_ref().map(|o| o.as_str().to_owned()).unwrap_or_else(|| PLATFORM_CHAIN.to_owned())
}

fn audit_from_row(row: &Row) -> StoreResult<AuditEvent> {
    Ok(AuditEvent {
        id: row.try_get("id")?,
        at: UnixTime(row.try_get("at")?),
        kind: row.try_get("kind")?,
        outcome: row.try_get("outcome")?,
        org_id: row.try_get("org_id")?,
        actor_id: row.try_get("actor_id")?,
        subject_id: row.try_get("subject_id")?,
        client_ip: row.try_get("client_ip")?,
        user_agent: row.try_get("user_agent")?,
        detail: row.try_get("detail")?,
        seq: row.try_get("seq")?,
        hash: row.try_get("hash")?,
    })
}

/// The fields of a stored event that its chain's hash covers, at place `seq` of `chain`.
fn chained_fields<'a>(e: &'a AuditEvent, chain: &'a str, seq: i64) -> ChainedFields<'a> {
    ChainedFields {
        chain,
        seq,
        at: e.at.0,
        kind: &e.kind,
        outcome: &e.outcome,
        org_id: e.org_id.as_deref(),
        actor_id: e.actor_id.as_deref(),
        subject_id: e.subject_id.as_deref(),
        client_ip: &e.client_ip,
        user_agent: &e.user_agent,
        detail: &e.detail,
    }
}

/// Ends one chain of a verification: checks it against its stored head, unless it
/// broke already (`verifier` is `None`).
fn finish_chain(
    heads: &mut BTreeMap<String, (i64, String)>,
    report: &mut AuditVerification,
    chain: String,
    verifier: Option<ChainVerifier<'_>>,
) {
    let head = heads.remove(&chain);
    report.chains += 1;
    if let Some(v) = verifier {
        match v.finish(head.as_ref().map(|(s, h)| (*s, h.as_str()))) {
            Ok(h) => {
                report.events += h.seq;
                report.heads.insert(chain, h);
            }
            Err(b) => report.breaks.push(b),
        }
    }
}
