"""Fixtures of the reliability proofs: in-process servers with tokens or TLS, certificates made here."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))                 # reliability_helpers
sys.path.insert(0, str(Path(__file__).parents[1] / "service"))   # service_helpers (ThreadExecutor)
