"""Register an asv machine profile on this computer (asv keeps profiles in ~/.asv-machine.json).

    python benchmarks/asv_machine.py [NAME]        # default ci-2core

When benchmarks/results/NAME/machine.json is committed, its fixed fields (os, arch, cpu,
num_cpu, ram) are registered as they are, so that every computer of that kind records its
results under the same profile and they line up in one history. For a name without a
committed machine.json, asv detects the fields of this computer. Every `make bench*` target
runs this first (MACHINE=NAME picks the profile).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
FIELDS = ("os", "arch", "cpu", "num_cpu", "ram")


MACHINE_FILE = Path("~/.asv-machine.json").expanduser()      # where asv keeps its profiles


def committed_profile(name: str, results: Path = RESULTS) -> dict | None:
    """The committed machine.json fields of profile `name`, or None."""
    path = results / name / "machine.json"
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    return {"machine": name, **{field: str(info[field]) for field in FIELDS if field in info}}


def register(name: str, results: Path = RESULTS, machine_file: Path = MACHINE_FILE) -> int:
    """Write profile `name` into asv's machine file; asv detects the fields without a committed one.

    The committed fields are written into the file directly: `asv machine --yes` would store
    only the fields that differ from what it detects, and asv run would then record a
    machine.json without them.
    """
    profile = committed_profile(name, results)
    if profile is None:
        cmd = [str(Path(sys.executable).parent / "asv"), "machine", "--config", str(BENCH_DIR / "asv.conf.json"),
               "--machine", name, "--yes"]
        return subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode
    data = json.loads(machine_file.read_text()) if machine_file.is_file() else {}
    data[name] = profile
    data["version"] = 1
    machine_file.write_text(json.dumps(data, indent=4, sort_keys=True) + "\n")
    return 0


def main(argv: list[str]) -> int:
    return register(argv[0] if argv else "ci-2core")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
