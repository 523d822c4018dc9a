-- Organizations, accounts, password links, login flows, sessions, throttles, audit.
-- Times are Unix seconds. Secrets (tokens, flow ids) are stored only as SHA-256 hex.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('clinic', 'solo')),
    created_at  BIGINT NOT NULL
);

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('member', 'patient', 'platform_admin')),
    realm          TEXT NOT NULL CHECK (realm IN ('staff', 'patient')),
    email          TEXT NOT NULL,
    org_id         TEXT REFERENCES organizations (id),
    role           TEXT CHECK (role IN ('owner', 'admin', 'provider', 'staff')),
    password_hash  TEXT,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (realm, email)
);
CREATE INDEX accounts_by_org ON accounts (org_id);

CREATE TABLE password_links (
    token_hash  TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL CHECK (purpose IN ('setup', 'invitation', 'password_reset')),
    account_id  TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX password_links_by_account ON password_links (account_id);

CREATE TABLE login_flows (
    id_hash     TEXT PRIMARY KEY,
    realm       TEXT NOT NULL,
    email       TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf_token    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    client_ip     TEXT NOT NULL,
    user_agent    TEXT NOT NULL
);
CREATE INDEX sessions_by_account ON sessions (account_id);

CREATE TABLE throttles (
    key           TEXT PRIMARY KEY,
    failures      BIGINT NOT NULL,
    window_start  BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    org_id      TEXT,
    actor_id    TEXT,
    subject_id  TEXT,
    client_ip   TEXT NOT NULL,
    user_agent  TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_events_by_org ON audit_events (org_id, id);
