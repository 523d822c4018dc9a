-- Organization MFA policy, member overrides, enrolled factors, recovery codes.

ALTER TABLE organizations ADD COLUMN mfa_enabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE organizations ADD COLUMN mfa_mode TEXT NOT NULL DEFAULT 'off';
ALTER TABLE organizations ADD COLUMN mfa_methods TEXT NOT NULL DEFAULT 'authenticator';

ALTER TABLE accounts ADD COLUMN mfa_override TEXT NOT NULL DEFAULT 'clinic_default';
ALTER TABLE accounts ADD COLUMN preferred_factor TEXT;

-- When the session's holder last proved a second factor (sign-in or step-up).
ALTER TABLE sessions ADD COLUMN verified_at BIGINT;

-- One row per enrolled factor. Authenticator secrets are AEAD-sealed (secret, nonce,
-- key_version); last_used_step makes each TOTP code good once, across processes.
CREATE TABLE factors (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('authenticator', 'email', 'sms', 'passkey')),
    label           TEXT NOT NULL,
    secret          BYTEA,
    nonce           BYTEA,
    key_version     BIGINT,
    last_used_step  BIGINT,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT
);
CREATE INDEX factors_by_account ON factors (account_id);
CREATE UNIQUE INDEX factors_one_authenticator ON factors (account_id) WHERE kind = 'authenticator';

-- A factor being set up, before its first correct code.
CREATE TABLE pending_factors (
    account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    secret       BYTEA NOT NULL,
    nonce        BYTEA NOT NULL,
    key_version  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (account_id, kind)
);

-- The member's one recovery code, as a SHA-256 hash.
CREATE TABLE recovery_codes (
    account_id  TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
