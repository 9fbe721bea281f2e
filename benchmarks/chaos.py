"""``make chaos``: faults against real workers on the local broker, compared with an undisturbed replay
(docs/chaos.md). ``python benchmarks/chaos.py --help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaoskit.cli import main  # noqa: E402 - after the path is set

sys.exit(main())
