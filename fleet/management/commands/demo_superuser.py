"""Create the local demo superuser (embedded database only) and print its credentials."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create or reset the demo superuser of the embedded local database."

    def handle(self, *args: Any, **opts: Any) -> None:
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username=settings.DEMO_SUPERUSER)
        user.is_staff = user.is_superuser = True
        user.set_password(settings.DEMO_PASSWORD)
        user.save()
        self.stdout.write(
            f"demo superuser: {settings.DEMO_SUPERUSER} / {settings.DEMO_PASSWORD} (local embedded database only)"
        )
