"""The documented runs still hold: every `final` line, weights sha256 and cross-validation line
pasted in README.md, examples/README.md and docs/CLIENT.md is what the code produces now.

The documented jobs are trained in-process (the service's job function, bit-identical weights
to a server run), a few seconds in all; MNIST's lines are checked with FUSETRAIN_DOCS_MNIST=1.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

import pytest
from client_helpers import EXAMPLES, ROOT, SHARED

from fusetrain.client import commands, jobfiles
from fusetrain.client.cmdutil import print_result
from fusetrain.wire import paths

DOCS = [ROOT / "README.md", ROOT / "examples" / "README.md", ROOT / "docs" / "CLIENT.md"]
JOBS = ("worked_221", "xor", "iris", "pima", "mnist", "seeds_cv")
MNIST = os.environ.get("FUSETRAIN_DOCS_MNIST") == "1"

pytestmark = pytest.mark.skipif(not (SHARED / "iris.csv").exists(), reason=f"the data sets are not under {SHARED}")


def documented() -> list[tuple[str, str, str, str]]:
    """(doc, job, kind, line) of each pasted `final`, `model` and cross-validation line; the job is
    the example the command before it names, kind "final", "model" or "cv:<command>"."""
    found = []
    for doc in DOCS:
        command = ""
        for line in doc.read_text().splitlines():
            if line.startswith("$ "):
                command = line
                continue
            job = next((j for j in JOBS if j.replace("_cv", "") in command), None)
            if job is None or not ("fusetrain train" in command or "fusetrain result" in command
                                   or "fusetrain sweep" in command):
                continue
            text = line.strip()
            if text.startswith("final "):
                found.append((doc.name, job, "final", text))
            elif text.startswith("model ") and "weights sha256" in text:
                found.append((doc.name, job, "model", text))
            elif "-fold cross-validation:" in text:
                found.append((doc.name, job, "cv:" + command, text))
    return found


def _lines(result) -> tuple[str, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_result(result)
    printed = [line.strip() for line in buf.getvalue().splitlines()]
    return printed[1], printed[2]


def _train(spec, base_dir):
    from fusetrain.client.local import train_local
    for name in ("train", "validation"):
        src = getattr(spec.data, name)
        for field in ("path", "labels"):
            value = getattr(src.file, field)
            if value and not os.path.isabs(value):
                setattr(src.file, field, str((base_dir / value).resolve()))
    return train_local(spec, threads=1)


def _job_file(job: str):
    folder = "sweeps" if job.endswith("_cv") else "jobs"
    return next((EXAMPLES / folder).glob(f"{job}.*"))


def _cv(sw: jobfiles.Sweep, metric: str = "val_accuracy") -> str:
    rows = []
    for combo in sw.combinations():
        spec = type(sw.base)()
        spec.CopyFrom(sw.base)
        for key, value in combo.items():
            paths.set_in_message(spec, key, value)
        r = _train(spec, sw.base_dir)
        rows.append({"overrides": combo, "final": r.final})
    return commands.cv_line(commands._cross_validation(rows, sw, metric)[0], sw.folds, metric)


def test_documented_runs_match_the_code():
    lines = documented()
    assert {job for _, job, _, _ in lines} >= {"worked_221", "xor", "iris", "pima", "seeds_cv"}
    expected: dict = {}
    mismatches = []
    for doc, job, kind, text in lines:
        if job == "mnist" and not MNIST:
            continue
        if kind.startswith("cv:"):
            command = kind[3:]
            if command not in expected:
                if job == "seeds_cv":
                    sw = jobfiles.load_sweep(_job_file(job))
                else:
                    folds = int(re.search(r"--folds (\d+)", command).group(1))
                    sw = jobfiles.Sweep(*jobfiles.load_spec(_job_file(job)))
                    jobfiles.add_folds(sw, folds)
                expected[command] = _cv(sw)
            want = expected[command]
        else:
            if job not in expected:
                spec, base_dir = jobfiles.load_spec(_job_file(job))
                expected[job] = _lines(_train(spec, base_dir))
            want = expected[job][0 if kind == "final" else 1]
        if text != want:
            mismatches.append(f"{doc} ({job}): documented\n    {text}\n  the code gives\n    {want}")
    assert not mismatches, "\n".join(mismatches)
