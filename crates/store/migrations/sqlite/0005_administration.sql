-- Administration: one-time bypasses and the hash-chained audit trail.
-- (0004 is reserved for passkeys.)

-- "Disable two-factor authentication": an admin-granted, expiring permission to sign
-- in once without a second factor. Cleared when used.
ALTER TABLE accounts ADD COLUMN bypass_granted_at BIGINT;
ALTER TABLE accounts ADD COLUMN bypass_expires_at BIGINT;
ALTER TABLE accounts ADD COLUMN bypass_granted_by TEXT;

-- Each organization's events (chain = its id; '' for platform events) form a hash
-- chain: seq counts from 1, prev_hash is the previous event's hash, hash covers this
-- event's fields and prev_hash. Rows written before this migration are chained by
-- the store's migrate step.
ALTER TABLE audit_events ADD COLUMN chain TEXT;
ALTER TABLE audit_events ADD COLUMN seq BIGINT;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_events_by_chain ON audit_events (chain, seq);
CREATE INDEX audit_events_by_subject ON audit_events (subject_id, id);

-- The last seq and hash of each chain. Appending locks this row (UPDATE) until the
-- transaction commits, so appends to one chain are serialized across processes, and
-- deleting the newest events is detected.
CREATE TABLE audit_chain_heads (
    chain  TEXT PRIMARY KEY,
    seq    BIGINT NOT NULL,
    hash   TEXT NOT NULL
);
