"""No threshold is a literal in code (an invariant: docs/architecture.md): the numbers that decide behaviour are rows
of slo_targets (read through slo.thresholds.threshold) or typed settings."""

from __future__ import annotations

import re
from pathlib import Path

from slo.seed import TARGETS

ROOT = Path(__file__).resolve().parents[2]
APPS = ("fleet", "domain", "slo", "events", "state", "geo", "ops")
# Where numbers legitimately live: the seed of the rows themselves, settings (typed, env-driven), migrations,
# tests, and benchmark data generators.
EXEMPT = re.compile(r"(/tests/|/migrations/|/testing/|^slo/seed\.py$|^fleet/settings\.py$|bench)")
# A comparison of an operational quantity with a number: `speed_kmh >= 5`, `age_s > 600`, `gap > 3600`…
QUANTITY = r"(speed|kmh|age|gap|distance|duration|fresh|stale|offline|lag|idle|parking|stop|jump|satellite|late)"
LITERAL_COMPARISON = re.compile(
    rf"\b\w*{QUANTITY}\w*\s*(<=|>=|<|>)\s*(\d+(\.\d+)?)\b|\b(\d+(\.\d+)?)\s*(<=|>=|<|>)\s*\w*{QUANTITY}\w*",
    re.IGNORECASE,
)
HARMLESS = {"0", "0.0", "1", "1.0"}


def _sources() -> list[tuple[str, str]]:
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if not EXEMPT.search(relative):
                found.append((relative, path.read_text()))
    return found


def test_it_finds_no_threshold_literal_in_a_comparison():
    offenders = []
    for relative, text in _sources():
        for number, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            for match in LITERAL_COMPARISON.finditer(line):
                literal = match.group(3) or match.group(5)
                if literal not in HARMLESS:
                    offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "thresholds belong in slo_targets:\n" + "\n".join(offenders)


def test_it_reads_every_operational_threshold_row_somewhere():
    code = "\n".join(text for _, text in _sources())
    unread = [metric for metric, kind, *_ in TARGETS if kind == "threshold" and f'threshold("{metric}")' not in code]
    assert not unread, f"threshold rows nothing reads: {unread}"


def test_it_would_catch_a_literal(tmp_path):
    assert LITERAL_COMPARISON.search("if fix.speed_kmh >= 5:")
    assert LITERAL_COMPARISON.search("stale = age_s > 600")
    assert not LITERAL_COMPARISON.search('if speed_kmh >= threshold("moving_speed_kmh"):')
