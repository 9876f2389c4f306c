"""Give results of asv's *existing* environment a name without this computer's paths.

    python benchmarks/asv_record.py [--machine ci-2core] [--results benchmarks/results]

`make bench` and `make bench-record` run asv in .venv as an existing environment, and asv
names such an environment after the interpreter's absolute path
(`existing-py_home_me_fusetrain_.venv_bin_python`): in the result file's name, in its
`env_name`, and as its `python` (the path itself). Committed, that would differ from one clone to the next and split one commit's
history into as many files. This renames every such result of the profile to
`<commit8>-existing-venv.json` (env_name `existing-venv`, python e.g. `3.11-venv`); when that file already holds
results of the same commit, the two are merged, the newer run's figures winning benchmark by
benchmark. Run by the Makefile after each existing-environment run; running it twice changes
nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ENV_NAME = "existing-venv"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}-venv"     # asv_record runs in .venv


def _write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=None, sort_keys=True) + "\n")


def normalize(results: Path, machine: str) -> list[Path]:
    """Rename (merging) the profile's existing-environment results; the files written."""
    written = []
    for path in sorted((results / machine).glob("*.json")):
        if path.name == "machine.json":
            continue
        data = json.loads(path.read_text())
        env = data.get("env_name", "")
        if not env.startswith("existing-") or (env == ENV_NAME and "/" not in str(data.get("python", ""))):
            continue
        target = path.with_name(f"{data['commit_hash'][:8]}-{ENV_NAME}.json")
        if target.is_file() and target != path:
            old = json.loads(target.read_text())
            if old.get("result_columns") == data.get("result_columns"):
                data["results"] = {**old.get("results", {}), **data.get("results", {})}
                data["durations"] = {**old.get("durations", {}), **data.get("durations", {})}
        data["env_name"] = ENV_NAME
        # asv also files the interpreter's path as the environment's "python" (and as a param).
        if "/" in str(data.get("python", "")):
            data["python"] = PYTHON
        if "/" in str(data.get("params", {}).get("python", "")):
            data["params"]["python"] = PYTHON
        _write(target, data)
        if path != target:
            path.unlink()
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machine", default="ci-2core")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    args = parser.parse_args(argv)
    for path in normalize(args.results, args.machine):
        print(f"asv_record: {path.relative_to(args.results.parent) if args.results.parent in path.parents else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
