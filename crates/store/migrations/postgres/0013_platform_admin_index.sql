-- The server asks at every start whether a platform admin exists (to offer the
-- first-admin link): a small index answers it without reading every account.
CREATE INDEX accounts_platform_admins ON accounts (kind) WHERE kind = 'platform_admin';
