-- Commit-time wake-up of a procrastinate job, from deferred row triggers (events_raw → parse, and later
-- events_parsed → projectors). Acts once per transaction.
--
-- fleet_wake_once(queue, task): make sure one job for `task` waits on `queue`. Not procrastinate_defer_jobs_v1():
-- on a taken queueing lock it raises a unique violation, which would abort the caller's INSERT (a push answered
-- 503 for a reason that has nothing to do with it). When a job already waits, nothing is written and no NOTIFY
-- is sent: every push touching one hot job row (a row lock, a NOTIFY) cost five sixths of the insert rate.
--
-- The race this leaves, and how it is closed: a job waits; our transaction sees it and creates none; the worker
-- takes that job and drains before we commit, so our rows were invisible to it. Therefore every writer holds a
-- shared advisory lock from the moment it looked until it commits, and the job, once its drain finds nothing,
-- passes fleet_wake_barrier(): an exclusive take of the same lock, which waits for every writer that looked
-- before the job was taken to commit; then it drains once more. The writers' lock is taken at commit time
-- (deferred trigger), so the barrier waits microseconds, not for a long transaction's work.
-- A NOTIFY per push would close nothing more and costs most of the insert rate: PostgreSQL serialises the
-- commits of notifying transactions. The worker side keeps the one NOTIFY a new job sends (fleet/roles.py).

CREATE OR REPLACE FUNCTION fleet_wake_key(p_task text) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT hashtextextended('fleet.wake:' || p_task, 0)
$$;

CREATE OR REPLACE FUNCTION fleet_wake_once(p_queue text, p_task text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    flag text := 'fleet.woke_' || replace(p_task, '.', '_');
BEGIN
    IF current_setting(flag, true) = 'on' THEN
        RETURN;
    END IF;
    PERFORM set_config(flag, 'on', true);
    PERFORM pg_advisory_xact_lock_shared(fleet_wake_key(p_task));
    -- A new job: procrastinate's own insert trigger sends the NOTIFY, delivered at our commit.
    INSERT INTO procrastinate_jobs (queue_name, task_name, queueing_lock, args)
    VALUES (p_queue, p_task, p_task, '{}')
    ON CONFLICT (queueing_lock) WHERE status = 'todo' DO NOTHING;
END;
$$;

-- Called by the job after a drain came back empty: returns once every writer that might have counted on this
-- job has committed (their rows are then visible to the next drain).
CREATE OR REPLACE FUNCTION fleet_wake_barrier(p_task text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_lock(fleet_wake_key(p_task));
    PERFORM pg_advisory_unlock(fleet_wake_key(p_task));
END;
$$;
