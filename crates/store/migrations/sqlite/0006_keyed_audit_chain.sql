-- The audit chain's hashes become keyed (HMAC-SHA-256 under a key derived from the
-- encryption keyring, `v{version}:{hex}`), so that someone with only database access
-- cannot recompute them. This row asks the store's migrate step to re-hash every
-- existing event once, in id order, and then it is deleted; after that a row
-- without a keyed hash is reported by `audit verify` as a break, never re-chained.
CREATE TABLE audit_rekey_pending (
    id INTEGER PRIMARY KEY
);
INSERT INTO audit_rekey_pending (id) VALUES (1);
