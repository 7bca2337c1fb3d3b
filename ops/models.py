"""Operations workflow. For now: the cost rates managers' utilisation reports price distance with."""

from __future__ import annotations

from django.db import models

from domain.models import CostCentre


class CostRate(models.Model):
    """What a kilometre costs a cost centre from a date on (fuel, wear, lease…); the latest rate in force
    at a trip's start applies."""

    cost_centre = models.ForeignKey(CostCentre, on_delete=models.CASCADE, related_name="cost_rates")
    valid_from = models.DateField()
    per_km = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="KES")
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        db_table = "ops_cost_rates"
        ordering = ["cost_centre", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["cost_centre", "valid_from"], name="ops_cost_rates_one_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.cost_centre}: {self.per_km} {self.currency}/km from {self.valid_from}"
