"""manage.py push_source: registering a source as the README tells a new user to."""

from __future__ import annotations

import shlex
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from domain.models import Account
from events.models import PushSource

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[2] / "README.md"
PREFIX = ".venv/bin/python manage.py push_source "


def readme_push_source_commands() -> list[list[str]]:
    """The push_source lines of the README, in order, as the arguments after `manage.py`."""
    lines = [line for line in README.read_text().splitlines() if line.startswith(PREFIX)]
    return [shlex.split(line, comments=True)[2:] for line in lines]


def run(*argv: str) -> str:
    out = StringIO()
    call_command(*argv, stdout=out)
    return out.getvalue()


def test_it_registers_the_readme_sources_on_a_fresh_install_in_the_order_shown(settings):
    assert not Account.objects.exists()
    first, *rest = readme_push_source_commands()
    assert len(rest) == 2
    printed = run(*first)
    assert f"push URL: {settings.PUBLIC_BASE_URL.rstrip('/')}/push/iothub/nairobi-hub\n" in printed
    assert Account.objects.get().name == "Nairobi"
    for argv in rest:
        assert "push URL: " in run(*argv)
    assert sorted(PushSource.objects.values_list("name", "account__name")) == [
        ("fuel-bot", "Nairobi"),
        ("nairobi-hub", "Nairobi"),
        ("tsp-alarms", "Nairobi"),
    ]
    assert Account.objects.count() == 1


def test_it_names_the_flag_and_the_existing_accounts_for_an_unknown_account():
    Account.objects.create(name="Mombasa")
    with pytest.raises(CommandError) as refused:
        run("push_source", "hub", "--kind", "jimi-iothub", "--secret", "t", "--account", "Nairobi")
    message = str(refused.value)
    assert "'Nairobi'" in message
    assert "--create-account" in message
    assert "'Mombasa'" in message
    assert not PushSource.objects.exists()
    assert list(Account.objects.values_list("name", flat=True)) == ["Mombasa"]


def test_it_creates_no_account_for_a_source_it_refuses():
    with pytest.raises(CommandError, match=r"^name: "):
        run("push_source", "not a slug", "--kind", "hmac", "--account", "Nairobi", "--create-account")
    assert not Account.objects.exists()
    assert not PushSource.objects.exists()
