//! The audit trail's hash chain. Each organization's events (and the platform's own,
//! which have no organization) form one chain: every event stores the hash of the one
//! before it and its own hash over a canonical encoding of its fields. Editing,
//! deleting or reordering a stored event breaks the chain at that event, and
//! [`verify_chain`] reports where.

use sha2::{Digest, Sha256};

/// The `prev_hash` of a chain's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain name of events without an organization.
pub const PLATFORM_CHAIN: &str = "";

/// The fields of an event that its hash covers, in chain order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedFields<'a> {
    pub chain: &'a str,
    pub seq: i64,
    pub at: i64,
    pub kind: &'a str,
    pub outcome: &'a str,
    pub org_id: Option<&'a str>,
    pub actor_id: Option<&'a str>,
    pub subject_id: Option<&'a str>,
    pub client_ip: &'a str,
    pub user_agent: &'a str,
    pub detail: &'a str,
}

/// SHA-256 (hex) over `prev_hash` and the fields, each length-prefixed so that no
/// two different events encode alike (moving text from one field to the next
/// changes the hash).
pub fn event_hash(prev_hash: &str, f: &ChainedFields<'_>) -> String {
    let mut h = Sha256::new();
    h.update(b"clinic-auth audit v1\0");
    let mut put = |tag: u8, value: Option<&[u8]>| {
        h.update([tag]);
        match value {
            Some(v) => {
                h.update([1]);
                h.update((v.len() as u64).to_be_bytes());
                h.update(v);
            }
            None => h.update([0]),
        }
    };
    put(1, Some(prev_hash.as_bytes()));
    put(2, Some(f.chain.as_bytes()));
    put(3, Some(&f.seq.to_be_bytes()));
    put(4, Some(&f.at.to_be_bytes()));
    put(5, Some(f.kind.as_bytes()));
    put(6, Some(f.outcome.as_bytes()));
    put(7, f.org_id.map(str::as_bytes));
    put(8, f.actor_id.map(str::as_bytes));
    put(9, f.subject_id.map(str::as_bytes));
    put(10, Some(f.client_ip.as_bytes()));
    put(11, Some(f.user_agent.as_bytes()));
    put(12, Some(f.detail.as_bytes()));
    crate::token::hex(&h.finalize())
}

/// One stored event as read back for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLink<'a> {
    /// The row's id, for the report.
    pub id: i64,
    pub fields: ChainedFields<'a>,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("chain {chain:?}: event {id} (#{seq}) was changed after it was written")]
    Edited { chain: String, id: i64, seq: i64 },
    #[error("chain {chain:?}: event #{expected} is missing (found #{found}, event {id}): deleted or reordered")]
    Missing { chain: String, id: i64, expected: i64, found: i64 },
    #[error("chain {chain:?}: event {id} (#{seq}) does not follow the event before it: deleted or reordered")]
    Unlinked { chain: String, id: i64, seq: i64 },
    #[error("chain {chain:?}: the last {missing} event(s) are missing (the chain head is at #{head})")]
    TailMissing { chain: String, head: i64, missing: i64 },
    #[error("chain {chain:?}: the chain head does not match its last event")]
    HeadMismatch { chain: String },
}

/// Checks one chain's events, given in `seq` order, against its head (the last
/// `seq` and hash the store recorded). Returns the number of events checked.
pub fn verify_chain(chain: &str, events: &[StoredLink<'_>], head: Option<(i64, &str)>) -> Result<i64, ChainBreak> {
    let mut prev = GENESIS.to_owned();
    let mut expected = 1;
    for e in events {
        let c = || chain.to_owned();
        if e.fields.seq != expected {
            return Err(ChainBreak::Missing { chain: c(), id: e.id, expected, found: e.fields.seq });
        }
        if e.prev_hash != prev {
            return Err(ChainBreak::Unlinked { chain: c(), id: e.id, seq: e.fields.seq });
        }
        let want = event_hash(&prev, &e.fields);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(want.as_bytes(), e.hash.as_bytes())) {
            return Err(ChainBreak::Edited { chain: c(), id: e.id, seq: e.fields.seq });
        }
        prev = want;
        expected += 1;
    }
    let last = expected - 1;
    match head {
        Some((seq, _)) if seq > last => {
            Err(ChainBreak::TailMissing { chain: chain.to_owned(), head: seq, missing: seq - last })
        }
        Some((seq, hash)) if seq != last || (last > 0 && hash != prev) => {
            Err(ChainBreak::HeadMismatch { chain: chain.to_owned() })
        }
        None if last > 0 => Err(ChainBreak::HeadMismatch { chain: chain.to_owned() }),
        _ => Ok(last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(seq: i64, detail: &'static str) -> ChainedFields<'static> {
        ChainedFields {
            chain: "riverside",
            seq,
            at: 1_800_000_000 + seq,
            kind: "sign_in",
            outcome: "success",
            org_id: Some("riverside"),
            actor_id: None,
            subject_id: Some("a"),
            client_ip: "127.0.0.1",
            user_agent: "test",
            detail,
        }
    }

    /// Builds a valid chain of `n` events; returns (events' hashes, their prev hashes).
    fn chain(n: i64) -> Vec<(ChainedFields<'static>, String, String)> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let f = fields(seq, "{}");
                let h = event_hash(&prev, &f);
                let out = (f, prev.clone(), h.clone());
                prev = h;
                out
            })
            .collect()
    }

    fn links<'a>(c: &'a [(ChainedFields<'static>, String, String)]) -> Vec<StoredLink<'a>> {
        c.iter()
            .enumerate()
            .map(|(i, (f, p, h))| StoredLink { id: i as i64 + 10, fields: f.clone(), prev_hash: p, hash: h })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(4);
        let head = (4, c[3].2.as_str());
        assert_eq!(verify_chain("riverside", &links(&c), Some(head)), Ok(4));
        assert_eq!(verify_chain("riverside", &[], None), Ok(0));
    }

    #[test]
    fn the_encoding_separates_fields() {
        let a = ChainedFields { kind: "ab", outcome: "c", ..fields(1, "{}") };
        let b = ChainedFields { kind: "a", outcome: "bc", ..fields(1, "{}") };
        assert_ne!(event_hash(GENESIS, &a), event_hash(GENESIS, &b));
        let none = ChainedFields { actor_id: None, ..fields(1, "{}") };
        let empty = ChainedFields { actor_id: Some(""), ..fields(1, "{}") };
        assert_ne!(event_hash(GENESIS, &none), event_hash(GENESIS, &empty));
    }

    #[test]
    fn edits_deletions_and_reordering_are_found() {
        let c = chain(4);
        let head = Some((4, c[3].2.as_str()));
        let mut l = links(&c);
        l[1].fields.detail = "{\"reason\":\"edited\"}";
        assert!(matches!(verify_chain("riverside", &l, head), Err(ChainBreak::Edited { seq: 2, .. })));

        let mut l = links(&c);
        l.remove(1);
        assert!(matches!(verify_chain("riverside", &l, head), Err(ChainBreak::Missing { expected: 2, found: 3, .. })));

        let mut l = links(&c);
        l.pop();
        assert!(matches!(verify_chain("riverside", &l, head), Err(ChainBreak::TailMissing { missing: 1, .. })));

        // Swapping two events and renumbering them still breaks the links.
        let mut l = links(&c);
        l.swap(1, 2);
        l[1].fields.seq = 2;
        l[2].fields.seq = 3;
        assert!(matches!(verify_chain("riverside", &l, head), Err(ChainBreak::Unlinked { seq: 2, .. })));

        // A rewritten hash on an edited event does not help: the next one no longer links.
        let mut l = links(&c);
        l[1].fields.detail = "{}x";
        let forged = event_hash(&c[0].2, &l[1].fields);
        l[1].hash = &forged;
        assert!(matches!(verify_chain("riverside", &l, head), Err(ChainBreak::Unlinked { seq: 3, .. })));
        assert!(verify_chain("riverside", &links(&c), None).is_err(), "events without a head");
    }
}
