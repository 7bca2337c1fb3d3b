"""Operations workflow: tickets, dispatch, service log."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class OpsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "ops"
    verbose_name = "ops"

    def ready(self) -> None:
        from state.signals import alarms_folded

        alarms_folded.connect(_alarm_tickets_queue, dispatch_uid="ops.alarm_tickets")


def _alarm_tickets_queue(sender: Any, parsed_ids: list[int], **kwargs: Any) -> None:
    """The readings projector folded alarms: make sure one alarm-ticket job waits (committed with the batch; once
    per transaction, as the projectors' own wake-ups: events/sql/wake.sql)."""
    from events.services import wake_requeue
    from ops.tasks import ALARM_TICKETS_TASK

    wake_requeue(queue="cron", task=ALARM_TICKETS_TASK)
