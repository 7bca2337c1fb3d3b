-- The map-matching projector's work-list, filled from events_parsed at commit time (geo/matching/).
--
-- Like state's projectors (state/sql/pending.sql), and for the same reason: the log must not know who reads it, so
-- the geo layer hangs its own trigger on the log table, in a geo migration, and owns it. State does not know geo
-- either: this is a work-list of its own, beside state's, drained by geo's own job.
--
-- Deferred (fires at COMMIT) and row-level, on INSERT, UPDATE and DELETE of position fixes: a reparse may rewrite a
-- fix or delete it, and the matched windows must follow. Each changed fix appends (parsed_id, occurred_at,
-- device_id) to geo_match_pending; an UPDATE that moves a fix to another device, time or kind appends both images.
-- No job is woken: a fix waits until its windows have closed, and geo's sweep (the cron role) drains what settled.

CREATE OR REPLACE FUNCTION geo_match_pending_add(p_id bigint, p_at timestamptz, p_device bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO geo_match_pending (parsed_id, occurred_at, device_id, attempts) VALUES (p_id, p_at, p_device, 0);
END;
$$;

CREATE OR REPLACE FUNCTION geo_parsed_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.kind = 'position_fix' THEN
        PERFORM geo_match_pending_add(NEW.id, NEW.occurred_at, NEW.device_id);
    END IF;
    IF TG_OP = 'DELETE' AND OLD.kind = 'position_fix'
       OR TG_OP = 'UPDATE' AND OLD.kind = 'position_fix'
          AND (OLD.kind, OLD.device_id, OLD.occurred_at) IS DISTINCT FROM (NEW.kind, NEW.device_id, NEW.occurred_at)
    THEN
        PERFORM geo_match_pending_add(OLD.id, OLD.occurred_at, OLD.device_id);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS geo_parsed_changed ON events_parsed;
CREATE CONSTRAINT TRIGGER geo_parsed_changed
    AFTER INSERT OR UPDATE OR DELETE ON events_parsed
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION geo_parsed_changed();
