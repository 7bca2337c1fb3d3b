-- The projectors' work-list, filled from events_parsed at commit time.
--
-- Why the trigger is here and not in events' Meta.triggers: the log must not know who reads it (events sits
-- below state). The state layer hangs its own trigger on the log table, in a state migration, and owns it.
--
-- Deferred (fires at COMMIT) and row-level, on INSERT, UPDATE and DELETE: a reparse may rewrite a payload or
-- delete an event a new parser no longer produces, and the projections must follow. Each changed row appends
-- (parsed_id, occurred_at, device_id, kind, projector) to state_projection_pending; an UPDATE that moves an event
-- to another device or kind appends both images, so both windows are re-folded. Then, once per transaction and
-- projector, fleet_wake_once() (events/sql/wake.sql) makes sure one job waits — the same commit-time wake-up
-- and barrier as the parser's, so an event that commits out of id order is never skipped.

-- Which projector folds a kind is state_projector_of(kind): defined by the state migration that last changed the map
-- (0007_roster_to_drivers; each migration that adds a kind or a projector replaces it), and tied to
-- state/projectors/groups.py by state/tests/test_projector_kinds.py.

CREATE OR REPLACE FUNCTION state_pending_add(p_id bigint, p_at timestamptz, p_device bigint, p_kind text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    g text := state_projector_of(p_kind);
BEGIN
    IF g IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO state_projection_pending (parsed_id, occurred_at, device_id, kind, projector, attempts)
    VALUES (p_id, p_at, p_device, p_kind, g, 0);
    PERFORM fleet_wake_once('project', 'state.project_' || g);
END;
$$;

CREATE OR REPLACE FUNCTION state_parsed_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM state_pending_add(NEW.id, NEW.occurred_at, NEW.device_id, NEW.kind);
    END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (OLD.kind, OLD.device_id) IS DISTINCT FROM (NEW.kind, NEW.device_id))
    THEN
        PERFORM state_pending_add(OLD.id, OLD.occurred_at, OLD.device_id, OLD.kind);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS state_parsed_changed ON events_parsed;
CREATE CONSTRAINT TRIGGER state_parsed_changed
    AFTER INSERT OR UPDATE OR DELETE ON events_parsed
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION state_parsed_changed();
