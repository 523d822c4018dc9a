-- Email and text-message codes: where a code factor sends to, and the codes in flight.

ALTER TABLE factors ADD COLUMN target TEXT;

-- At most one code per account and channel: sending a new one replaces the last.
CREATE TABLE code_challenges (
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    channel     TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    purpose     TEXT NOT NULL,
    target      TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    sent_at     BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, channel)
);
