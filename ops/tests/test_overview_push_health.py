"""The ops overview says when an account's pushes went silent while its devices report, and that the location poll
covers the gap (events/jimi/selectors.py push_health; the poll runs against the local Jimi sandbox)."""

from __future__ import annotations

import re
import time

from django.contrib.auth import get_user_model

from events.jimi.services import jimi_poll
from events.models import PushSource, SourceKind


def _row(page: str, account: str) -> list[str]:
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)]
    (row,) = [cells for cells in rows if cells and cells[0] == account]
    return row


def test_it_says_the_location_poll_covers_an_accounts_silent_pushes(client, jimi_sandbox, jimi_account):
    PushSource.objects.create(name="sandbox-hub", kind=SourceKind.JIMI_IOTHUB, account=jimi_account, secret="hub")
    jimi_sandbox.fleet.drive_now(0, now=time.time())  # a device reporting fresh fixes, at any time of day
    jimi_poll("locations")  # the devices report; no push arrived in the last hour
    client.force_login(get_user_model().objects.create_superuser("ops", password="pw-ops-123456"))

    page = client.get("/admin/ops-overview/").content.decode()
    assert "Jimi accounts: pushes and polls" in page
    row = _row(page, "Jimi sandbox")
    assert row[1].startswith("<strong>silent</strong>: pushes silent for over 1:00:00 while devices report")
    assert "live positions from the location poll every 60 s" in row[1]
    assert row[5] == "—"  # no poll failed

    jimi_sandbox.fail_next("1005", method="jimi.user.device.location.list")
    jimi_poll("locations")
    row = _row(client.get("/admin/ops-overview/").content.decode(), "Jimi sandbox")
    assert "locations: jimi.user.device.location.list: code 1005" in row[5]
