"""``python -m bench`` end to end at its smallest: it measures, writes its table, and leaves
no process behind."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.processes import ROOT, require_program


def processes_with(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (they inherit it from the harness)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


@pytest.mark.live
@pytest.mark.slow
def test_quick_task_creation_benchmark(tmp_path):
    require_program("wrk")
    output = tmp_path / "performance.md"
    marker = f"BENCH_SMOKE_RUN={uuid.uuid4().hex}"
    name, value = marker.split("=")
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenario", "creation", "--output",
         str(output)], cwd=ROOT, env={**os.environ, name: value}, capture_output=True,
        text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in output.read_text().splitlines() if line.startswith("| ")]
    creation = next(row for row in rows if row.startswith("| Task creation"))
    ours, ceiling = (float(cell.split()[0].replace(",", ""))
                     for cell in creation.split(" | ")[1:3])
    assert ours > 0 and ceiling > 0
    assert processes_with(marker) == []
