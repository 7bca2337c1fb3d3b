-- Monthly range partitions for the log tables (events_raw by received_at, events_parsed by occurred_at, and
-- later the state history tables). Retention detaches a partition; nothing here ever deletes a row.

-- Refuse TRUNCATE of an append-only table. A test harness may allow it for its own session only
-- (SET fleet.allow_truncate = 'on'): Django's test flush truncates every table between transactional tests.
CREATE OR REPLACE FUNCTION fleet_refuse_truncate(p_table text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('fleet.allow_truncate', true) = 'on' THEN
        RETURN;
    END IF;
    RAISE EXCEPTION '% is append-only: TRUNCATE is refused (retention detaches partitions)', p_table
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE OR REPLACE FUNCTION fleet_truncate_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fleet_refuse_truncate(TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

-- Create the partition of `p_parent` for the month containing `p_month`, unless it exists. Skipped (NULL)
-- when the DEFAULT partition already holds rows of that month: attaching would fail, and moving rows out of
-- an append-only table is not this function's call. Append-only parents get the TRUNCATE guard on the new
-- partition, because statement-level triggers are not inherited.
CREATE OR REPLACE FUNCTION fleet_partition_month(p_parent text, p_key text, p_month date, p_append_only boolean)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo_day date := date_trunc('month', p_month)::date;
    -- Month boundaries are UTC midnights, whatever the session's time zone.
    lo timestamptz := lo_day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (lo_day + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    part text := format('%s_y%sm%s', p_parent, to_char(lo_day, 'YYYY'), to_char(lo_day, 'MM'));
    in_default boolean;
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    IF to_regclass(p_parent || '_default') IS NOT NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I >= $1 AND %I < $2)',
                       p_parent || '_default', p_key, p_key)
           INTO in_default USING lo, hi;
        IF in_default THEN
            RAISE NOTICE 'partition % skipped: % holds rows of that month', part, p_parent || '_default';
            RETURN NULL;
        END IF;
    END IF;
    -- Creating a partition locks the parent against inserts; never wait long behind a busy writer.
    SET LOCAL lock_timeout = '5s';
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                   part, p_parent, lo, hi);
    IF p_append_only THEN
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION fleet_truncate_guard()',
                       part || '_no_truncate', part);
    END IF;
    RETURN part;
END;
$$;

-- Ensure partitions from `p_months_back` months before to `p_months_ahead` months after the current month.
CREATE OR REPLACE FUNCTION fleet_partitions_ensure(p_parent text, p_key text, p_append_only boolean,
                                                   p_months_back int, p_months_ahead int)
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    i int;
    made text;
BEGIN
    FOR i IN -p_months_back .. p_months_ahead LOOP
        made := fleet_partition_month(p_parent, p_key,
                                      (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i))::date,
                                      p_append_only);
        IF made IS NOT NULL THEN
            RETURN NEXT made;
        END IF;
    END LOOP;
END;
$$;
