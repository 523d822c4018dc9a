-- A chain's head follows its newest event: the append stores its events and moves
-- the head's hash in one statement (the claim has already moved the head's seq to
-- the run's last event, so only that event's row matches).
CREATE TRIGGER audit_head_follows AFTER INSERT ON audit_events
WHEN NEW.chain IS NOT NULL
BEGIN
    UPDATE audit_chain_heads SET hash = NEW.hash WHERE chain = NEW.chain AND seq = NEW.seq;
END;
