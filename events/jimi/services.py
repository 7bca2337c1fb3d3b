"""Writes of the Open API polls: each response goes to events_raw verbatim (source kind `jimi-poll`, push kind = the
method), where the parse path reads it like a push, and each poll moves its cursor (events_jimi_cursors) in the same
transaction — a restart resumes at the last committed window, with no gap and nothing polled twice.

Polls run in the cron role (events/tasks.py). A run stops taking new windows after JOB_TIME_BUDGET_S, so the role's
own heartbeat never waits long; the next run goes on from the cursor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from domain.models import Account
from events.jimi.client import JimiClient, JimiResponse, endpoint_for
from events.jimi.credentials import CredentialsMissing, credentials_resolve
from events.jimi.errors import JimiError
from events.jimi.selectors import account_imeis, devices_for_backfill, poll_source_name, track_gaps
from events.jimi.signing import Param
from events.models import JimiCursor, PushSource, SourceKind
from events.parsers.base import ParseError
from events.parsers.poll.reports import trip_rows
from events.parsers.poll.responses import rows

log = structlog.get_logger(__name__)

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
ONE_SECOND = timedelta(seconds=1)


def row_count(rows_of: Callable[[dict[str, Any]], list[Any]], document: dict[str, Any]) -> int:
    """Rows in an answer as its parser finds them; an answer without a row array has none (the parser says why)."""
    try:
        return len(rows_of(document))
    except ParseError:
        return 0


def jimi_time(moment: datetime) -> str:
    """Jimi's request time: yyyy-MM-dd HH:mm:ss in UTC (Q1)."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


# --- the raw log and the cursors ------------------------------------------------------------------------------------


def poll_source(account: Account) -> PushSource:
    """The account's `jimi-poll` source: the raw rows' source, whose account unknown devices join. Created on first
    use; it authenticates nothing (the gateway refuses any push to a poll source), so it has no secret."""
    source, _ = PushSource.objects.get_or_create(
        name=poll_source_name(account), defaults={"kind": SourceKind.JIMI_POLL, "account": account, "secret": ""}
    )
    return source


def with_request_params(response: JimiResponse, added: dict[str, str]) -> bytes:
    """The body with request parameters its rows lack added at the top level (track.list rows carry no IMEI; the
    parser reads a top-level "imei", docs/jimi.md). The text is prefixed, Jimi's bytes follow unchanged."""
    body = response.body.lstrip()
    missing = {k: v for k, v in added.items() if k not in response.document}
    if not missing or not body.startswith(b"{"):
        return response.body
    rest = body[1:].lstrip()
    prefix = json.dumps(missing, ensure_ascii=False)[1:-1].encode("utf-8")
    return b"{" + prefix + (b"," if not rest.startswith(b"}") else b"") + rest


def raw_responses_write(source: PushSource, responses: Sequence[tuple[JimiResponse, bytes]]) -> int:
    """One events_raw row per response; the parse worker is woken at commit by the table's own trigger."""
    with connection.cursor() as cursor:
        for response, body in responses:
            headers = {"x-jimi-request": response.params}
            cursor.execute(
                "INSERT INTO events_raw (source_id, source_kind, push_kind, content_type, headers, body)"
                " VALUES (%s, %s, %s, 'application/json', %s, %s)",
                [source.pk, SourceKind.JIMI_POLL, response.method, json.dumps(headers), body],
            )
    return len(responses)


def cursor_get(account: Account, stream: str, key: str = "") -> JimiCursor:
    cursor, _ = JimiCursor.objects.get_or_create(account=account, stream=stream, key=key)
    return cursor


def cursor_advance(cursor: JimiCursor, *, position: datetime | None, calls: int, now: datetime) -> None:
    cursor.position = position
    cursor.polled_at = now
    cursor.calls += calls
    cursor.error, cursor.error_at = "", None
    cursor.save(update_fields=["position", "polled_at", "calls", "error", "error_at"])


def cursor_fail(account: Account, stream: str, error: BaseException, *, key: str = "") -> None:
    """Record why a poll failed on its cursor (shown in the ops overview); its position stays where it was."""
    message = str(error)[:500] or type(error).__name__
    JimiCursor.objects.update_or_create(
        account=account, stream=stream, key=key, defaults={"error": message, "error_at": timezone.now()}
    )
    log.warning("jimi.poll_failed", account=account.pk, stream=stream, key=key, error=message)


def _commit(
    account: Account,
    cursor: JimiCursor,
    responses: Sequence[tuple[JimiResponse, bytes]],
    *,
    position: datetime | None,
    now: datetime,
) -> int:
    with transaction.atomic():
        written = raw_responses_write(poll_source(account), responses)
        cursor_advance(cursor, position=position, calls=len(responses), now=now)
    return written


# --- clients -------------------------------------------------------------------------------------------------------


def account_client(account: Account) -> JimiClient:
    return JimiClient(endpoint=endpoint_for(account.api_node), credentials=credentials_resolve(account.credential_ref))


def jimi_target(account: Account, client: JimiClient) -> str:
    """The Jimi account the methods ask about: Account.jimi_account, else the user the credentials log in as."""
    return account.jimi_account or client.credentials.user_id


@dataclass
class PollOutcome:
    account: str
    stream: str
    calls: int = 0
    raw_rows: int = 0
    windows: int = 0
    error: str = ""
    done: bool = True  # False: the time budget ended the run with work left


@dataclass
class Budget:
    seconds: float
    started: float = field(default_factory=time.monotonic)

    def spent(self) -> bool:
        return time.monotonic() - self.started >= self.seconds


# --- locations and devices ------------------------------------------------------------------------------------------


def _newest_fix(document: dict[str, Any]) -> datetime | None:
    from events.parsers.fields import to_time

    newest = None
    try:
        found = rows(document)
    except ParseError:
        return None
    for row in found:
        try:
            moment = to_time(row.get("gpsTime")) if isinstance(row, dict) else None
        except ValueError:
            continue
        if moment is not None and (newest is None or moment > newest):
            newest = moment
    return newest


def locations_poll(account: Account, client: JimiClient, *, now: datetime, budget: Budget) -> PollOutcome:
    """The latest fix of every device of the account. The cursor's position is the newest device time seen (push
    health: are the devices active?)."""
    cursor = cursor_get(account, "locations")
    response = client.call("jimi.user.device.location.list", {"target": jimi_target(account, client)})
    written = _commit(account, cursor, [(response, response.body)], position=_newest_fix(response.document), now=now)
    return PollOutcome(account.name, "locations", calls=1, raw_rows=written)


def devices_poll(account: Account, client: JimiClient, *, now: datetime, budget: Budget) -> PollOutcome:
    """Every device of the account (jimi.user.device.list); the parse provisions the ones we do not know yet."""
    cursor = cursor_get(account, "devices")
    response = client.call("jimi.user.device.list", {"target": jimi_target(account, client)})
    written = _commit(account, cursor, [(response, response.body)], position=now, now=now)
    return PollOutcome(account.name, "devices", calls=1, raw_rows=written)


# --- closed windows: reports, alarms, OBD ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowStream:
    """A method polled over closed, consecutive time windows for chunks of the account's IMEIs, page by page."""

    stream: str
    method: str
    max_span_s: Callable[[], int]
    params: Callable[[str, str, datetime, datetime], dict[str, Param]]  # target, imeis, begin, end (inclusive)
    page_param: str  # "page_no" (1, 2, …) or "start_row" (0, page_size, …)
    rows_of: Callable[[dict[str, Any]], list[Any]] = rows
    variants: tuple[dict[str, Param], ...] = ({},)  # extra parameter sets, each polled (parking: acc_type on, off)
    max_rows: Callable[[], int] | None = None  # a window that reaches this many rows is halved (alarm list)


def _report(target: str, imeis: str, begin: datetime, end: datetime) -> dict[str, Param]:
    return {"account": target, "imeis": imeis, "start_time": jimi_time(begin), "end_time": jimi_time(end)}


def _ranged(target: str, imeis: str, begin: datetime, end: datetime) -> dict[str, Param]:
    return {"imeis": imeis, "begin_time": jimi_time(begin), "end_time": jimi_time(end)}


WINDOW_STREAMS = (
    WindowStream(
        "trips", "jimi.open.platform.report.trips", lambda: settings.JIMI_REPORT_MAX_SPAN_S,
        lambda t, i, b, e: {**_report(t, i, b, e), "type": "list"}, "start_row", rows_of=trip_rows,
    ),
    WindowStream(
        "parking", "jimi.open.platform.report.parking", lambda: settings.JIMI_REPORT_MAX_SPAN_S, _report, "start_row",
        variants=({"acc_type": "off"}, {"acc_type": "on"}),
    ),
    WindowStream("mileage", "jimi.device.track.mileage", lambda: settings.JIMI_REPORT_MAX_SPAN_S, _ranged, "start_row"),
    WindowStream(
        "alarms", "jimi.device.alarm.list", lambda: settings.JIMI_ALARM_MAX_SPAN_S, _ranged, "page_no",
        max_rows=lambda: settings.JIMI_ALARM_MAX_ROWS,
    ),
    WindowStream("obd", "jimi.device.obd.list", lambda: settings.JIMI_OBD_MAX_SPAN_S, _report, "page_no"),
    WindowStream("obd_fault", "jimi.device.obd.fault", lambda: settings.JIMI_OBD_MAX_SPAN_S, _report, "page_no"),
)  # fmt: skip


def closed_until(now: datetime, every_s: int) -> datetime:
    """The end of the last closed window: now, rounded down to a multiple of `every_s` since the epoch (UTC)."""
    stamp = int(now.timestamp())
    return datetime.fromtimestamp(stamp - stamp % max(every_s, 1), UTC)


def _window_start(cursor: JimiCursor, *, now: datetime, end: datetime) -> datetime:
    oldest = now - timedelta(seconds=settings.JIMI_HISTORY_MAX_AGE_S)
    start = cursor.position or closed_until(end - timedelta(seconds=settings.JIMI_POLL_LOOKBACK_S), 60)
    return max(start, closed_until(oldest, 60) + timedelta(minutes=1))


def _pages(
    client: JimiClient, spec: WindowStream, params: dict[str, Param], cap: int | None
) -> tuple[list[JimiResponse], bool]:
    """Every page of one request; True when the rows reached `cap` (the window must be shorter)."""
    size = settings.JIMI_PAGE_SIZE
    responses, seen, index = [], 0, 0
    while True:
        page = index + 1 if spec.page_param == "page_no" else index * size
        response = client.call(spec.method, {**params, spec.page_param: page, "page_size": size})
        responses.append(response)
        found = row_count(spec.rows_of, response.document)
        seen += found
        if cap is not None and seen >= cap:
            return responses, True
        if found < size:
            return responses, False
        index += 1


def _window_fetch(
    client: JimiClient, spec: WindowStream, target: str, imeis: list[str], begin: datetime, end: datetime
) -> list[JimiResponse] | None:
    """All responses for [begin, end) over every IMEI chunk and variant; None when a capped method needs a shorter
    window."""
    cap = spec.max_rows() if spec.max_rows else None
    chunk = settings.JIMI_IMEIS_PER_CALL
    responses: list[JimiResponse] = []
    for first in range(0, len(imeis), chunk):
        group = ",".join(imeis[first : first + chunk])
        for variant in spec.variants:
            params = {**spec.params(target, group, begin, end - ONE_SECOND), **variant}
            pages, capped = _pages(client, spec, params, cap)
            if capped:
                return None
            responses.extend(pages)
    return responses


def window_poll(
    spec: WindowStream, account: Account, client: JimiClient, *, now: datetime, budget: Budget
) -> PollOutcome:
    """Poll the closed windows from the cursor up to the last closed one, oldest first, each committed with its cursor
    move; a catch-up after downtime takes windows up to the method's maximum span."""
    outcome = PollOutcome(account.name, spec.stream)
    imeis = account_imeis(account)
    if not imeis:
        return outcome  # nothing to ask about yet: the window waits for the devices poll
    cursor = cursor_get(account, spec.stream)
    every = settings.JIMI_POLL_REPORTS_EVERY_S
    closed = closed_until(now, every)
    target = jimi_target(account, client)
    begin = _window_start(cursor, now=now, end=closed)
    while begin < closed:
        if budget.spent():
            outcome.done = False
            break
        end = min(begin + timedelta(seconds=spec.max_span_s()), closed)
        responses = _window_fetch(client, spec, target, imeis, begin, end)
        while responses is None and end - begin > timedelta(seconds=every):
            end = begin + (end - begin) / 2  # the alarm list returns at most JIMI_ALARM_MAX_ROWS rows per range
            responses = _window_fetch(client, spec, target, imeis, begin, end)
        if responses is None:
            cap = spec.max_rows() if spec.max_rows else "?"
            raise JimiError(f"more than {cap} rows in one window", method=spec.method)
        outcome.calls += len(responses)
        outcome.raw_rows += _commit(account, cursor, [(r, r.body) for r in responses], position=end, now=now)
        outcome.windows += 1
        begin = end
    return outcome


# --- track backfill -------------------------------------------------------------------------------------------------


def _spans(begin: datetime, end: datetime, max_span: timedelta) -> Iterator[tuple[datetime, datetime]]:
    while begin <= end:
        last = min(begin + max_span - ONE_SECOND, end)
        yield begin, last
        begin = last + ONE_SECOND


def backfill_poll(account: Account, client: JimiClient, *, now: datetime, budget: Budget) -> PollOutcome:
    """Fetch the history of every gap in an active device's fixes (jimi.device.track.list, one IMEI, at most
    JIMI_TRACK_MAX_SPAN_S per call, within JIMI_HISTORY_MAX_AGE_S, ending before now). Looks at fixes older than
    JIMI_TRACK_SETTLE_S; each device's cursor moves past the gaps fetched."""
    outcome = PollOutcome(account.name, "track")
    until = now - timedelta(seconds=settings.JIMI_TRACK_SETTLE_S)
    oldest = now - timedelta(seconds=settings.JIMI_HISTORY_MAX_AGE_S) + timedelta(minutes=1)
    span = timedelta(seconds=settings.JIMI_TRACK_MAX_SPAN_S)
    for device in devices_for_backfill(account):
        if budget.spent():
            outcome.done = False
            break
        cursor = cursor_get(account, "track", device.imei)
        since = max(cursor.position or now - timedelta(seconds=settings.JIMI_POLL_LOOKBACK_S), oldest)
        if since >= until:
            continue
        window = track_gaps(device_id=device.pk, since=since, until=until, oldest=oldest)
        position = since
        for before, after in window.gaps:
            if budget.spent():
                outcome.done = False
                break
            responses = []
            for begin, end in _spans(max(before + ONE_SECOND, oldest), after - ONE_SECOND, span):
                params: dict[str, Param] = {
                    "imei": device.imei,
                    "begin_time": jimi_time(begin),
                    "end_time": jimi_time(end),
                }
                response = client.call("jimi.device.track.list", params)
                responses.append((response, with_request_params(response, {"imei": device.imei})))
            position = max(position, after)
            outcome.calls += len(responses)
            outcome.raw_rows += _commit(account, cursor, responses, position=position, now=now)
            outcome.windows += 1
        else:
            if window.last_fix is not None and window.last_fix > position:
                cursor_advance(cursor, position=window.last_fix, calls=0, now=now)
    return outcome


# --- running a poll over every account -----------------------------------------------------------------------------

AccountPoll = Callable[[Account, JimiClient], PollOutcome]


@contextmanager
def _client_or_failure(account: Account, stream: str, outcomes: list[PollOutcome]) -> Iterator[JimiClient | None]:
    try:
        client = account_client(account)
    except (CredentialsMissing, JimiError) as exc:
        cursor_fail(account, stream, exc)
        outcomes.append(PollOutcome(account.name, stream, error=str(exc)))
        yield None
        return
    with client:
        yield client


POLLS: dict[str, list[tuple[str, Callable[..., PollOutcome]]]] = {
    "locations": [("locations", locations_poll)],
    "devices": [("devices", devices_poll)],
    "reports": [
        (spec.stream, lambda a, c, *, now, budget, spec=spec: window_poll(spec, a, c, now=now, budget=budget))
        for spec in WINDOW_STREAMS
    ],
    "backfill": [("track", backfill_poll)],
}


def jimi_poll(
    kind: str, *, accounts: Sequence[Account] | None = None, now: datetime | None = None
) -> list[PollOutcome]:
    """Run one kind of poll ("locations", "devices", "reports", "backfill") for every polled account. One account's
    or one stream's failure is recorded on its cursor and does not stop the others."""
    from events.jimi.selectors import accounts_polled

    now = now or timezone.now()
    budget = Budget(settings.JOB_TIME_BUDGET_S)
    outcomes: list[PollOutcome] = []
    for account in accounts_polled() if accounts is None else accounts:
        with _client_or_failure(account, POLLS[kind][0][0], outcomes) as client:
            if client is None:
                continue
            for stream, poll in POLLS[kind]:
                try:
                    outcome = poll(account, client, now=now, budget=budget)
                except JimiError as exc:
                    cursor_fail(account, stream, exc)
                    outcome = PollOutcome(account.name, stream, error=str(exc))
                outcomes.append(outcome)
                log.info("jimi.polled", **{k: v for k, v in vars(outcome).items() if v not in ("", None)})
    return outcomes


# --- the contract check ----------------------------------------------------------------------------------------------

CONTRACT_ALERT = "jimi_contract_drift"


class ContractAccountMissing(LookupError):
    pass


@dataclass
class ContractResult:
    method: str
    ok: bool
    detail: str
    drifts: list[str] = field(default_factory=list)


def _contract_calls(account: Account, client: JimiClient, now: datetime) -> Iterator[tuple[str, Callable[[], Any]]]:
    """(method, call) for every method the platform depends on, asked about a recent window and the account's own
    devices (from the device list the first call returns)."""
    target = jimi_target(account, client)
    imeis: list[str] = []

    def devices() -> JimiResponse:
        response = client.call("jimi.user.device.list", {"target": target})
        found = (
            [row.get("imei") for row in rows(response.document) if isinstance(row, dict)]
            if row_count(rows, response.document)
            else []
        )
        imeis.extend(str(imei) for imei in found[: settings.JIMI_IMEIS_PER_CALL] if imei)
        return response

    def with_devices(method: str, params: Callable[[str], dict[str, Param]]) -> Callable[[], JimiResponse]:
        def call() -> JimiResponse:
            if not imeis:
                raise JimiError("not checked: the account has no device to ask about", method=method)
            return client.call(method, params(",".join(imeis)))

        return call

    end = closed_until(now, 60) - ONE_SECOND
    day = end - timedelta(days=1) + ONE_SECOND
    hour = end - timedelta(hours=1) + ONE_SECOND
    page = {"page_size": settings.JIMI_PAGE_SIZE}
    yield "jimi.oauth.token.get", client.token_get
    yield "jimi.oauth.token.refresh", client.token_refresh
    yield "jimi.user.device.list", devices
    yield "jimi.user.device.location.list", lambda: client.call("jimi.user.device.location.list", {"target": target})
    yield (
        "jimi.device.track.list",
        with_devices(
            "jimi.device.track.list",
            lambda i: {**_ranged(target, i, hour, end), "imeis": None, "imei": i.split(",")[0]},
        ),
    )
    yield (
        "jimi.device.alarm.list",
        with_devices("jimi.device.alarm.list", lambda i: {**_ranged(target, i, day, end), "page_no": 1, **page}),
    )
    yield (
        "jimi.open.platform.report.parking",
        with_devices(
            "jimi.open.platform.report.parking",
            lambda i: {**_report(target, i, day, end), "acc_type": "off", "start_row": 0, **page},
        ),
    )
    yield (
        "jimi.open.platform.report.trips",
        with_devices(
            "jimi.open.platform.report.trips",
            lambda i: {**_report(target, i, day, end), "type": "list", "start_row": 0, **page},
        ),
    )
    yield (
        "jimi.device.track.mileage",
        with_devices("jimi.device.track.mileage", lambda i: {**_ranged(target, i, day, end), "start_row": 0, **page}),
    )
    yield (
        "jimi.device.obd.list",
        with_devices("jimi.device.obd.list", lambda i: {**_report(target, i, day, end), "page_no": 1, **page}),
    )
    yield (
        "jimi.device.obd.fault",
        with_devices("jimi.device.obd.fault", lambda i: {**_report(target, i, day, end), "page_no": 1, **page}),
    )


def _contract_one(method: str, call: Callable[[], JimiResponse]) -> ContractResult:
    from events.jimi.contract import drifts

    try:
        response = call()
    except JimiError as exc:
        return ContractResult(method, ok=False, detail=f"call failed: {exc}")
    found = drifts(method, response.document)
    if found:
        return ContractResult(method, ok=False, detail="\n".join(found), drifts=found)
    checked = row_count(trip_rows if method == "jimi.open.platform.report.trips" else rows, response.document)
    note = "matches" if checked or method.startswith("jimi.oauth") else "matches (no rows in the answer: envelope only)"
    return ContractResult(method, ok=True, detail=note)


def contract_check_run(*, account: Account | None = None, now: datetime | None = None) -> list[ContractResult]:
    """Call every method we depend on as the contract account (JIMI_CONTRACT_ACCOUNT), validate each answer against
    the pinned models (events/jimi/contract.py) and store one events_contract_checks row per method, all with the same
    checked_at (one run: contract_drift_days counts from the last run where all matched). A drift opens the alert
    `jimi_contract_drift` at once; a run where everything matches closes it."""
    from events.models import ContractCheck
    from slo.services import slo_alert_clear, slo_alert_raise

    now = now or timezone.now()
    if account is None:
        account = Account.objects.filter(name=settings.JIMI_CONTRACT_ACCOUNT).first()
        if account is None:
            raise ContractAccountMissing(
                f"no account named {settings.JIMI_CONTRACT_ACCOUNT!r} (JIMI_CONTRACT_ACCOUNT) to check the contract as"
            )
    with account_client(account) as client:
        results = [_contract_one(method, call) for method, call in _contract_calls(account, client, now)]
    ContractCheck.objects.bulk_create(
        ContractCheck(checked_at=now, account=account, method=r.method, ok=r.ok, detail=r.detail) for r in results
    )
    drifting = [r for r in results if not r.ok]
    if drifting:
        slo_alert_raise(metric=CONTRACT_ALERT, value=float(len(drifting)), threshold=0.0, now=now)
        log.warning("jimi.contract_drift", account=account.pk, methods=[r.method for r in drifting])
    else:
        slo_alert_clear(metric=CONTRACT_ALERT, value=0.0, now=now)
    return results
