"""What the state layer tells the layers above it, without knowing them (they connect in their AppConfig.ready).

`alarms_folded`: sent by the readings projector, inside its batch's transaction, with the parsed ids of the alarm
events it has just (re)folded into state_alarms. A receiver must only queue work (a job, committed with the batch):
it shares the projector's transaction, and an exception in it fails the batch.
"""

from __future__ import annotations

from django.dispatch import Signal

alarms_folded = Signal()
