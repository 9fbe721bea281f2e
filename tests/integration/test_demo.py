"""``make demo`` as the README shows it (``DEMO_SECONDS=45 make demo``), against the session's real broker.

The README promises: triggers printed as they arrive with the rule that fired and the checks passed, a
summary against the simulator's ground truth in which both detectors catch customers, the worker's own
metrics, and a clean stop that leaves no process behind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from conftest import missing

from forethought.devkafka import port_open
from forethought.ops.process import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_make_demo_shows_triggers_with_reasons_and_a_summary(kafka_bootstrap: str) -> None:
    make = shutil.which("make")
    if make is None:
        missing("make is not installed")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MAKE") and k not in ("FORETHOUGHT_TOPIC_PREFIX", "FORETHOUGHT_APP_ID")}
    env |= {"DEMO_SECONDS": "45", "FORETHOUGHT_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "FORETHOUGHT_WEB_PORT": str(port), "COLUMNS": "200"}
    done = subprocess.run([make, "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]

    triggers = re.findall(r"^TRIGGER \S+ +(\w+) +(cust-\d+) +via (\w+)", out, re.MULTILINE)
    assert triggers, out[-4000:]
    assert re.search(r"^\s+why: .+; consent: \w+", out, re.MULTILINE), out[-4000:]
    for detector in ("silence", "error_burst"):
        line = re.search(rf"^{detector} +caught (\d+)/(\d+) ", out, re.MULTILINE)
        assert line, f"no summary line for {detector}:\n{out[-4000:]}"
        assert int(line.group(1)) >= 1 and int(line.group(2)) >= 1, line.group(0)
    assert f"http://127.0.0.1:{port}/metrics forethought_triggers_total" in out, out[-4000:]
    assert not port_open(port), "the demo's worker still answers after the demo ended"
