-- OpenID Connect: clinic-auth signs members in to other apps (authorization code flow
-- with PKCE, refresh tokens, back-channel logout). Secrets (codes, tokens, request
-- ids, client secrets) are stored only as SHA-256 hex, like the rest of the schema.

-- A session's public id, for apps (the `sid` claim, back-channel logout); never the
-- token itself.
ALTER TABLE sessions ADD COLUMN sid TEXT;
UPDATE sessions SET sid = md5(random()::text || clock_timestamp()::text || token_hash);
ALTER TABLE sessions ALTER COLUMN sid SET NOT NULL;
CREATE UNIQUE INDEX sessions_by_sid ON sessions (sid);
-- What the session proved (comma-separated methods). Sessions from before were at
-- least signed in with a password: the truthful lower bound, never an overstatement.
ALTER TABLE sessions ADD COLUMN proved TEXT NOT NULL DEFAULT 'password';

-- An app registered to sign members in; an org_id limits it to one clinic's accounts.
CREATE TABLE oidc_clients (
    client_id                  TEXT PRIMARY KEY,
    name                       TEXT NOT NULL,
    secret_hash                TEXT,
    org_id                     TEXT REFERENCES organizations (id),
    realm                      TEXT NOT NULL CHECK (realm IN ('staff', 'patient')),
    require_mfa                BOOLEAN NOT NULL DEFAULT FALSE,
    redirect_uris              TEXT NOT NULL,
    post_logout_redirect_uris  TEXT NOT NULL,
    backchannel_logout_uri     TEXT,
    created_at                 BIGINT NOT NULL
);

-- Keys that sign ID and logout tokens. A retired key stays published until the
-- tokens it signed have expired, so apps can still check them.
CREATE TABLE oidc_signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    private_sealed  TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    retired_at      BIGINT,
    publish_until   BIGINT
);

-- Authorization requests waiting for their sign-in.
CREATE TABLE oidc_requests (
    id_hash     TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    params      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- What one sign-in granted one app. Revoked grants are kept (their codes and tokens
-- are not) so that a replayed code or refresh token is recognised as one.
CREATE TABLE oidc_grants (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES oidc_clients (client_id),
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    sid         TEXT NOT NULL,
    stamp       BIGINT NOT NULL,
    scope       TEXT NOT NULL,
    nonce       TEXT,
    auth_time   BIGINT NOT NULL,
    proved      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX oidc_grants_by_account ON oidc_grants (account_id, created_at);
CREATE INDEX oidc_grants_by_sid ON oidc_grants (sid);

-- A code is marked used rather than deleted: presenting it again is a replay.
CREATE TABLE oidc_codes (
    code_hash       TEXT PRIMARY KEY,
    grant_id        TEXT NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    redirect_uri    TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT
);

-- Access and refresh tokens; a rotated refresh token is kept, used, to spot replays.
CREATE TABLE oidc_tokens (
    token_hash  TEXT PRIMARY KEY,
    grant_id    TEXT NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX oidc_tokens_by_grant ON oidc_tokens (grant_id);

-- Back-channel logouts to deliver, retried until delivered or given up. No foreign
-- keys: a logout must still go out after its account or session is gone.
CREATE TABLE oidc_logouts (
    id               TEXT PRIMARY KEY,
    client_id        TEXT NOT NULL,
    account_id       TEXT NOT NULL,
    sid              TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    gave_up_at       BIGINT
);
-- One queued logout per app and session: ending a session twice tells the app once.
CREATE UNIQUE INDEX oidc_logouts_pending ON oidc_logouts (client_id, sid)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
CREATE INDEX oidc_logouts_due ON oidc_logouts (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
