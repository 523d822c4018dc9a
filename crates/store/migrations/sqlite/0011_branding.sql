-- Branding per clinic: the name, accent colour and logo that its sign-in pages,
-- console and messages show instead of the platform's. NULL: not set (the
-- organization's name, the platform's colour, no logo).
ALTER TABLE organizations ADD COLUMN display_name TEXT;
ALTER TABLE organizations ADD COLUMN accent_color TEXT;

-- One logo per organization, served by clinic-auth at /branding/ORG/logo with its
-- content type; sha256 (hex of the bytes) is its ETag.
CREATE TABLE org_logos (
    org_id        TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    content_type  TEXT NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg', 'image/webp')),
    bytes         BLOB NOT NULL,
    sha256        TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- The clinic a sign-in was reached for (`/login?org=ID`): its pages and the codes it
-- sends carry that clinic's branding until the account is known.
ALTER TABLE login_flows ADD COLUMN org_hint TEXT;
