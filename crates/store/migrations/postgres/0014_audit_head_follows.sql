-- A chain's head follows its newest event: the append stores its events and moves
-- the head's hash in one statement, one round trip fewer (the claim has already
-- moved the head's seq to the run's last event, so only that event's row matches).
CREATE FUNCTION audit_head_follows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_chain_heads SET hash = NEW.hash WHERE chain = NEW.chain AND seq = NEW.seq;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_head_follows AFTER INSERT ON audit_events
FOR EACH ROW WHEN (NEW.chain IS NOT NULL) EXECUTE FUNCTION audit_head_follows();
