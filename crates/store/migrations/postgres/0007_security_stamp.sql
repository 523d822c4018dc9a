-- Every sign-in re-checks the account it is for. An account's security stamp moves on
-- whenever its security state changes (password set or reset, a factor added, replaced
-- or removed, MFA reset, bypass granted or used, deactivation, sessions revoked); a
-- login flow records the stamp when its password is accepted and is dead once the two
-- differ. The same changes delete the account's other flows outright (account_id).
ALTER TABLE accounts ADD COLUMN security_stamp BIGINT NOT NULL DEFAULT 0;
ALTER TABLE login_flows ADD COLUMN account_id TEXT;
ALTER TABLE login_flows ADD COLUMN stamp BIGINT NOT NULL DEFAULT 0;
-- Wrong second-factor answers of this sign-in, counted by one UPDATE before an answer
-- is checked, so that concurrent guesses cannot get past the limit.
ALTER TABLE login_flows ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
CREATE INDEX login_flows_by_account ON login_flows (account_id);

-- An emailed or texted code is good only for the sign-in, session or setup that asked
-- for it (the hash of that flow's or session's token).
ALTER TABLE code_challenges ADD COLUMN bound_to TEXT NOT NULL DEFAULT '';

-- Consecutive refused answers per member and factor, never reset by time (NIST SP
-- 800-63B: at most 100 consecutive failures); only a success resets them. At the cap
-- the factor is locked until the member proves another factor or an admin resets MFA.
CREATE TABLE factor_failures (
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    factor      TEXT NOT NULL,
    failures    BIGINT NOT NULL,
    PRIMARY KEY (account_id, factor)
);

-- An authenticator secret being set up belongs to the sign-in or session that showed
-- its QR code: another sign-in never resumes it (it would learn the secret) nor
-- confirms it.
ALTER TABLE pending_factors ADD COLUMN bound_to TEXT NOT NULL DEFAULT '';
