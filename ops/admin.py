"""ops admin."""

from __future__ import annotations
