"""The pages for dispatchers and managers: thin views over templates/fleet/.

Each page is a small server-rendered document plus one page module (static/fleet/<page>.js) that imports
static/fleet/fleet-core.js and reads the data from the API with the session cookie (/api/views/*, /api/reports/*).
These views only decide who may see a page and what the page is told: the settings it needs, the SLO status
for its header, the filter choices. They compute no fleet data; the view contracts do.

Who may see what: the API's scopes (fleet.auth). An anonymous visitor is sent to /login/; a logged-in user
without read:fleet gets a 403 page saying so. The login is throttled like the admin's (fleet.auth's counter:
LOGIN_FAILURES_MAX per LOGIN_FAILURES_WINDOW_S per username + IP, then 429 with Retry-After).

Static names: the manifest storage serves every file under a hashed name. A page module imports fleet-core.js by
its plain relative name and fleet-core.js imports MapLibre as "maplibre-gl"; the import map each page carries
(`import_map`) sends both to their hashed names, so a deploy never mixes old and new modules.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib.auth.views import LoginView, redirect_to_login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET

from domain.models import AssignedCity, CostCentre
from domain.plates import normalize_plate
from fleet.auth import READ_FLEET, login_lock_wait, login_succeeded, user_scopes
from fleet.ratelimit import client_ip
from ops.reports import REPORTS
from slo.selectors import slo_status
from state.dashboards.selectors import MAX_HISTORY_DAYS

MAPLIBRE_VERSION = "6.17.0"
MAPLIBRE_DIR = f"vendor/maplibre-gl/{MAPLIBRE_VERSION}"
# Bare specifiers and plain names the modules import → the files they stand for (see the module docstring).
IMPORTS = {
    "maplibre-gl": f"{MAPLIBRE_DIR}/maplibre-gl.mjs",
    f"{settings.STATIC_URL}fleet/fleet-core.js": "fleet/fleet-core.js",
}

NAV = (
    ("fleet-live", "Live"),
    ("fleet-history", "History"),
    ("fleet-dispatch", "Dispatch"),
    ("fleet-routes", "Routes"),
    ("fleet-reports", "Reports"),
)
# Short names for the header's SLO badges (an SLO not listed here shows under its metric name).
SLO_LABELS = {
    "fix_freshness_pct_60s": "Freshness",
    "trip_lag_p95_sec": "Trip lag",
    "route_p95_ms": "Routing",
    "parser_lag_p95_sec": "Parser lag",
    "contract_drift_days": "Jimi contract",
}
SLO_STATE_TEXT = {"met": "met", "breached": "breached", "no_data": "no data", "not_measured": "no data"}
# Operational states and the shape each has on the map and in legends (static/fleet/fleet-core.js, STYLE_CLASSES).
STATES = {"moving": "arrow", "idling": "arrow", "parked": "square", "offline": "ring", "unknown": "ring"}
PLAYBACK_RATES = (1, 2, 5, 10, 20)

# Endpoints that later work adds. The pages ask the gateway's own URL map whether they exist, so a page never
# sends a request that can only answer 404 (a browser logs every 404 as a console error); the page modules still
# treat a 404 as "not configured yet", should an answer disagree.
ROUTES_PATH = "/api/routes"
ROAD_TILES_PATH = "/tiles/roads/{z}/{x}/{y}.pbf"


def _served(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


def _json_for_script(value: Any) -> SafeString:
    """JSON that is safe inside a <script> element (the escapes of Django's json_script)."""
    text = json.dumps(value, separators=(",", ":"))
    return mark_safe(text.replace("<", "\\u003C").replace(">", "\\u003E").replace("&", "\\u0026"))  # noqa: S308


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.DISPLAY_TIME_ZONE)


def _local_input(moment: datetime) -> str:
    """A moment as an <input type="datetime-local"> value in the display zone."""
    return moment.astimezone(_zone()).strftime("%Y-%m-%dT%H:%M")


def _slo_badges(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "metric": m["metric"],
            "label": SLO_LABELS.get(m["metric"], m["metric"]),
            "state": "no_data" if m["state"] == "not_measured" else m["state"],
            "text": SLO_STATE_TEXT.get(m["state"], m["state"]),
            "description": m["description"],
        }
        for m in status["metrics"]
    ]


def page_context(request: HttpRequest, page: str, title: str, **extra: Any) -> dict[str, Any]:
    """What every page's header and modules need."""
    now = timezone.now().astimezone(_zone())
    readable = READ_FLEET in user_scopes(request.user)
    config = {
        "page": page,
        "timeZone": settings.DISPLAY_TIME_ZONE,
        "zoneName": now.tzname(),
        "livePollS": settings.LIVE_POLL_S,
        "maxHistoryDays": MAX_HISTORY_DAYS,
        "loginUrl": reverse("fleet-login"),
        "sloLabels": SLO_LABELS,
        "map": {
            "styleUrl": settings.MAP_STYLE_URL,
            "offline": settings.MAP_OFFLINE,
            "roadTiles": ROAD_TILES_PATH if _served(ROAD_TILES_PATH.format(z=0, x=0, y=0)) else None,
            "workerUrl": static(f"{MAPLIBRE_DIR}/maplibre-gl-worker.mjs"),
        },
        "routes": ROUTES_PATH if _served(ROUTES_PATH) else None,
    }
    return {
        "title": title,
        "page": page,
        "nav": [{"name": name, "label": label, "url": reverse(name), "current": name == page} for name, label in NAV],
        "readable": readable,
        "slo_badges": _slo_badges(slo_status(now=now)) if readable else [],
        "clock": now,
        "clock_text": now.strftime("%H:%M:%S"),
        "zone_name": now.tzname(),
        "config": _json_for_script(config),
        "import_map": _json_for_script({"imports": {name: static(path) for name, path in IMPORTS.items()}}),
        "maplibre_module": static(IMPORTS["maplibre-gl"]),
        "maplibre_css": static(f"{MAPLIBRE_DIR}/maplibre-gl.css"),
        **extra,
    }


PageView = Callable[..., HttpResponseBase]


def read_fleet_page(view: PageView) -> PageView:
    """The API's rule for a page: anonymous → the login page; logged in without read:fleet → 403."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if READ_FLEET not in user_scopes(request.user):
            context = page_context(request, "forbidden", "Not allowed", needed=READ_FLEET)
            return render(request, "fleet/forbidden.html", context, status=403)
        return view(request, *args, **kwargs)

    return guarded


# --- Login --------------------------------------------------------------------------------------------------


class FleetLoginView(LoginView):
    """The pages' login, throttled per username + IP with fleet.auth's counter (the admin login's rule): every
    failed authenticate() counts (fleet.auth's signal receiver), a success resets the count."""

    template_name = "fleet/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**page_context(self.request, "login", "Log in"), **super().get_context_data(**kwargs)}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username, ip = request.POST.get("username", ""), client_ip(request)
        wait = login_lock_wait(username, ip)
        if wait:
            # An unbound form: validating it would authenticate, and count one more failure.
            form = self.get_form_class()(request, initial={"username": username[:150]})
            context = self.get_context_data(form=form, locked_for=wait)
            locked = self.render_to_response(context, status=429)
            locked["Retry-After"] = str(wait)
            return locked
        response: HttpResponse = super().post(request, *args, **kwargs)
        if response.status_code == 302:
            login_succeeded(username, ip)
        return response


@require_GET
def home(request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("fleet-live"))


# --- Pages --------------------------------------------------------------------------------------------------


def _choices(names: Iterable[str]) -> list[tuple[str, str]]:
    return [(n, n) for n in names]


def _identity_choices() -> dict[str, list[tuple[str, str]]]:
    return {
        "cost_centres": _choices(CostCentre.objects.order_by("name").values_list("name", flat=True)),
        "cities": _choices(AssignedCity.objects.order_by("name").values_list("name", flat=True)),
    }


@require_GET
@read_fleet_page
def live(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "fleet/live.html",
        page_context(request, "fleet-live", "Live", states=STATES, poll_s=settings.LIVE_POLL_S, **_identity_choices()),
    )


@require_GET
@read_fleet_page
def history(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    context = page_context(
        request,
        "fleet-history",
        "History",
        plates=request.GET.get("plates", "")[:400],
        since=_local_input(now - timedelta(days=1)),
        until=_local_input(now),
        config_max_days=MAX_HISTORY_DAYS,
        rates=PLAYBACK_RATES,
    )
    return render(request, "fleet/history.html", context)


@require_GET
@read_fleet_page
def dispatch(request: HttpRequest) -> HttpResponse:
    return render(request, "fleet/dispatch.html", page_context(request, "fleet-dispatch", "Dispatch"))


@require_GET
@read_fleet_page
def routes(request: HttpRequest) -> HttpResponse:
    context = page_context(
        request, "fleet-routes", "Routes", depart=_local_input(timezone.now()), routes_configured=_served(ROUTES_PATH)
    )
    return render(request, "fleet/routes.html", context)


# --- Reports: a plain GET form; a valid one is sent on to the report endpoint ---------------------------------


def plates_from_text(text: str) -> tuple[str, ...]:
    """Plates typed any way, separated by commas, semicolons or new lines → their normal forms."""
    plates, bad = [], []
    for raw in text.replace(";", ",").replace("\n", ",").split(","):
        if not raw.strip():
            continue
        try:
            plates.append(normalize_plate(raw))
        except ValueError:
            bad.append(raw.strip())
    if bad:
        raise ValidationError(f"not a number plate: {', '.join(bad)}")
    return tuple(dict.fromkeys(plates))


class ReportForm(forms.Form):
    report = forms.ChoiceField(choices=[(r.name, r.title) for r in REPORTS.values()])
    format = forms.ChoiceField(
        choices=[("xlsx", "Excel (XLSX)"), ("csv", "CSV")], initial="xlsx", widget=forms.RadioSelect
    )
    since = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    cost_centre = forms.MultipleChoiceField(required=False, widget=forms.SelectMultiple(attrs={"size": 4}))
    assigned_city = forms.MultipleChoiceField(required=False, widget=forms.SelectMultiple(attrs={"size": 4}))
    plates = forms.CharField(
        required=False,
        max_length=2000,
        help_text="Comma-separated, typed any way (kca-123a finds KCA 123A).",
        widget=forms.TextInput(attrs={"placeholder": "KCA 123A, KCB 456B", "autocomplete": "off"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = _identity_choices()
        self.fields["cost_centre"].choices = choices["cost_centres"]  # type: ignore[attr-defined]  # a ChoiceField
        self.fields["assigned_city"].choices = choices["cities"]  # type: ignore[attr-defined]  # a ChoiceField

    def clean_plates(self) -> tuple[str, ...]:
        return plates_from_text(self.cleaned_data.get("plates") or "")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until <= since:
            raise ValidationError("The range is empty: “until” must be after “since”.")
        return cleaned

    def api_url(self) -> str:
        """The report endpoint's URL for this (valid) form."""
        data = self.cleaned_data
        filters = {
            key: list(values)
            for key, values in (
                ("cost_centre", data["cost_centre"]),
                ("assigned_city", data["assigned_city"]),
                ("vehicle_numbers", data["plates"]),
            )
            if values
        }
        query = {"format": data["format"], "since": data["since"].isoformat(), "until": data["until"].isoformat()}
        if filters:
            query["filters"] = json.dumps(filters, separators=(",", ":"))
        return f"{reverse('api:report', kwargs={'name': data['report']})}?{urlencode(query)}"


@require_GET
@read_fleet_page
def reports(request: HttpRequest) -> HttpResponse:
    """The form; submitted (it carries `report`) and valid, a redirect to the report's download."""
    # Times typed into the form are in the display zone, as every time the pages show.
    with timezone.override(_zone()):
        if "report" in request.GET:
            form = ReportForm(request.GET)
            if form.is_valid():
                return HttpResponseRedirect(form.api_url())
        else:
            now = timezone.now()
            initial = {"since": _local_input(now - timedelta(days=7)), "until": _local_input(now), "format": "xlsx"}
            form = ReportForm(initial=initial)
        context = page_context(
            request,
            "fleet-reports",
            "Reports",
            form=form,
            reports=list(REPORTS.values()),
            config_zone=settings.DISPLAY_TIME_ZONE,
        )
        return render(request, "fleet/reports.html", context)
