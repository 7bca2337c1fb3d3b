"""Commitments: SLO targets and every operational threshold, as rows.

One UPDATE of a row changes behaviour everywhere within SLO_TARGET_CACHE_S, without a restart; a change to a
threshold that shapes derived state (trip parameters, fix-quality limits) is applied to history by replay.
"""

from __future__ import annotations

from django.db import models


class Comparison(models.TextChoices):
    GTE = ">=", "at least"
    LTE = "<=", "at most"


class TargetKind(models.TextChoices):
    SLO = "slo", "Service-level objective (measured every minute)"
    THRESHOLD = "threshold", "Operational threshold (a parameter of derived state)"


class SloTarget(models.Model):
    metric = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=TargetKind.choices, default=TargetKind.SLO)
    threshold = models.FloatField()
    comparison = models.CharField(max_length=2, choices=Comparison.choices, default=Comparison.LTE)
    unit = models.CharField(max_length=16, blank=True, help_text="%, s, ms, m, km/h, days…")
    window = models.DurationField(null=True, blank=True, help_text="Measurement window of an SLO")
    business_hours_only = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "slo_targets"
        ordering = ["kind", "metric"]

    def __str__(self) -> str:
        return f"{self.metric} {self.comparison} {self.threshold:g}{self.unit}"

    def is_met(self, value: float) -> bool:
        return value >= self.threshold if self.comparison == Comparison.GTE else value <= self.threshold


class SloMeasurement(models.Model):
    """One metric measured at one minute. Partitioned monthly by measured_at (slo/sql/partitions in migration)."""

    id = models.BigAutoField(primary_key=True)
    metric = models.SlugField(max_length=64)
    measured_at = models.DateTimeField()
    value = models.FloatField(null=True, help_text="None: no data in the window")
    sample_size = models.IntegerField(default=0)
    threshold = models.FloatField(help_text="The target's threshold when this was measured")
    met = models.BooleanField(null=True, help_text="None: no data, or outside business hours")
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "slo_measurements"
        indexes = [models.Index(fields=["metric", "measured_at"], name="slo_measurements_metric_time")]

    def __str__(self) -> str:
        return f"{self.metric} = {self.value} @ {self.measured_at:%Y-%m-%d %H:%M}"


class SloAlert(models.Model):
    """A breach, open until the metric recovers. At most one open alert per metric (database-enforced)."""

    metric = models.SlugField(max_length=64)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    threshold = models.FloatField()
    opened_value = models.FloatField(null=True)
    last_value = models.FloatField(null=True)
    notified = models.JSONField(default=dict, blank=True, help_text="transport → when it was told (open/close)")

    class Meta:
        db_table = "slo_alerts"
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["metric"], condition=models.Q(closed_at__isnull=True), name="slo_alerts_one_open_per_metric"
            )
        ]

    def __str__(self) -> str:
        state = "open" if self.closed_at is None else "closed"
        return f"{self.metric} breach ({state}) since {self.opened_at:%Y-%m-%d %H:%M}"
