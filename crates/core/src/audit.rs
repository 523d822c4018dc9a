//! The audit trail's hash chain. Each organization's events (and the platform's own,
//! which have no organization) form one chain: every event stores the hash of the one
//! before it and its own keyed hash (HMAC-SHA-256 under a key derived from the
//! server's encryption keyring) over a canonical encoding of its fields. Someone who
//! can write to the database but does not hold the key cannot edit, insert, delete or
//! reorder events without breaking the chain, and [`ChainVerifier`] reports where.
//!
//! What a key cannot show is a chain cut back to an earlier, genuine state (the
//! newest events deleted and the head rewound). A checkpoint kept outside the
//! database (the last verified `seq` and hash of each chain) catches that too.

mod event;
pub mod tally;
pub mod words;
pub use event::Event;

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

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

/// The chain's MAC keys by version; the newest one hashes new events. Derived from
/// the encryption keyring, so rotating that key rotates this one and old events
/// still verify while their key stays in the keyring.
#[derive(Clone)]
pub struct ChainKeys {
    keys: BTreeMap<i64, Zeroizing<[u8; 32]>>,
    current: i64,
}

impl fmt::Debug for ChainKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainKeys(current version {}, {} keys)", self.current, self.keys.len())
    }
}

impl ChainKeys {
    /// `None` when there is no key at all.
    pub fn new(keys: impl IntoIterator<Item = (i64, Zeroizing<[u8; 32]>)>) -> Option<ChainKeys> {
        let keys: BTreeMap<_, _> = keys.into_iter().collect();
        let current = *keys.keys().next_back()?;
        Some(ChainKeys { keys, current })
    }

    /// The hash of an event that follows `prev_hash`, under the current key:
    /// `v{version}:{hex}`.
    pub fn link_hash(&self, prev_hash: &str, f: &ChainedFields<'_>) -> String {
        let key = self.keys.get(&self.current).map(|k| k.as_slice()).unwrap_or_default();
        format!("v{}:{}", self.current, mac_hex(key, prev_hash, f))
    }

    /// Checks a stored hash against the event it belongs to.
    fn check(&self, prev_hash: &str, f: &ChainedFields<'_>, stored: &str) -> Result<(), LinkFault> {
        let (version, hex) = stored
            .strip_prefix('v')
            .and_then(|rest| rest.split_once(':'))
            .and_then(|(v, h)| v.parse::<i64>().ok().map(|v| (v, h)))
            .ok_or(LinkFault::Edited)?;
        let key = self.keys.get(&version).ok_or(LinkFault::UnknownKey(version))?;
        let want = mac_hex(key.as_slice(), prev_hash, f);
        if bool::from(subtle::ConstantTimeEq::ct_eq(want.as_bytes(), hex.as_bytes())) {
            Ok(())
        } else {
            Err(LinkFault::Edited)
        }
    }
}

enum LinkFault {
    Edited,
    UnknownKey(i64),
}

/// HMAC-SHA-256 (hex) over `prev_hash` and the fields, each length-prefixed so that
/// no two different events encode alike (moving text from one field to the next
/// changes the hash).
fn mac_hex(key: &[u8], prev_hash: &str, f: &ChainedFields<'_>) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let Ok(mut h) = <Hmac<Sha256> as Mac>::new_from_slice(key) else { return String::new() };
    h.update(b"clinic-auth audit v2\0");
    let mut put = |tag: u8, value: Option<&[u8]>| {
        h.update(&[tag]);
        match value {
            Some(v) => {
                h.update(&[1]);
                h.update(&(v.len() as u64).to_be_bytes());
                h.update(v);
            }
            None => h.update(&[0]),
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
    crate::token::hex(&h.finalize().into_bytes())
}

/// The plain SHA-256 hash (hex) events had before keyed hashes (migrations 0005 to
/// 0006): the same encoding, without a key, so anyone could compute it. Only for
/// checking such a trail before it is re-keyed; nothing new is hashed this way.
pub fn unkeyed_hash(prev_hash: &str, f: &ChainedFields<'_>) -> String {
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

/// Whether a stored hash is in the keyed form (`v{version}:{hex}`): a trail holding
/// one was written by a clinic-auth that keys its hashes, and is never re-keyed.
/// The audit detail of a lock period's refusals: the first refusal's `detail` (a JSON
/// object) with how many there were and when the last came. A detail that is not an
/// object is kept under `first`.
pub fn with_refusals(detail: &str, refusals: u64, last_at: crate::UnixTime) -> String {
    let mut v: serde_json::Value = serde_json::from_str(detail).unwrap_or(serde_json::Value::Null);
    if !v.is_object() {
        v = serde_json::json!({ "first": v });
    }
    if let Some(o) = v.as_object_mut() {
        o.insert("refusals".to_owned(), refusals.into());
        o.insert("last_at".to_owned(), last_at.0.into());
    }
    v.to_string()
}

pub fn is_keyed(hash: &str) -> bool {
    hash.strip_prefix('v').and_then(|rest| rest.split_once(':')).is_some_and(|(v, _)| v.parse::<i64>().is_ok())
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
    #[error("chain {chain:?}: event {id} (#{seq}) was changed after it was written, or was not written by clinic-auth")]
    Edited { chain: String, id: i64, seq: i64 },
    #[error("chain {chain:?}: event #{expected} is missing (found #{found}, event {id}): deleted or reordered")]
    Missing { chain: String, id: i64, expected: i64, found: i64 },
    #[error("chain {chain:?}: event {id} (#{seq}) does not follow the event before it: deleted or reordered")]
    Unlinked { chain: String, id: i64, seq: i64 },
    #[error("chain {chain:?}: event {id} (#{seq}) was hashed with key version {version}, which is not in the keyring")]
    UnknownKey { chain: String, id: i64, seq: i64, version: i64 },
    #[error("chain {chain:?}: the last {missing} event(s) are missing (the chain head is at #{head})")]
    TailMissing { chain: String, head: i64, missing: i64 },
    #[error("chain {chain:?}: the chain head does not match its last event")]
    HeadMismatch { chain: String },
    #[error("organization {chain:?} has no audit events: its chain was deleted")]
    ChainMissing { chain: String },
    #[error("the platform's audit chain is gone although platform admins exist: its events were deleted")]
    PlatformChainMissing,
    #[error(
        "a request to re-hash the audit trail (a row in audit_rekey_pending) sits beside a keyed trail: \
         clinic-auth writes one only when migration 0006 upgrades an unkeyed trail, so someone with database \
         access wrote it; it was refused"
    )]
    RekeyRequested,
    #[error("chain {chain:?}: the checkpoint saw #{checkpoint} but the chain now ends at #{last}: events were cut off")]
    BehindCheckpoint { chain: String, checkpoint: i64, last: i64 },
    #[error("chain {chain:?}: event #{seq} differs from the one the checkpoint saw: the chain was rewritten")]
    CheckpointMismatch { chain: String, seq: i64 },
}

/// A chain's last event as verified: what a checkpoint keeps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

/// Checks one chain's events as they stream by in `seq` order, so that a long chain
/// never has to be held in memory.
#[derive(Debug)]
pub struct ChainVerifier<'k> {
    /// `None`: the unkeyed hashes of a trail from before keyed hashes.
    keys: Option<&'k ChainKeys>,
    chain: String,
    prev: String,
    expected: i64,
    checkpoint: Option<ChainHead>,
}

impl<'k> ChainVerifier<'k> {
    /// `checkpoint`: this chain's head as an earlier verification saw it.
    pub fn new(keys: &'k ChainKeys, chain: &str, checkpoint: Option<ChainHead>) -> ChainVerifier<'k> {
        ChainVerifier { keys: Some(keys), chain: chain.to_owned(), prev: GENESIS.to_owned(), expected: 1, checkpoint }
    }

    /// Checks a chain of [`unkeyed_hash`]es, as written before keyed hashes: what may
    /// be re-keyed once, when migration 0006 upgrades such a trail.
    pub fn unkeyed(chain: &str) -> ChainVerifier<'static> {
        ChainVerifier { keys: None, chain: chain.to_owned(), prev: GENESIS.to_owned(), expected: 1, checkpoint: None }
    }

    pub fn push(&mut self, e: &StoredLink<'_>) -> Result<(), ChainBreak> {
        let c = || self.chain.clone();
        if e.fields.seq != self.expected {
            return Err(ChainBreak::Missing { chain: c(), id: e.id, expected: self.expected, found: e.fields.seq });
        }
        if e.prev_hash != self.prev {
            return Err(ChainBreak::Unlinked { chain: c(), id: e.id, seq: e.fields.seq });
        }
        let checked = match self.keys {
            Some(keys) => keys.check(&self.prev, &e.fields, e.hash),
            None => {
                let want = unkeyed_hash(&self.prev, &e.fields);
                if bool::from(subtle::ConstantTimeEq::ct_eq(want.as_bytes(), e.hash.as_bytes())) {
                    Ok(())
                } else {
                    Err(LinkFault::Edited)
                }
            }
        };
        match checked {
            Ok(()) => {}
            Err(LinkFault::Edited) => return Err(ChainBreak::Edited { chain: c(), id: e.id, seq: e.fields.seq }),
            Err(LinkFault::UnknownKey(version)) => {
                return Err(ChainBreak::UnknownKey { chain: c(), id: e.id, seq: e.fields.seq, version });
            }
        }
        if let Some(cp) = &self.checkpoint
            && cp.seq == e.fields.seq
            && cp.hash != e.hash
        {
            return Err(ChainBreak::CheckpointMismatch { chain: c(), seq: cp.seq });
        }
        e.hash.clone_into(&mut self.prev);
        self.expected += 1;
        Ok(())
    }

    /// Ends the chain against its stored head; returns the verified head (`seq` 0 for
    /// an empty chain).
    pub fn finish(self, head: Option<(i64, &str)>) -> Result<ChainHead, ChainBreak> {
        let last = self.expected - 1;
        let chain = self.chain;
        match head {
            Some((seq, _)) if seq > last => {
                return Err(ChainBreak::TailMissing { chain, head: seq, missing: seq - last });
            }
            Some((seq, hash)) if seq != last || (last > 0 && hash != self.prev) => {
                return Err(ChainBreak::HeadMismatch { chain });
            }
            None if last > 0 => return Err(ChainBreak::HeadMismatch { chain }),
            _ => {}
        }
        if let Some(cp) = self.checkpoint
            && cp.seq > last
        {
            return Err(ChainBreak::BehindCheckpoint { chain, checkpoint: cp.seq, last });
        }
        Ok(ChainHead { seq: last, hash: self.prev })
    }
}

/// Checks a whole chain at once (events in `seq` order); returns the events checked.
pub fn verify_chain(
    keys: &ChainKeys,
    chain: &str,
    events: &[StoredLink<'_>],
    head: Option<(i64, &str)>,
) -> Result<i64, ChainBreak> {
    let mut v = ChainVerifier::new(keys, chain, None);
    for e in events {
        v.push(e)?;
    }
    v.finish(head).map(|h| h.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ChainKeys {
        ChainKeys::new([(1, Zeroizing::new([7u8; 32]))]).unwrap()
    }

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
                let h = keys().link_hash(&prev, &f);
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
        assert_eq!(verify_chain(&keys(), "riverside", &links(&c), Some(head)), Ok(4));
        assert_eq!(verify_chain(&keys(), "riverside", &[], None), Ok(0));
    }

    #[test]
    fn the_encoding_separates_fields() {
        let a = ChainedFields { kind: "ab", outcome: "c", ..fields(1, "{}") };
        let b = ChainedFields { kind: "a", outcome: "bc", ..fields(1, "{}") };
        assert_ne!(keys().link_hash(GENESIS, &a), keys().link_hash(GENESIS, &b));
        let none = ChainedFields { actor_id: None, ..fields(1, "{}") };
        let empty = ChainedFields { actor_id: Some(""), ..fields(1, "{}") };
        assert_ne!(keys().link_hash(GENESIS, &none), keys().link_hash(GENESIS, &empty));
    }

    #[test]
    fn edits_deletions_and_reordering_are_found() {
        let c = chain(4);
        let head = Some((4, c[3].2.as_str()));
        let mut l = links(&c);
        l[1].fields.detail = "{\"reason\":\"edited\"}";
        assert!(matches!(verify_chain(&keys(), "riverside", &l, head), Err(ChainBreak::Edited { seq: 2, .. })));

        let mut l = links(&c);
        l.remove(1);
        assert!(matches!(
            verify_chain(&keys(), "riverside", &l, head),
            Err(ChainBreak::Missing { expected: 2, found: 3, .. })
        ));

        let mut l = links(&c);
        l.pop();
        assert!(matches!(
            verify_chain(&keys(), "riverside", &l, head),
            Err(ChainBreak::TailMissing { missing: 1, .. })
        ));

        // Swapping two events and renumbering them still breaks the links.
        let mut l = links(&c);
        l.swap(1, 2);
        l[1].fields.seq = 2;
        l[2].fields.seq = 3;
        assert!(matches!(verify_chain(&keys(), "riverside", &l, head), Err(ChainBreak::Unlinked { seq: 2, .. })));

        // A rewritten hash on an edited event does not help: the next one no longer links.
        let mut l = links(&c);
        l[1].fields.detail = "{}x";
        let forged = keys().link_hash(&c[0].2, &l[1].fields);
        l[1].hash = &forged;
        assert!(matches!(verify_chain(&keys(), "riverside", &l, head), Err(ChainBreak::Unlinked { seq: 3, .. })));
        assert!(verify_chain(&keys(), "riverside", &links(&c), None).is_err(), "events without a head");
    }

    #[test]
    fn without_the_key_no_event_can_be_forged() {
        let c = chain(3);
        let head = Some((3, c[2].2.as_str()));
        // Someone with database access but another key (or none) rewrites event 2 and
        // every hash after it: the chain links, but the hashes are not ours.
        let theirs = ChainKeys::new([(1, Zeroizing::new([9u8; 32]))]).unwrap();
        let mut l = links(&c);
        l[1].fields.detail = "{\"reason\":\"forged\"}";
        let h2 = theirs.link_hash(&c[0].2, &l[1].fields);
        let h3 = theirs.link_hash(&h2, &l[2].fields);
        l[1].hash = &h2;
        l[2].prev_hash = &h2;
        l[2].hash = &h3;
        assert!(matches!(
            verify_chain(&keys(), "riverside", &l, Some((3, &h3))),
            Err(ChainBreak::Edited { seq: 2, .. })
        ));
        // An unkeyed hash (plain SHA-256 hex, as before keys) is not accepted either.
        let mut l = links(&c);
        let plain = "ab".repeat(32);
        l[2].hash = &plain;
        assert!(matches!(verify_chain(&keys(), "riverside", &l, head), Err(ChainBreak::Edited { seq: 3, .. })));
    }

    #[test]
    fn old_events_verify_after_a_key_rotation_while_their_key_is_kept() {
        let c = chain(2);
        let rotated = ChainKeys::new([(1, Zeroizing::new([7u8; 32])), (2, Zeroizing::new([8u8; 32]))]).unwrap();
        assert!(rotated.link_hash(GENESIS, &fields(1, "{}")).starts_with("v2:"), "the newest key hashes");
        assert_eq!(verify_chain(&rotated, "riverside", &links(&c), Some((2, c[1].2.as_str()))), Ok(2));
        let only_new = ChainKeys::new([(2, Zeroizing::new([8u8; 32]))]).unwrap();
        assert!(matches!(
            verify_chain(&only_new, "riverside", &links(&c), Some((2, c[1].2.as_str()))),
            Err(ChainBreak::UnknownKey { seq: 1, version: 1, .. })
        ));
        assert!(ChainKeys::new([]).is_none());
    }

    #[test]
    fn an_unkeyed_chain_verifies_only_as_unkeyed_and_breaks_where_it_was_edited() {
        let mut prev = GENESIS.to_owned();
        let c: Vec<_> = (1..=3)
            .map(|seq| {
                let f = fields(seq, "{}");
                let h = unkeyed_hash(&prev, &f);
                let out = (f, prev.clone(), h.clone());
                prev = h;
                out
            })
            .collect();
        let run = |l: &[StoredLink<'_>], head: Option<(i64, &str)>| {
            let mut v = ChainVerifier::unkeyed("riverside");
            for e in l {
                v.push(e)?;
            }
            v.finish(head)
        };
        let head = Some((3, c[2].2.as_str()));
        assert_eq!(run(&links(&c), head).map(|h| h.seq), Ok(3));
        assert!(!is_keyed(&c[0].2) && is_keyed(&keys().link_hash(GENESIS, &fields(1, "{}"))));
        assert!(matches!(verify_chain(&keys(), "riverside", &links(&c), head), Err(ChainBreak::Edited { seq: 1, .. })));
        let mut l = links(&c);
        l[1].fields.outcome = "failure";
        assert!(matches!(run(&l, head), Err(ChainBreak::Edited { seq: 2, .. })));
        assert!(matches!(run(&links(&c)[..2], head), Err(ChainBreak::TailMissing { missing: 1, .. })));
    }

    #[test]
    fn a_checkpoint_catches_a_chain_cut_back_or_rewritten() {
        let k = keys();
        let c = chain(4);
        let verify = |events: &[StoredLink<'_>], head: Option<(i64, &str)>, cp: ChainHead| {
            let mut v = ChainVerifier::new(&k, "riverside", Some(cp));
            for e in events {
                v.push(e)?;
            }
            v.finish(head)
        };
        let seen = ChainHead { seq: 3, hash: c[2].2.clone() };
        let full = links(&c);
        assert_eq!(verify(&full, Some((4, &c[3].2)), seen.clone()), Ok(ChainHead { seq: 4, hash: c[3].2.clone() }));
        // The newest two deleted and the head rewound to a genuine earlier state.
        assert!(matches!(
            verify(&full[..2], Some((2, &c[1].2)), seen.clone()),
            Err(ChainBreak::BehindCheckpoint { checkpoint: 3, last: 2, .. })
        ));
        // A different event #3 than the checkpoint saw (a regenerated chain).
        let other = ChainHead { seq: 3, hash: "v1:00".into() };
        assert!(matches!(verify(&full, Some((4, &c[3].2)), other), Err(ChainBreak::CheckpointMismatch { seq: 3, .. })));
    }
}
