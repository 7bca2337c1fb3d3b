-- fleet_wake_once(queue, task): make sure a procrastinate job for `task` is waiting on `queue` and that its
-- worker is woken at commit. Called from deferred (commit-time) row triggers; acts once per transaction.
--
-- Why not procrastinate_defer_jobs_v1(): on a taken queueing lock it raises a unique violation, which would
-- abort the caller's INSERT (a push answered 503 for a reason that has nothing to do with it).
-- Why the FOR KEY SHARE: when a todo job already exists, a worker may fetch it, drain, and finish before this
-- transaction commits; our rows, invisible to it, would then wait for the sweep. Holding a key-share lock on
-- the waiting job makes the worker's `FOR UPDATE SKIP LOCKED` fetch skip it until we commit, and the NOTIFY we
-- send is delivered at commit, so the worker comes back for the job exactly when our rows become visible.
CREATE OR REPLACE FUNCTION fleet_wake_once(p_queue text, p_task text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    flag text := 'fleet.woke_' || replace(p_task, '.', '_');
    job_id bigint;
BEGIN
    IF current_setting(flag, true) = 'on' THEN
        RETURN;
    END IF;
    PERFORM set_config(flag, 'on', true);
    LOOP
        INSERT INTO procrastinate_jobs (queue_name, task_name, queueing_lock, args)
        VALUES (p_queue, p_task, p_task, '{}')
        ON CONFLICT (queueing_lock) WHERE status = 'todo' DO NOTHING
        RETURNING id INTO job_id;
        IF job_id IS NOT NULL THEN
            RETURN;  -- procrastinate's own insert trigger sends the NOTIFY
        END IF;
        SELECT id INTO job_id FROM procrastinate_jobs
         WHERE queueing_lock = p_task AND status = 'todo'
           FOR KEY SHARE;
        IF job_id IS NOT NULL THEN
            PERFORM pg_notify('procrastinate_queue_v1#' || p_queue,
                              json_build_object('type', 'job_inserted', 'job_id', job_id)::text);
            RETURN;
        END IF;
        -- The waiting job was taken between our INSERT and SELECT: try again.
    END LOOP;
END;
$$;
