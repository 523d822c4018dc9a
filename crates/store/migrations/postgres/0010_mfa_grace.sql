-- Grace period for Mandatory 2FA ("Remind me later"): how many days members may put
-- off setting up two-factor authentication (0 to 30), counted from when Mandatory 2FA
-- came into force or from when the member joined, whichever is later.
ALTER TABLE organizations ADD COLUMN mfa_grace_days BIGINT NOT NULL DEFAULT 0
    CHECK (mfa_grace_days BETWEEN 0 AND 30);
-- When Mandatory 2FA came into force (MFA enabled and mode 'required'); NULL while it
-- is not. Clinics already under Mandatory 2FA start counting at this migration.
ALTER TABLE organizations ADD COLUMN mfa_required_since BIGINT;
UPDATE organizations SET mfa_required_since = CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)
    WHERE mfa_enabled AND mfa_mode = 'required';

-- When the member joined: set their first password (accepted the invitation). NULL
-- for accounts created with a password, which joined when they were created.
ALTER TABLE accounts ADD COLUMN joined_at BIGINT;
UPDATE accounts SET joined_at = (
    SELECT MIN(p.used_at) FROM password_links p WHERE p.account_id = accounts.id AND p.purpose = 'invitation'
);
