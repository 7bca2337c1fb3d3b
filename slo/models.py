"""Commitments: SLO targets and every operational threshold, as rows (§2.5, §10).

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
