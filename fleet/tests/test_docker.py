"""The container set-up agrees with the code: one image, three roles, health, pooling, documented keys.

No Docker engine is needed. The compose files are rendered by Docker Compose itself: `docker compose config
--format json` merges compose.dev.yml over compose.yml, interpolates the variables (with .env.example as the env
file and nothing from this process's environment) and expands every short form; the checks read its JSON. Where the
Docker CLI has no compose plugin those checks skip: nothing here re-implements compose. The Dockerfile, the
Procfile, .env.example, fleet/settings.py, the Grafana provisioning and the CI workflow are read as files, and so
are the names of the roles' environment keys in compose.yml (plain YAML: PyYAML resolves its anchors and merge keys;
the values, which compose would interpolate, are not read that way). Only the `health` command tests touch the
database.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import shutil
import subprocess
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

STACK = {"db", "pgbouncer", "gateway", "worker", "cron", "backup", "grafana"}
ROLES = ("gateway", "worker", "cron")
# Compose's own variables (https://docs.docker.com/compose/environment-variables/envvars/) that .env may set.
COMPOSE_CLI_KEYS = {"COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES"}
# compose.yml's inline `configs.content` needs this Docker Compose (see the file's header).
COMPOSE_MIN_VERSION = (2, 23, 1)

SETTINGS_KEY = re.compile(r"\benv(?:\.\w+)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']")
ENV_EXAMPLE_KEY = re.compile(r"^(?:# ?)?([A-Z][A-Z0-9_]*)=", re.MULTILINE)

# Settings a role gets from its own block in compose.yml, or no container gets at all.
ROLE_SPECIFIC_KEYS = {
    "DATABASE_URL",  # per role: the gateway's goes through pgbouncer
    "DB_BEHIND_PGBOUNCER",  # gateway only (unset is false)
    "DB_CONN_MAX_AGE",  # 0 for the gateway, from .env for worker and cron
    "GATEWAY_BIND",  # the image sets 0.0.0.0:8000
    "GATEWAY_WORKERS",
    "GATEWAY_TIMEOUT_S",
    "WORKER_CONCURRENCY",
    "CRON_CONCURRENCY",
    "CRON_NICE",
}
LOCAL_ONLY_KEYS = {
    "FLEET_PG_PORT",  # the embedded cluster (bin/pg)
    "FLEET_PG_DB",
    "TEST_DATABASE_NAME",  # the test suite
    "DEMO_SUPERUSER",  # make run's demo user
    "DEMO_PASSWORD",
    "STATIC_ROOT",  # the image sets /opt/static
    "BENCH_BARE_VIEW",  # an unauthenticated push endpoint for benchmarks: never in a container
}


# --- docker compose ---------------------------------------------------------------------------------------------------


def docker_compose(*args: str) -> subprocess.CompletedProcess[str]:
    """`docker compose ARGS` from the repository root, in an environment without this process's settings: a
    DATABASE_URL or DEBUG set for the tests would otherwise win over .env.example in the interpolation."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "DOCKER_CONFIG") if key in os.environ}
    return subprocess.run(
        ["docker", "compose", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@functools.cache
def compose_unavailable() -> str | None:
    """Why `docker compose config` cannot run here, or None when it can."""
    if shutil.which("docker") is None:
        return "docker compose is not installed (no docker CLI): the compose file is checked where it is"
    try:
        result = docker_compose("version")  # "Docker Compose version v2.40.3"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker compose did not answer ({exc}): the compose file is checked where it runs"
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["no output"])[0]
        return f"docker compose is not installed ({said}): the compose file is checked where it is"
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", result.stdout)
    if found is None or tuple(int(part) for part in found.groups()) < COMPOSE_MIN_VERSION:
        need = ".".join(map(str, COMPOSE_MIN_VERSION))
        return f"{result.stdout.strip()} is older than {need}, which docker/compose.yml needs"
    return None


def require_compose() -> None:
    reason = compose_unavailable()
    if reason:
        pytest.skip(reason)


def compose_args(*files: Path) -> list[str]:
    return [arg for path in files for arg in ("-f", str(path.relative_to(ROOT)))] + ["--env-file", ".env.example"]


def compose_config(*files: Path) -> dict[str, Any]:
    """The model compose runs: the files merged, interpolated and normalised by `docker compose config`."""
    require_compose()
    result = docker_compose(*compose_args(*files), "config", "--format", "json")
    assert result.returncode == 0, (
        f"docker compose rejects {[str(f.relative_to(ROOT)) for f in files]}: {result.stderr}"
    )
    return json.loads(result.stdout)


def compose_variables(*files: Path) -> set[str]:
    """Every variable the compose files interpolate, as compose itself finds them (`config --variables`)."""
    require_compose()
    result = docker_compose(*compose_args(*files), "config", "--variables", "--format", "json")
    if result.returncode != 0 and "unknown flag" in result.stderr:
        pytest.skip("this docker compose has no `config --variables`: the variables are checked where it has")
    assert result.returncode == 0, f"docker compose config --variables failed: {result.stderr}"
    return set(json.loads(result.stdout))


# --- helpers ----------------------------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def environment(service: dict[str, Any]) -> dict[str, Any]:
    """A rendered service's environment (compose's canonical form is a mapping)."""
    return dict(service.get("environment") or {})


def command_words(service: dict[str, Any]) -> list[str]:
    """A rendered service's command (compose's canonical form is a list of words)."""
    return [str(word) for word in service.get("command") or []]


def healthcheck_text(service: dict[str, Any]) -> str:
    return " ".join((service.get("healthcheck") or {}).get("test") or [])


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → host path of a rendered service's bind mounts (compose makes the host paths absolute)."""
    return {
        volume["target"]: Path(volume["source"]).resolve()
        for volume in service.get("volumes") or []
        if volume.get("type") == "bind"
    }


def dockerfile_of(service: dict[str, Any]) -> Path:
    build = service["build"]
    return (Path(build["context"]) / build["dockerfile"]).resolve()  # the dockerfile is relative to the context


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


def procfile_commands() -> dict[str, list[str]]:
    """Procfile entry → the words after `manage.py`: `bin/role ROLE …` runs `manage.py ROLE …` (and starts it
    again, with back-off, whenever it exits, as compose's `restart: unless-stopped` does)."""
    procfile = {}
    for line in PROCFILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, command = line.split(":", 1)
        words = command.split()
        start = words.index("manage.py") + 1 if "manage.py" in words else words.index("bin/role") + 1
        procfile[name.strip()] = words[start:]
    return procfile


def assert_every_setting_passed(role_keys: dict[str, set[str]], where: str) -> None:
    passed = set.intersection(*(role_keys[role] for role in ROLES))
    missing = settings_keys() - passed - ROLE_SPECIFIC_KEYS - LOCAL_ONLY_KEYS
    assert not missing, f"pass to the roles in compose.yml (x-app-env), {where}: {sorted(missing)}"
    assert not (passed & {"BENCH_BARE_VIEW"}), "the benchmarks' unauthenticated push endpoint reaches a container"
    for role, keys in {
        "gateway": {"GATEWAY_WORKERS", "GATEWAY_TIMEOUT_S"},
        "worker": {"WORKER_CONCURRENCY"},
        "cron": {"CRON_CONCURRENCY", "CRON_NICE"},
    }.items():
        assert keys <= role_keys[role], f"{role} lacks {sorted(keys - role_keys[role])}, {where}"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return compose_config(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def dev_services() -> dict[str, Any]:
    return compose_config(COMPOSE, COMPOSE_DEV)["services"]


# --- compose: the stack ----------------------------------------------------------------------------------------------


def test_it_defines_the_whole_stack(services: dict[str, Any]) -> None:
    assert set(services) >= STACK


def test_it_runs_every_role_from_one_image(services: dict[str, Any]) -> None:
    images = {services[role]["image"] for role in ROLES}
    builds = [services[role].get("build") for role in ROLES]
    assert len(images) == 1
    assert all(build == builds[0] for build in builds)
    assert Path(builds[0]["context"]).resolve() == ROOT  # .dockerignore at the root applies
    assert dockerfile_of(services["gateway"]) == DOCKERFILE


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


def test_it_restarts_every_service_unless_stopped(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", f"{name} stays down after a crash"


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
    listen_port = int(pgbouncer.get("LISTEN_PORT") or 5432)

    gateway = environment(services["gateway"])
    url = urlsplit(gateway["DATABASE_URL"])
    assert (url.hostname, url.port) == ("pgbouncer", listen_port)
    assert environ.Env.parse_value(gateway["DB_BEHIND_PGBOUNCER"], bool) is True
    assert gateway["DB_CONN_MAX_AGE"] == "0"
    assert gateway["GATEWAY_BIND"] == "0.0.0.0:8000"

    for role in ("worker", "cron"):
        env = environment(services[role])
        assert urlsplit(env["DATABASE_URL"]).hostname == "db", f"{role} must reach PostgreSQL directly (LISTEN)"
        assert not environ.Env.parse_value(env.get("DB_BEHIND_PGBOUNCER") or "false", bool)

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
    missing = compose_variables(COMPOSE, COMPOSE_DEV) - env_example_keys()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_it_documents_every_setting_in_env_example() -> None:
    keys = settings_keys()
    assert {"DATABASE_URL", "SECRET_KEY", "DB_BEHIND_PGBOUNCER", "GATEWAY_BIND"} <= keys  # the scan works
    missing = keys - env_example_keys()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_it_passes_every_setting_to_the_role_containers(services: dict[str, Any]) -> None:
    role_keys = {role: {k for k, v in environment(services[role]).items() if v is not None} for role in ROLES}
    assert_every_setting_passed(role_keys, "as docker compose renders it")


def test_it_names_every_setting_in_the_role_environments_of_compose_yml() -> None:
    # The keys only, read as YAML: `<<: *app-env` is a standard YAML merge key. A value left empty (`KEY:`) would
    # pass the host's variable, or nothing, so it does not count as passed.
    yaml_services = load_yaml(COMPOSE)["services"]
    role_keys = {}
    for role in ROLES:
        env = yaml_services[role].get("environment") or {}
        assert isinstance(env, dict), f"write {role}'s environment in compose.yml as a mapping"
        role_keys[role] = {key for key, value in env.items() if value is not None}
    assert_every_setting_passed(role_keys, "in compose.yml")


def test_it_lists_no_key_nothing_reads_in_env_example() -> None:
    unused = env_example_keys() - settings_keys() - compose_variables(COMPOSE, COMPOSE_DEV) - COMPOSE_CLI_KEYS
    assert not unused, f"nothing reads {sorted(unused)}"


# --- compose: the nightly backup ------------------------------------------------------------------------------------


def backup_options(service: dict[str, Any]) -> Any:
    """The backup service's command as `manage.py backup` itself parses it."""
    words = command_words(service)
    parser = load_command_class(get_commands()["backup"], "backup").create_parser("manage.py", "backup")
    return parser.parse_args(words[1:])


def test_it_backs_up_nightly_with_the_roles_image_and_a_management_command(services: dict[str, Any]) -> None:
    backup = services["backup"]
    assert backup["image"] == services["worker"]["image"]
    assert backup.get("build") == services["worker"].get("build")
    assert not backup.get("entrypoint"), "the backup replaces the image's entrypoint (python manage.py)"
    assert command_words(backup)[0] == "backup"
    options = backup_options(backup)
    assert (options.daily_at, options.prune) == ("02:30", True)
    assert (options.keep_daily, options.keep_weekly) == (7, 4)  # .env.example's defaults, interpolated
    # Its output is a named volume, not the container's own layer.
    (mount,) = [v for v in backup.get("volumes") or [] if Path(options.output).parent == Path(v["target"])]
    assert mount["type"] == "volume"
    # pg_dump needs a session of its own: straight to PostgreSQL, not through pgbouncer.
    assert urlsplit(environment(backup)["DATABASE_URL"]).hostname == "db"
    assert backup["depends_on"]["db"]["condition"] == "service_healthy"
    check = backup["healthcheck"]["test"]
    assert check[1:4] == ["python", "manage.py", "backup"]
    assert "--check" in check
    assert check[check.index("--output") + 1] == options.output


def test_it_runs_the_backup_from_the_checkout_in_development(dev_services: dict[str, Any]) -> None:
    backup = dev_services["backup"]
    assert backup["image"] == dev_services["worker"]["image"]
    assert bind_mounts(backup).get("/app") == ROOT


def test_it_declares_the_backup_service_its_volume_and_its_client_programs() -> None:
    # Plain YAML (the rendered checks above need docker compose): the service, its volume, and what the image needs.
    compose = load_yaml(COMPOSE)
    backup = compose["services"]["backup"]
    assert backup["command"][0] == "backup"
    assert {"--prune", "--keep-daily", "--keep-weekly", "--daily-at"} <= set(backup["command"])
    assert "backups:/backups" in backup["volumes"]
    assert "backups" in compose["volumes"]
    assert "backup" in load_yaml(COMPOSE_DEV)["services"]
    text = DOCKERFILE.read_text()
    assert "postgresql-client-15" in text  # pg_dump / pg_restore of the db service's major version
    assert "install -d -o fleet -g fleet /backups" in text  # the volume starts owned by the roles' user


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
    assert procfile_commands() == {role: command_words(services[role]) for role in ROLES}
    for role in ROLES:
        # The image's ENTRYPOINT (`python manage.py`, checked above) runs the command, as bin/role does.
        assert not services[role].get("entrypoint"), f"{role} replaces the image's entrypoint"
        assert services[role]["restart"] == "unless-stopped", f"bin/role restarts {role}; compose does not"


# --- development override ---------------------------------------------------------------------------------------------


def test_it_mounts_the_checkout_and_reloads_the_gateway_in_development(dev_services: dict[str, Any]) -> None:
    assert command_words(dev_services["gateway"]) == ["gateway", "--reload"]
    images = {dev_services[role]["image"] for role in ROLES}
    assert len(images) == 1
    for role in ROLES:
        service = dev_services[role]
        assert bind_mounts(service).get("/app") == ROOT, f"{role} does not run the checkout"
        assert service["build"]["args"]["APP_MODE"] == "dev"
        assert dockerfile_of(service) == DOCKERFILE  # kept from compose.yml
        assert environment(service)["APP_MODE"] == "dev"
        assert command_words(service)[0] == role
        assert environment(service)["DATABASE_URL"]  # kept from compose.yml


# --- Grafana ----------------------------------------------------------------------------------------------------------


def grafana_datasource() -> dict[str, Any]:
    (datasource,) = load_yaml(GRAFANA / "provisioning" / "datasources" / "fleet.yml")["datasources"]
    return datasource


def test_it_reads_grafanas_fleet_database_connection_from_the_environment() -> None:
    datasource = grafana_datasource()
    assert datasource["uid"] == "fleet-db"
    assert datasource["type"] in ("postgres", "grafana-postgresql-datasource")
    assert re.findall(r"\$__env\{(\w+)\}", json.dumps(datasource)), "the connection comes from the environment"


def test_it_provisions_grafana_with_the_fleet_database(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    mounts = bind_mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == GRAFANA / "provisioning"

    referenced = set(re.findall(r"\$__env\{(\w+)\}", json.dumps(grafana_datasource())))
    env = environment(grafana)
    assert referenced <= set(env), f"the grafana service does not set {sorted(referenced - set(env))}"
    assert env["FLEET_DB_HOST"].split(":")[0] == "db"

    (provider,) = load_yaml(GRAFANA / "provisioning" / "dashboards" / "fleet.yml")["providers"]
    assert mounts[provider["options"]["path"]] == GRAFANA / "dashboards"


def test_it_creates_a_read_only_database_login_for_grafana(compose: dict[str, Any]) -> None:
    (config,) = [c for c in compose["services"]["db"]["configs"] if c["source"] == "grafana-reader"]
    assert config["target"].startswith("/docker-entrypoint-initdb.d/")
    sql = compose["configs"]["grafana-reader"]["content"]
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
