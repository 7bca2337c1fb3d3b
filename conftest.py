"""Project-wide test fixtures: factories for domain objects, and real role processes."""

from __future__ import annotations

pytest_plugins = ["devtools.testing.fixtures"]
