"""The container set-up agrees with the code (§13): one image, three roles, health, pooling, documented keys.

No Docker engine is needed: docker/compose.yml (and compose.dev.yml merged over it), the Dockerfile, the
Procfile, .env.example, the Grafana provisioning and the CI workflow are read as files and checked against the
project's management commands, settings and models. Only the `health` command tests touch the database.
"""

from __future__ import annotations

import inspect
import json
import re
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
import pytest
import yaml
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import CommandError
from django.db import DatabaseError
from django.utils import timezone

from fleet.models import RoleHeartbeat

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yml"
COMPOSE_DEV = DOCKER / "compose.dev.yml"
DOCKERFILE = DOCKER / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
SETTINGS = ROOT / "fleet" / "settings.py"
PROCFILE = ROOT / "Procfile"
WORKFLOW = ROOT / ".github" / "workflows" / "image.yml"
GRAFANA = DOCKER / "grafana"

STACK = {"db", "pgbouncer", "gateway", "worker", "cron", "grafana"}
ROLES = ("gateway", "worker", "cron")
# Compose's own variables (https://docs.docker.com/compose/environment-variables/envvars/) that .env may set.
COMPOSE_CLI_KEYS = {"COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES"}

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} ...; `$${VAR}` is an escaped dollar, not a variable.
COMPOSE_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
SETTINGS_KEY = re.compile(r"\benv(?:\.\w+)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']")
ENV_EXAMPLE_KEY = re.compile(r"^(?:# ?)?([A-Z][A-Z0-9_]*)=", re.MULTILINE)


# --- helpers -------------------------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def interpolate(value: Any, env: dict[str, str] | None = None) -> Any:
    """Compose's interpolation of one value, with `env` as the (by default empty) environment and .env."""
    if not isinstance(value, str):
        return value
    env = env or {}

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        current = env.get(name)
        if op == ":-" and not current:
            return arg
        if op == "-" and current is None:
            return arg
        return current or ""

    return COMPOSE_VAR.sub(substitute, value).replace("$$", "$")


def strings_in(node: Any) -> list[str]:
    """Every string value in a parsed YAML tree (comments are gone, so only what compose interpolates)."""
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings_in(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings_in(item)]
    return [node] if isinstance(node, str) else []


def compose_vars(*paths: Path) -> set[str]:
    return {m.group(1) for path in paths for s in strings_in(load_yaml(path)) for m in COMPOSE_VAR.finditer(s)}


MERGED_SEQUENCES = {"volumes", "ports", "configs", "env_file"}


def merge(base: Any, override: Any, key: str = "") -> Any:
    """Compose's merge of an override file: mappings key by key, some sequences appended, the rest replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = merge(base[k], v, k) if k in base else v
        return out
    if isinstance(base, list) and isinstance(override, list) and key in MERGED_SEQUENCES:
        return base + [item for item in override if item not in base]
    return override


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: str(interpolate(v)) for k, v in raw.items()}


def command_words(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(word) for word in command]


def healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return " ".join(test) if isinstance(test, list) else str(test)


def env_example_keys() -> set[str]:
    return set(ENV_EXAMPLE_KEY.findall(ENV_EXAMPLE.read_text()))


def settings_keys() -> set[str]:
    return set(SETTINGS_KEY.findall(SETTINGS.read_text()))


def dockerfile_instructions(name: str) -> list[str]:
    """Arguments of every top-level instruction `name` (indented continuation lines, like HEALTHCHECK's CMD, skip)."""
    pattern = re.compile(rf"^{name}\s+(.+?)\s*$", re.MULTILINE)
    return pattern.findall(DOCKERFILE.read_text())


def role_command_source(name: str) -> str:
    return inspect.getsource(type(load_command_class(get_commands()[name], name)))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def dev_services(compose: dict[str, Any]) -> dict[str, Any]:
    return merge(compose, load_yaml(COMPOSE_DEV))["services"]


# --- compose: the stack ----------------------------------------------------------------------------------------------


def test_it_defines_the_whole_stack(services: dict[str, Any]) -> None:
    assert set(services) >= STACK


def test_it_runs_every_role_from_one_image(services: dict[str, Any]) -> None:
    images = {interpolate(services[role]["image"]) for role in ROLES}
    builds = [services[role].get("build") for role in ROLES]
    assert len(images) == 1
    assert all(build == builds[0] for build in builds)
    context = (COMPOSE.parent / builds[0]["context"]).resolve()
    assert context == ROOT  # .dockerignore at the root applies
    assert (context / builds[0]["dockerfile"]).resolve() == DOCKERFILE  # dockerfile is relative to the context


def test_it_starts_each_role_with_its_own_management_command(services: dict[str, Any]) -> None:
    commands = get_commands()
    for role in ROLES:
        words = command_words(services[role])
        assert words, f"{role} has no command"
        assert words[0] == role, f"service {role} runs {words[0]!r}"
        assert words[0] in commands, f"{words[0]!r} is not a management command"


def test_it_gives_every_service_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck") or {}
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        assert check["test"][0] != "NONE", f"{name} disables its healthcheck"


def test_it_checks_each_role_with_its_own_health(services: dict[str, Any]) -> None:
    assert "/health/gateway" in healthcheck_text(services["gateway"])
    assert "127.0.0.1:8000" in healthcheck_text(services["gateway"])
    # The probe's Host is 127.0.0.1: Django must allow it, or the probe gets 400.
    assert "127.0.0.1" in environ.Env.parse_value(environment(services["gateway"])["ALLOWED_HOSTS"], list)
    for role in ("worker", "cron"):
        test = services[role]["healthcheck"]["test"]
        assert test[1:] == ["python", "manage.py", "health", role]
    assert "health" in get_commands()
    assert "pg_isready" in healthcheck_text(services["db"])
    assert "pg_isready" in healthcheck_text(services["pgbouncer"])
    assert "/api/health" in healthcheck_text(services["grafana"])


def test_it_routes_the_gateway_through_pgbouncer_and_the_workers_direct(services: dict[str, Any]) -> None:
    pgbouncer = environment(services["pgbouncer"])
    assert pgbouncer["POOL_MODE"] == "transaction"
    assert urlsplit(pgbouncer["DATABASE_URL"]).hostname == "db"
    listen_port = int(pgbouncer.get("LISTEN_PORT", 5432))

    gateway = environment(services["gateway"])
    url = urlsplit(gateway["DATABASE_URL"])
    assert (url.hostname, url.port) == ("pgbouncer", listen_port)
    assert environ.Env.parse_value(gateway["DB_BEHIND_PGBOUNCER"], bool) is True
    assert gateway["DB_CONN_MAX_AGE"] == "0"
    assert gateway["GATEWAY_BIND"] == "0.0.0.0:8000"

    for role in ("worker", "cron"):
        env = environment(services[role])
        assert urlsplit(env["DATABASE_URL"]).hostname == "db", f"{role} must reach PostgreSQL directly (LISTEN)"
        assert not environ.Env.parse_value(env.get("DB_BEHIND_PGBOUNCER", "false"), bool)

    for role in ROLES:
        config = environ.Env.db_url_config(environment(services[role])["DATABASE_URL"])
        assert config["ENGINE"] == "django.contrib.gis.db.backends.postgis"
        assert config["NAME"] == urlsplit(pgbouncer["DATABASE_URL"]).path.lstrip("/")


def test_it_migrates_only_in_the_worker(services: dict[str, Any]) -> None:
    migrating = set()
    for role in ROLES:
        words = command_words(services[role])
        assert "migrate" not in words
        assert "--no-migrate" not in words
        if 'call_command("migrate"' in role_command_source(words[0]):
            migrating.add(role)
    assert migrating == {"worker"}
    for role in ("gateway", "cron"):
        assert 'call_command("wait_for_migrations")' in role_command_source(role)
        assert "--no-wait" not in command_words(services[role])


def test_it_starts_roles_once_the_database_is_healthy(services: dict[str, Any]) -> None:
    for role in ROLES:
        assert services[role]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["gateway"]["depends_on"]["pgbouncer"]["condition"] == "service_healthy"
    assert services["pgbouncer"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_it_documents_every_compose_variable_in_env_example() -> None:
    missing = compose_vars(COMPOSE, COMPOSE_DEV) - env_example_keys()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_it_documents_every_setting_in_env_example() -> None:
    keys = settings_keys()
    assert {"DATABASE_URL", "SECRET_KEY", "DB_BEHIND_PGBOUNCER", "GATEWAY_BIND"} <= keys  # the scan works
    missing = keys - env_example_keys()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_it_passes_every_setting_to_the_role_containers(services: dict[str, Any]) -> None:
    passed = set.intersection(*(set(environment(services[role])) for role in ROLES))
    role_specific = {
        "DATABASE_URL",  # per role: the gateway's goes through pgbouncer
        "DB_BEHIND_PGBOUNCER",  # gateway only (unset is false)
        "DB_CONN_MAX_AGE",  # 0 for the gateway, from .env for worker and cron
        "GATEWAY_BIND",  # the image sets 0.0.0.0:8000
        "GATEWAY_WORKERS",
        "GATEWAY_TIMEOUT_S",
        "WORKER_CONCURRENCY",
    }
    local_only = {
        "FLEET_PG_PORT",  # the embedded cluster (bin/pg)
        "FLEET_PG_DB",
        "TEST_DATABASE_NAME",  # the test suite
        "DEMO_SUPERUSER",  # make run's demo user
        "DEMO_PASSWORD",
        "STATIC_ROOT",  # the image sets /opt/static
        "BENCH_BARE_VIEW",  # an unauthenticated push endpoint for benchmarks: never in a container
    }
    missing = settings_keys() - passed - role_specific - local_only
    assert not missing, f"pass to the roles in compose.yml (x-app-env): {sorted(missing)}"
    assert not (passed & {"BENCH_BARE_VIEW"})
    for role, keys in {"gateway": {"GATEWAY_WORKERS", "GATEWAY_TIMEOUT_S"}, "worker": {"WORKER_CONCURRENCY"}}.items():
        assert keys <= set(environment(services[role]))


def test_it_lists_no_key_nothing_reads_in_env_example() -> None:
    unused = env_example_keys() - settings_keys() - compose_vars(COMPOSE, COMPOSE_DEV) - COMPOSE_CLI_KEYS
    assert not unused, f"nothing reads {sorted(unused)}"


# --- the image -------------------------------------------------------------------------------------------------------


def test_it_enters_the_image_through_manage_py() -> None:
    assert [json.loads(args) for args in dockerfile_instructions("ENTRYPOINT")] == [["python", "manage.py"]]
    default_cmd = json.loads(dockerfile_instructions("CMD")[-1])
    assert default_cmd == ["gateway"]
    assert "8000" in dockerfile_instructions("EXPOSE")
    assert dockerfile_instructions("USER")[-1] not in ("root", "0")
    assert dockerfile_instructions("HEALTHCHECK")


def test_it_builds_the_image_from_python_312_bookworm_in_two_modes() -> None:
    froms = dockerfile_instructions("FROM")
    assert froms[0].startswith("python:3.12-slim-bookworm ")
    stages = {line.split()[-1] for line in froms if " AS " in line}
    assert {"mode-prod", "mode-dev"} <= stages
    assert froms[-1].startswith("mode-${APP_MODE}")
    assert "APP_MODE=prod" in dockerfile_instructions("ARG")
    text = DOCKERFILE.read_text()
    for package in ("libgdal32", "libgeos-c1v5", "libproj25"):
        assert package in text
    assert "requirements/base.txt" in text
    assert "requirements/dev.txt" in text
    assert "collectstatic" in text


def test_it_keeps_secrets_and_local_state_out_of_the_build_context() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".var", ".git"} <= ignored
    assert "!.env.example" in ignored


def test_it_runs_the_same_role_commands_in_the_procfile_and_compose(services: dict[str, Any]) -> None:
    procfile = {}
    for line in PROCFILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, command = line.split(":", 1)
        words = command.split()
        # `bin/role ROLE …` runs `manage.py ROLE …` (it only keeps the slot when the role stops).
        start = words.index("manage.py") + 1 if "manage.py" in words else words.index("bin/role") + 1
        procfile[name.strip()] = words[start:]
    assert procfile == {role: command_words(services[role]) for role in ROLES}


# --- development override ---------------------------------------------------------------------------------------------


def test_it_mounts_the_checkout_and_reloads_the_gateway_in_development(dev_services: dict[str, Any]) -> None:
    assert command_words(dev_services["gateway"]) == ["gateway", "--reload"]
    images = {interpolate(dev_services[role]["image"]) for role in ROLES}
    assert len(images) == 1
    for role in ROLES:
        service = dev_services[role]
        assert "..:/app" in service["volumes"]
        assert service["build"]["args"]["APP_MODE"] == "dev"
        assert service["build"]["dockerfile"] == "docker/Dockerfile"  # kept from compose.yml
        assert environment(service)["APP_MODE"] == "dev"
        assert command_words(service)[0] == role
        assert environment(service)["DATABASE_URL"]  # kept from compose.yml


# --- Grafana ----------------------------------------------------------------------------------------------------------


def test_it_provisions_grafana_with_the_fleet_database(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    mounts = {v.split(":")[1]: (COMPOSE.parent / v.split(":")[0]).resolve() for v in grafana["volumes"] if ":" in v}
    assert mounts["/etc/grafana/provisioning"] == GRAFANA / "provisioning"

    (datasource,) = load_yaml(GRAFANA / "provisioning" / "datasources" / "fleet.yml")["datasources"]
    assert datasource["uid"] == "fleet-db"
    assert datasource["type"] in ("postgres", "grafana-postgresql-datasource")
    referenced = set(re.findall(r"\$__env\{(\w+)\}", json.dumps(datasource)))
    assert referenced, "the datasource takes its connection from the environment"
    env = environment(grafana)
    assert referenced <= set(env)
    assert env["FLEET_DB_HOST"].split(":")[0] == "db"

    (provider,) = load_yaml(GRAFANA / "provisioning" / "dashboards" / "fleet.yml")["providers"]
    assert mounts[provider["options"]["path"]] == GRAFANA / "dashboards"


def test_it_creates_a_read_only_database_login_for_grafana(compose: dict[str, Any]) -> None:
    (config,) = [c for c in compose["services"]["db"]["configs"] if c["source"] == "grafana-reader"]
    assert config["target"].startswith("/docker-entrypoint-initdb.d/")
    sql = interpolate(compose["configs"]["grafana-reader"]["content"])
    env = environment(compose["services"]["grafana"])
    assert f"CREATE ROLE \"{env['FLEET_DB_USER']}\" LOGIN PASSWORD '{env['FLEET_DB_PASSWORD']}'" in sql
    assert "pg_read_all_data" in sql
    assert "default_transaction_read_only = on" in sql


# --- CI ---------------------------------------------------------------------------------------------------------------


def test_it_tests_then_builds_and_pushes_the_image_on_main() -> None:
    workflow = load_yaml(WORKFLOW)
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert on["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    runs = {name: "\n".join(step.get("run", "") for step in job["steps"]) for name, job in jobs.items()}
    assert "make test" in runs["test"]
    assert "bookworm" in jobs["test"]["container"]
    image = runs["image"]
    assert "docker buildx build -f docker/Dockerfile" in image
    assert "ghcr.io/" in image
    assert "${{ github.sha }}" in image
    assert ":latest" in image
    assert "docker push" in image
    assert jobs["image"]["needs"] == "test"
    assert jobs["image"]["permissions"]["packages"] == "write"


# --- manage.py health ROLE --------------------------------------------------------------------------------------------


def run_health(role: str) -> tuple[int, dict[str, Any]]:
    out = StringIO()
    try:
        call_command("health", role, stdout=out)
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return code, json.loads(out.getvalue())


def test_it_reports_the_gateway_healthy_once_migrated(db: Any) -> None:
    code, body = run_health("gateway")
    assert code == 0
    assert body["ok"] is True
    assert body["checks"] == {"migrations_complete": True}


def test_it_fails_the_worker_health_without_a_heartbeat(db: Any) -> None:
    RoleHeartbeat.objects.filter(role="worker").delete()
    code, body = run_health("worker")
    assert code == 1
    assert body["ok"] is False
    assert body["heartbeat_age_s"] is None
    assert body["checks"]["heartbeat_fresh"] is False


def test_it_reports_cron_healthy_with_a_fresh_heartbeat(db: Any) -> None:
    RoleHeartbeat.objects.update_or_create(role="cron", defaults={"beat_at": timezone.now(), "host": "t", "pid": 1})
    code, body = run_health("cron")
    assert code == 0
    assert body["checks"] == {"heartbeat_fresh": True}


def test_it_fails_the_health_command_when_a_query_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(role: str) -> tuple[bool, dict[str, Any]]:
        raise DatabaseError('relation "fleet_role_heartbeats" does not exist')

    monkeypatch.setattr("fleet.management.commands.health.role_status", broken)
    code, body = run_health("worker")
    assert code == 1
    assert body == {"role": "worker", "ok": False, "database": "error", "error": body["error"]}
    assert "fleet_role_heartbeats" in body["error"]


def test_it_rejects_an_unknown_role_in_the_health_command() -> None:
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("health", "scheduler")
