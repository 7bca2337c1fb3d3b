"""The parts of procrastinate the project relies on beyond its public API, so that an upgrade fails here, loudly.

fleet/roles.py subclasses procrastinate's Worker and patches private parts of it (the new-job flag, the job manager's
fetch, the persisting of a job's outcome); events/sql/wake.sql (used by events_raw's and, through
state/sql/pending.sql, events_parsed's commit-time triggers) inserts into procrastinate's jobs table directly and
counts on that table's insert trigger to NOTIFY the worker; the role heals stalled jobs by calling procrastinate's SQL
functions. Each check says what breaks when it fails: re-read that code against the new procrastinate before
changing the pin in requirements/base.txt.
"""

from __future__ import annotations

import ast
import asyncio
import datetime
import importlib.metadata
import inspect
import json
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from procrastinate import App, BaseRetryStrategy, RetryDecision, exceptions, manager, psycopg_connector, testing
from procrastinate.contrib.django import app as django_app
from procrastinate.contrib.django.utils import connector_params
from procrastinate.jobs import DeleteJobCondition, Job
from procrastinate.manager import JobManager
from procrastinate.tasks import Task
from procrastinate.worker import Worker
from psycopg import sql

from events.poison import error_is_transient
from fleet.roles import FleetWorker, TransientDatabaseRetry, _queueing_lock_taken, _StickyWakeEvent

ROOT = Path(__file__).resolve().parents[2]
ROLES_PY = ROOT / "fleet" / "roles.py"
WAKE_SQL = ROOT / "events" / "sql" / "wake.sql"
PENDING_SQL = ROOT / "state" / "sql" / "pending.sql"
BASE_REQUIREMENTS = ROOT / "requirements" / "base.txt"

FIX = "the worker's lost-wake-up fix (fleet/roles.py) patches this; re-check FleetWorker before upgrading"
OUTCOME = "FleetWorker._persist_job_status (fleet/roles.py) overrides this; re-check it before upgrading"
HEAL = "the worker role's jobs_heal (fleet/roles.py) relies on this; re-check it before upgrading"
WAKE = "events/sql/wake.sql (the events_raw and events_parsed wake-up) relies on this; re-check it before upgrading"
PROBE_QUEUE = "fleet_contract_probe"
PROBE_TASK = "fleet.contract_probe"


# --- helpers --------------------------------------------------------------------------------------------------------


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def source(function: Callable[..., Any]) -> str:
    return textwrap.dedent(inspect.getsource(function))


def calls_to(function: Callable[..., Any], name: str) -> list[ast.Call]:
    """Every call of a method or function called `name` in `function`'s source."""
    return [
        node
        for node in ast.walk(ast.parse(source(function)))
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == name)
            or (isinstance(node.func, ast.Name) and node.func.id == name)
        )
    ]


def keywords(call: ast.Call) -> set[str]:
    return {keyword.arg for keyword in call.keywords if keyword.arg is not None}


def roles_calls(name: str) -> list[ast.Call]:
    """Every call of `name` in fleet/roles.py, read when the test runs (the module may have changed)."""
    tree = ast.parse(ROLES_PY.read_text())
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
    ]


def throwaway_app() -> App:
    """An App on procrastinate's in-memory connector: a Worker can be built on it without a database."""
    return App(connector=testing.InMemoryConnector())


def column_types(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            [table],
        )
        return dict(cursor.fetchall())


def wake_insert() -> str:
    """wake.sql's INSERT into procrastinate_jobs, as written."""
    found = re.search(r"INSERT INTO procrastinate_jobs\b.*?DO NOTHING", WAKE_SQL.read_text(), re.DOTALL)
    assert found, "events/sql/wake.sql no longer inserts into procrastinate_jobs: update this contract test"
    return found.group(0)


# --- the version --------------------------------------------------------------------------------------------------


def test_it_runs_the_procrastinate_version_requirements_pin() -> None:
    pins = re.findall(r"^procrastinate==(\S+)", BASE_REQUIREMENTS.read_text(), re.MULTILINE)
    assert len(pins) == 1, "requirements/base.txt pins procrastinate exactly once: these checks are for that version"
    installed = importlib.metadata.version("procrastinate")
    assert installed == pins[0], (
        f"procrastinate {installed} is installed, requirements/base.txt pins {pins[0]}: run these checks against "
        "the pinned version (`make test` installs it)"
    )


# --- the worker: fleet/roles.py -------------------------------------------------------------------------------------


def test_it_builds_the_worker_role_on_procrastinates_worker() -> None:
    assert issubclass(FleetWorker, Worker), "fleet/roles.py's FleetWorker must subclass procrastinate.worker.Worker"
    (call,) = roles_calls("FleetWorker")
    accepted = set(parameters(Worker.__init__))
    passed = keywords(call)
    assert passed <= accepted, f"Worker() no longer takes {sorted(passed - accepted)}: the worker role cannot start"
    delete_jobs = next(k.value for k in call.keywords if k.arg == "delete_jobs")
    assert isinstance(delete_jobs, ast.Constant), "fleet/roles.py passes delete_jobs as a literal"
    assert delete_jobs.value in {condition.value for condition in DeleteJobCondition}, (
        f"Worker(delete_jobs={delete_jobs.value!r}) is no longer a DeleteJobCondition: the worker role cannot start"
    )
    assert inspect.iscoroutinefunction(Worker.run), "the worker role awaits Worker.run()"
    assert callable(Worker.stop), "the worker role's SIGTERM handler calls Worker.stop()"


def test_it_keeps_the_new_job_flag_where_the_lost_wake_up_fix_replaces_it() -> None:
    worker = Worker(app=throwaway_app(), queues=[PROBE_QUEUE])
    assert isinstance(worker._new_job_event, asyncio.Event), f"Worker._new_job_event is no asyncio.Event: {FIX}"
    assigned = source(Worker).count("self._new_job_event =")
    outside_init = f"Worker sets _new_job_event outside __init__, over the flag FleetWorker puts there: {FIX}"
    assert assigned == 1, outside_init
    assert "self._new_job_event =" in source(Worker.__init__), outside_init
    fleet_worker = FleetWorker(app=throwaway_app(), queues=[PROBE_QUEUE])
    assert isinstance(fleet_worker._new_job_event, _StickyWakeEvent), FIX

    fetch_loop = source(Worker._fetch_and_process_jobs)
    assert "self._new_job_event.clear()" in fetch_loop, f"the fetch loop no longer clears the new-job flag: {FIX}"
    assert fetch_loop.index("job_manager.fetch_job(") < fetch_loop.index("self._new_job_event.clear()"), (
        f"the fetch loop no longer clears the flag after the fetch: {FIX}"
    )
    assert "self._new_job_event.set()" in source(Worker._handle_notification), (
        f"a job_inserted NOTIFY no longer sets the new-job flag: {FIX}"
    )
    assert "self._new_job_event.wait()" in source(Worker._run_loop), (
        f"the worker no longer waits on the new-job flag between fetches: {FIX}"
    )


def test_it_fetches_jobs_through_the_manager_method_the_worker_wraps() -> None:
    assert inspect.iscoroutinefunction(JobManager.fetch_job), f"JobManager.fetch_job is no longer async: {FIX}"
    assert {"queues", "worker_id"} <= set(parameters(JobManager.fetch_job)), (
        f"JobManager.fetch_job no longer takes queues and worker_id: {FIX}"
    )
    (call,) = calls_to(Worker._fetch_and_process_jobs, "fetch_job")
    assert ast.unparse(call.func) == "self.app.job_manager.fetch_job", (
        f"the fetch loop no longer looks fetch_job up on the app's job manager at each fetch: {FIX}"
    )
    assert (len(call.args), keywords(call)) == (0, {"queues", "worker_id"}), (
        f"the fetch loop calls fetch_job with other arguments than queues= and worker_id= (the wrapper forwards "
        f"keywords only): {FIX}"
    )


@pytest.mark.parametrize("notified_during_fetch", [True, False])
def test_it_keeps_a_wake_up_that_lands_during_an_empty_fetch(notified_during_fetch: bool) -> None:
    # procrastinate's own fetch loop, one round, with FleetWorker's flag; the fetch stands in for the database.
    app = throwaway_app()
    worker: FleetWorker | None = None
    fetched: list[dict[str, Any]] = []

    async def empty_fetch(**kwargs: Any) -> None:
        fetched.append(kwargs)
        if notified_during_fetch:
            assert worker is not None
            worker._new_job_event.set()  # a NOTIFY for a job the fetch's snapshot did not see

    app.job_manager.__dict__["_fleet_fetch_job"] = empty_fetch  # what FleetWorker wraps
    worker = FleetWorker(app=app, queues=[PROBE_QUEUE])
    worker.worker_id = 1
    asyncio.run(worker._fetch_and_process_jobs())

    assert fetched == [{"queues": [PROBE_QUEUE], "worker_id": 1}], f"the fetch loop did not fetch once: {FIX}"
    assert worker._new_job_event.is_set() is notified_during_fetch, (
        f"a wake-up that lands during an empty fetch is {'lost' if notified_during_fetch else 'invented'}: {FIX}"
    )


def test_it_persists_job_outcomes_through_the_method_the_worker_overrides() -> None:
    assert inspect.iscoroutinefunction(Worker._persist_job_status), OUTCOME
    assert parameters(Worker._persist_job_status) == [
        "self",
        "job",
        "status",
        "retry_decision",
        "context",
        "job_result",
    ], f"Worker._persist_job_status has another signature: {OUTCOME}"
    (call,) = calls_to(Worker._process_job, "_persist_job_status")
    assert (len(call.args), keywords(call)) == (0, {"job", "status", "retry_decision", "context", "job_result"}), (
        f"the worker no longer passes the job outcome by keyword: {OUTCOME}"
    )


def test_it_stops_and_identifies_the_worker_the_way_the_role_reads_them() -> None:
    worker = Worker(app=throwaway_app(), queues=[PROBE_QUEUE])
    assert isinstance(worker._stop_event, asyncio.Event), f"Worker._stop_event is gone: {OUTCOME}"
    worker.stop()
    assert worker._stop_event.is_set(), f"Worker.stop() no longer sets _stop_event: {OUTCOME}"

    assert worker.worker_id is None, f"Worker.worker_id is gone: {HEAL}"
    run = source(Worker.run)
    assert "self.worker_id = await self.app.job_manager.register_worker()" in run, (
        f"Worker.run no longer records its id in worker_id: {HEAL}"
    )
    shutdown = source(Worker._shutdown)
    unregister = shutdown.find("unregister_worker(self.worker_id)")
    assert 0 <= unregister < shutdown.find("self.worker_id = None"), (
        "a worker that unregistered no longer resets worker_id to None: the role takes a clean stop for a lost "
        f"database; {HEAL}"
    )


def test_it_finishes_a_superseded_job_by_id() -> None:
    finish = JobManager.finish_job_by_id_async
    assert inspect.iscoroutinefunction(finish), f"JobManager.finish_job_by_id_async is gone or not async: {OUTCOME}"
    assert parameters(finish) == ["self", "job_id", "status", "delete_job"], (
        f"JobManager.finish_job_by_id_async has another signature: {OUTCOME}"
    )


def test_it_retries_through_the_retry_strategy_hook_the_role_implements() -> None:
    hook = inspect.signature(BaseRetryStrategy.get_retry_decision).parameters
    assert {name: p.kind for name, p in hook.items() if name != "self"} == {
        "exception": inspect.Parameter.KEYWORD_ONLY,
        "job": inspect.Parameter.KEYWORD_ONLY,
    }, "BaseRetryStrategy.get_retry_decision(*, exception, job) changed: re-check TransientDatabaseRetry"
    assert {"id", "task_name", "attempts"} <= set(parameters(Job)), "Job lost a field fleet/roles.py reads"

    # procrastinate types the seconds as int; the role's back-off passes a float, which this checks it takes.
    decision = RetryDecision(retry_in={"seconds": 1.5})  # type: ignore[call-overload]  # a float, see above
    assert decision.retry_at is not None, "RetryDecision(retry_in=...) no longer sets retry_at"
    expected = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1.5)
    assert abs((decision.retry_at - expected).total_seconds()) < 5, "RetryDecision(retry_in=) means something else"

    # The role sets retry_strategy on tasks already registered: procrastinate must read it when a job fails.
    assert django_app.tasks, "the Django app registers no task"
    assert all(hasattr(task, "retry_strategy") for task in django_app.tasks.values()), (
        "Task.retry_strategy is gone: the worker role cannot retry jobs the database outage failed"
    )
    app = throwaway_app()

    @app.task(name="fleet.contract_probe")
    def probe() -> None: ...

    assert isinstance(probe, Task)
    probe.retry_strategy = TransientDatabaseRetry()
    job = Job(id=1, queue=PROBE_QUEUE, lock=None, queueing_lock=None, task_name=probe.name, attempts=0)
    retry = probe.get_retry_exception(exception=psycopg.OperationalError("server closed the connection"), job=job)
    assert retry is not None, "a task no longer consults the retry_strategy set on it after registration"
    assert retry.retry_decision.retry_at is not None
    delay = (retry.retry_decision.retry_at - datetime.datetime.now(datetime.UTC)).total_seconds()
    assert 0 < delay <= settings.ROLE_RECONNECT_MIN_S + 5, "the retry decision's delay is not the role's back-off"
    assert "get_retry_exception(exception=" in source(Worker._process_job), (
        "the worker no longer asks the task for a retry decision when a job fails"
    )


# --- the database: procrastinate's schema -------------------------------------------------------------------------


def test_it_has_the_job_columns_the_wake_up_trigger_writes(db: Any) -> None:
    expected = {
        "queue_name": "character varying(128)",
        "task_name": "character varying(128)",
        "queueing_lock": "text",
        "args": "jsonb",
    }
    (columns,) = re.findall(r"INSERT INTO procrastinate_jobs \(([^)]*)\)", wake_insert())
    written = {column.strip() for column in columns.split(",")}
    assert written == set(expected), f"wake.sql now writes {sorted(written)}: add their types to this test"
    types = column_types("procrastinate_jobs")
    for column, type_ in expected.items():
        assert types.get(column) == type_, f"procrastinate_jobs.{column} is {types.get(column)}, not {type_}: {WAKE}"
    assert types.get("status") == "procrastinate_job_status", f"procrastinate_jobs.status changed: {WAKE}"

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef JOIN pg_attribute ON attrelid = adrelid"
            " AND attnum = adnum WHERE adrelid = 'procrastinate_jobs'::regclass AND attname = 'status'"
        )
        (default,) = cursor.fetchone()
        cursor.execute("SELECT enum_range(NULL::procrastinate_job_status)::text[]")
        (statuses,) = cursor.fetchone()
    assert default.startswith("'todo'"), (
        f"a job wake.sql inserts no longer starts as 'todo' (default {default}): {WAKE}"
    )
    assert {"todo", "doing", "succeeded", "failed"} <= set(statuses), f"job statuses changed ({statuses}): {HEAL}"
    assert "fleet_wake_once(" in PENDING_SQL.read_text(), "state/sql/pending.sql wakes its projectors another way"


def test_it_has_the_columns_the_stalled_job_healing_reads(db: Any) -> None:
    jobs = column_types("procrastinate_jobs")
    for column, type_ in {"id": "bigint", "worker_id": "bigint", "queue_name": "character varying(128)"}.items():
        assert jobs.get(column) == type_, f"procrastinate_jobs.{column} is {jobs.get(column)}, not {type_}: {HEAL}"
    workers = column_types("procrastinate_workers")
    for column, type_ in {"id": "bigint", "last_heartbeat": "timestamp with time zone"}.items():
        assert workers.get(column) == type_, f"procrastinate_workers.{column} is {workers.get(column)}: {HEAL}"


def test_it_has_the_queueing_lock_index_the_wake_up_conflicts_on(db: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'procrastinate_jobs'"
            " AND indexdef LIKE 'CREATE UNIQUE INDEX %%(queueing_lock)%%'"
        )
        indexes = dict(cursor.fetchall())
    assert list(indexes) == [manager.QUEUEING_LOCK_CONSTRAINT], (
        f"the unique index on queueing_lock is {sorted(indexes)}, procrastinate looks for "
        f"{manager.QUEUEING_LOCK_CONSTRAINT}: a superseded retry is no longer recognised; {OUTCOME}"
    )
    (definition,) = indexes.values()
    assert "WHERE (status = 'todo'" in definition, f"the queueing lock no longer holds for waiting jobs only: {WAKE}"

    # PostgreSQL infers ON CONFLICT's arbiter index when it plans: EXPLAIN fails if wake.sql's clause matches none.
    statement = wake_insert().replace("p_queue", f"'{PROBE_QUEUE}'").replace("p_task", f"'{PROBE_TASK}'")
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {statement}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert manager.QUEUEING_LOCK_CONSTRAINT in plan, f"wake.sql's ON CONFLICT no longer uses the lock index: {WAKE}"


def test_it_has_the_job_functions_the_worker_role_calls(db: Any) -> None:
    signatures = {
        "procrastinate_retry_job_v2": "procrastinate_retry_job_v2(bigint, timestamptz, integer, varchar, varchar)",
        "procrastinate_finish_job_v1": "procrastinate_finish_job_v1(bigint, procrastinate_job_status, boolean)",
    }
    called = set(re.findall(r"\b(procrastinate_\w+_v\d+)\(", ROLES_PY.read_text()))
    assert called <= set(signatures), f"fleet/roles.py now calls {sorted(called - set(signatures))}: check them here"
    with connection.cursor() as cursor:
        for signature in signatures.values():
            cursor.execute("SELECT to_regprocedure(%s)", [signature])
            assert cursor.fetchone()[0] is not None, f"{signature} is gone: {HEAL}"


def test_it_recognises_procrastinates_wrapped_database_errors(db: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, queueing_lock, status)"
            " VALUES (%s, %s, %s, 'todo'), (%s, %s, %s, 'doing') RETURNING id, status",
            [PROBE_QUEUE, PROBE_TASK, PROBE_TASK] * 2,
        )
        doing_id = next(job_id for job_id, status in cursor.fetchall() if status == "doing")
        # A retry while the same work already waits: the unique violation the role's jobs_heal expects.
        with pytest.raises(IntegrityError) as conflict, transaction.atomic():
            cursor.execute("SELECT procrastinate_retry_job_v2(%s, now(), NULL, NULL, NULL)", [doing_id])
        cursor.execute("SELECT procrastinate_finish_job_v1(%s, 'failed', true)", [doing_id])
        cursor.execute("SELECT count(*) FROM procrastinate_jobs WHERE id = %s", [doing_id])
        assert cursor.fetchone() == (0,), f"finishing with delete_job no longer deletes the superseded job: {HEAL}"

    original = conflict.value.__cause__
    assert isinstance(original, psycopg.errors.UniqueViolation), f"the retry failed otherwise: {original!r}"

    async def through_procrastinate(error: BaseException) -> None:
        async with psycopg_connector.wrap_exceptions():
            raise error

    with pytest.raises(exceptions.UniqueViolation) as wrapped:
        asyncio.run(through_procrastinate(original))
    assert wrapped.value.constraint_name == manager.QUEUEING_LOCK_CONSTRAINT, OUTCOME
    assert _queueing_lock_taken(wrapped.value), (
        f"procrastinate's UniqueViolation no longer chains the database error (SQLSTATE 23505): {OUTCOME}"
    )

    with pytest.raises(exceptions.ConnectorException) as lost:
        asyncio.run(through_procrastinate(psycopg.OperationalError("server closed the connection unexpectedly")))
    assert error_is_transient(lost.value), (
        f"procrastinate's ConnectorException no longer chains the lost connection: outcomes are not retried; {OUTCOME}"
    )


def test_it_notifies_the_channel_the_worker_listens_to(db: Any) -> None:
    # The worker LISTENs on the channels of its queues; wake.sql's insert is announced by procrastinate's trigger.
    (listen,) = calls_to(Worker._start_side_tasks, "listen_for_jobs")
    queues = next((ast.unparse(k.value) for k in listen.keywords if k.arg == "queues"), None)
    assert queues == "self.queues", f"the worker no longer listens on its own queues' channels: {WAKE}"
    assert "get_channel_for_queues(queues=queues)" in source(JobManager.listen_for_jobs), (
        f"the job manager names its LISTEN channels another way: {WAKE}"
    )
    (channel,) = manager.get_channel_for_queues([PROBE_QUEUE])

    params = connector_params()  # the test database
    with psycopg.connect(**params, autocommit=True) as listener, psycopg.connect(**params, autocommit=True) as writer:
        # As procrastinate's connector listens: the channel name quoted as an identifier.
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        try:
            with writer.transaction():
                writer.execute("SELECT fleet_wake_once(%s, %s)", [PROBE_QUEUE, PROBE_TASK])
            notifies = list(listener.notifies(timeout=5, stop_after=1))
            row = writer.execute("SELECT id FROM procrastinate_jobs WHERE queue_name = %s", [PROBE_QUEUE]).fetchone()
            assert row is not None, f"fleet_wake_once queued no job: {WAKE}"
            (job_id,) = row
        finally:
            writer.execute("DELETE FROM procrastinate_jobs WHERE queue_name = %s", [PROBE_QUEUE])

    assert notifies, f"a job wake.sql inserts sends no NOTIFY on {channel!r}, where the worker listens: {WAKE}"
    (notify,) = notifies
    assert json.loads(notify.payload) == {"type": "job_inserted", "job_id": job_id}, (
        f"the NOTIFY payload changed ({notify.payload}): the worker's new-job flag is no longer set; {FIX}"
    )
