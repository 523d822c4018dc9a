-- Passkeys on trusted devices (WebAuthn), and the ceremonies in progress.

-- A passkey is a factor row of kind 'passkey'. Its credential (public key, counter,
-- flags, as webauthn-rs serializes it) is sealed like an authenticator secret, so a
-- database write cannot swap in another key. The columns beside it are what must be
-- looked up or compared atomically: the credential id and the signature counter.
ALTER TABLE factors ADD COLUMN credential_id TEXT;
ALTER TABLE factors ADD COLUMN sign_count BIGINT;
ALTER TABLE factors ADD COLUMN backup_eligible INTEGER NOT NULL DEFAULT 0;
ALTER TABLE factors ADD COLUMN backup_state INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX factors_by_credential ON factors (credential_id) WHERE credential_id IS NOT NULL;

-- A registration or authentication whose options went out and whose response has not
-- come back. The key binds it to what started it (a login flow, or a session), and a
-- response can use it once: it is deleted as it is read.
CREATE TABLE webauthn_ceremonies (
    ceremony_key  TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    state         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
