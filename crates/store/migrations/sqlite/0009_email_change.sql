-- "Change email" (the sign-in name): a change the account's holder asked for, waiting
-- for the link sent to the new address. Nothing about the account changes until the
-- link is used. Only the newest unused change of an account works: a new request (or
-- "Cancel") ends the others by moving their expiry to that moment. The token is stored
-- only as its SHA-256 hex, like every other link. `stamp` is the account's security
-- stamp when the change was asked for: a password reset, an MFA reset or any other
-- change to the account's security state in between kills the link.
CREATE TABLE email_changes (
    token_hash  TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    new_email   TEXT NOT NULL,
    old_email   TEXT NOT NULL,
    stamp       BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX email_changes_by_account ON email_changes (account_id);
