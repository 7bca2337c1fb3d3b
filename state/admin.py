"""state admin."""

from __future__ import annotations
