"""benchmarks/gpu_check.sh fits one device command: every step it runs has a time limit, and the limits
add up to at most 480 s (a device command may run 600 s; the rest is for the start and the table)."""

from __future__ import annotations

import re
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


def test_step_limits_cover_every_step_and_sum_to_at_most_480_s():
    text = SCRIPT.read_text()
    declared = re.search(r"declare -A LIMIT=\(([^)]*)\)", text).group(1)
    limits = {name: int(seconds) for name, seconds in re.findall(r"\[(\w+)\]=(\d+)", declared)}
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    steps = set(re.findall(r"(?:^|&&)\s*step (\w+) ", code, flags=re.MULTILINE))
    assert steps == set(limits), (steps, limits)
    assert sum(limits.values()) <= 480, limits
    assert 'timeout -k 5 "$limit"' in text  # each step runs under its own limit
