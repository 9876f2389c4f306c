"""The committed performance history and its tooling: offline HTML, the plot, the machine profile.

- benchmarks/asv_offline.py rewrites asv's CDN <script>/<link> tags to vendored files; a real
  `asv publish` of the committed results (benchmarks/results/) into a temporary directory,
  followed by it, leaves no .html that loads a script or style sheet from http(s)://
  (skipped when asv is not installed).
- benchmarks/plot_history.py draws the committed results into a PNG and prints its table.
- benchmarks/asv_machine.py registers the committed ci-2core profile with all its fields.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / "benchmarks"
RESULTS = BENCH_DIR / "results"
CONF = BENCH_DIR / "asv.conf.json"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _remote_assets(html: str) -> list[str]:
    """Independent of the script under test: src/href of <script> and <link> tags that leave the machine."""
    found = []
    for tag in re.findall(r"<(?:script|link)\b[^>]*>", html, re.I | re.S):
        found += re.findall(r"""\b(?:src|href)\s*=\s*["']((?:https?:)?//[^"']*)""", tag, re.I)
    return found


ASV_INDEX = """<html><head>
<script src="https://code.jquery.com/jquery-3.3.1.min.js" integrity="sha256-x" crossorigin="anonymous" onerror="js_load_failure()"></script>
<script src="https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js" integrity="sha512-y" crossorigin="anonymous" referrerpolicy="no-referrer" onerror="js_load_failure()"></script>
<script language="javascript" type="text/javascript" src="jquery.flot.axislabels.js"></script>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css" integrity="sha256-z" crossorigin="anonymous">
</head><body><a href="https://github.com/airspeed-velocity/asv/">airspeed velocity</a></body></html>
"""


def test_rewrite_points_cdn_tags_at_vendored_files():
    offline = _load("asv_offline")
    html, count = offline.rewrite(ASV_INDEX)
    assert count == 3
    assert _remote_assets(html) == []
    assert 'src="vendor/jquery.min.js"' in html and 'src="vendor/jquery.flot.js"' in html
    assert 'href="vendor/css/bootstrap.min.css"' in html
    assert "integrity" not in html and "crossorigin" not in html and "referrerpolicy" not in html
    assert 'onerror="js_load_failure()"' in html                   # asv's fallback stays
    assert 'href="https://github.com/airspeed-velocity/asv/"' in html   # a link, not an asset
    assert offline.rewrite(html) == (html, 0)                       # idempotent
    for target in offline.LOCAL.values():
        assert (offline.VENDOR / target).is_file(), target


def test_rewrite_refuses_an_unknown_cdn_asset():
    offline = _load("asv_offline")
    with pytest.raises(offline.RemoteReference):
        offline.rewrite('<script src="https://cdn.example.org/new-lib.min.js"></script>')


def test_asv_index_cdn_assets_all_have_local_copies():
    """asv's own index.html (the installed asv): every CDN asset it names is vendored."""
    try:
        import asv
    except ImportError:
        pytest.skip("asv is not installed")
    index = (Path(asv.__file__).parent / "www" / "index.html").read_text()
    assert _remote_assets(index), "asv's index.html loads nothing remote any more: drop asv_offline"
    html, _ = _load("asv_offline").rewrite(index)
    assert _remote_assets(html) == []


def _history_files() -> list[Path]:
    return [p for p in (RESULTS / "ci-2core").glob("*.json") if p.name != "machine.json"]


def test_published_html_loads_nothing_from_the_network(tmp_path):
    asv = Path(sys.executable).with_name("asv")
    if not asv.exists():
        pytest.skip("asv is not installed")
    if not _history_files():
        pytest.skip("no committed results in benchmarks/results/ci-2core")
    # The project's configuration with the HTML going to a temporary directory.
    text = "\n".join(line for line in CONF.read_text().splitlines() if not line.lstrip().startswith("//"))
    conf = json.loads(text)
    conf.update(repo=str(REPO), results_dir=str(RESULTS), html_dir=str(tmp_path / "html"),
                env_dir=str(tmp_path / "env"), benchmark_dir=str(BENCH_DIR / "benchmarks"))
    config = tmp_path / "asv.conf.json"
    config.write_text(json.dumps(conf))
    proc = subprocess.run([str(asv), "--config", str(config), "publish"], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _remote_assets((tmp_path / "html" / "index.html").read_text()), "asv publish changed: check the test"
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "asv_offline.py"), str(tmp_path / "html")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pages = list((tmp_path / "html").rglob("*.html"))
    assert pages
    for page in pages:
        assert _remote_assets(page.read_text(encoding="utf-8")) == [], page
    index = (tmp_path / "html" / "index.html").read_text()
    for local in re.findall(r"""<(?:script|link)\b[^>]*\b(?:src|href)="(vendor/[^"]+)""", index):
        assert (tmp_path / "html" / local).is_file(), local
    assert (tmp_path / "html" / "vendor" / "fonts" / "glyphicons-halflings-regular.woff").is_file()


def test_plot_history_draws_the_committed_results(tmp_path):
    pytest.importorskip("matplotlib")
    if not _history_files():
        pytest.skip("no committed results in benchmarks/results/ci-2core")
    out = tmp_path / "history.png"
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "plot_history.py"), "-o", str(out), "--table"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert "| commit | date (UTC)" in proc.stdout


def test_plot_history_merges_environments_per_commit(tmp_path):
    plot = _load("plot_history")
    folder = tmp_path / "ci-2core"
    folder.mkdir()
    columns = ["result", "params", "version", "started_at", "duration"]
    samples = "bench_engine.TrainShapes.track_samples_per_second"
    params = [["'tiny'", "'small'"], ["'float32'"], ["1"]]

    def write(name, commit, date, started, results):
        (folder / name).write_text(json.dumps({"commit_hash": commit, "date": date, "result_columns": columns,
                                               "results": results, "version": 2}))

    write("aaaa-virtualenv.json", "a" * 40, 1_000_000, 10, {
        samples: [[1.0e6, 2.0e5], params, "v", 10, 1.0],
        "bench_compile.ServerColdStart.track_cold_start_seconds": [[12.5], [], "v", 10, 1.0]})
    write("bbbb-virtualenv.json", "b" * 40, 2_000_000, 20, {samples: [[1.1e6, None], params, "v", 20, 1.0]})
    write("bbbb-existing.json", "b" * 40, 2_000_000, 30, {samples: [[1.2e6, 2.2e5], params, "v", 30, 1.0]})
    (folder / "machine.json").write_text("{}")
    history = plot.load_history(tmp_path, "ci-2core")
    assert [c["hash"][0] for c in history] == ["a", "b"]
    samples_by_shape, seconds = plot.series(history)
    assert samples_by_shape == {"tiny": [1.0e6, 1.2e6], "small": [2.0e5, 2.2e5]}   # the later run wins
    assert seconds == {"server cold start to SERVING": [12.5, None]}
    table = plot.table(history)
    assert "1,200,000" in table and "n/a" in table


def test_machine_profile_is_registered_with_every_committed_field(tmp_path):
    machine = _load("asv_machine")
    home = tmp_path / "asv-machine.json"
    home.write_text(json.dumps({"other": {"machine": "other"}, "version": 1}))
    assert machine.register("ci-2core", RESULTS, home) == 0
    data = json.loads(home.read_text())
    committed = json.loads((RESULTS / "ci-2core" / "machine.json").read_text())
    assert data["other"] == {"machine": "other"}
    for field in ("machine", "os", "arch", "cpu", "num_cpu", "ram"):
        assert data["ci-2core"][field] == committed[field], field


def test_existing_environment_results_lose_the_local_path(tmp_path):
    record = _load("asv_record")
    folder = tmp_path / "ci-2core"
    folder.mkdir()
    commit = "c" * 40
    columns = ["result", "params"]

    def result(env, results):
        python = "/home/someone/fusetrain/.venv/bin/python" if env == local else "3.11-venv"
        return {"commit_hash": commit, "env_name": env, "date": 1, "result_columns": columns,
                "results": results, "durations": {}, "version": 2, "python": python,
                "params": {"machine": "ci-2core", "python": python}}

    local = "existing-py_home_someone_fusetrain_.venv_bin_python"
    (folder / "cccccccc-existing-venv.json").write_text(json.dumps(result(
        "existing-venv", {"a.old": [[1.0], []], "a.both": [[2.0], []]})))
    (folder / f"cccccccc-{local}.json").write_text(json.dumps(result(local, {"a.both": [[3.0], []]})))
    (folder / "machine.json").write_text("{}")
    written = record.normalize(tmp_path, "ci-2core")
    assert [p.name for p in written] == ["cccccccc-existing-venv.json"]
    assert sorted(p.name for p in folder.iterdir()) == ["cccccccc-existing-venv.json", "machine.json"]
    data = json.loads(written[0].read_text())
    assert data["env_name"] == "existing-venv"
    assert data["python"] == data["params"]["python"] == f"{sys.version_info.major}.{sys.version_info.minor}-venv"
    assert data["results"] == {"a.old": [[1.0], []], "a.both": [[3.0], []]}
    assert record.normalize(tmp_path, "ci-2core") == []
    # A renamed file that still names the interpreter's path is fixed in place, not lost.
    data["python"] = "/somewhere/.venv/bin/python"
    written[0].write_text(json.dumps(data))
    assert record.normalize(tmp_path, "ci-2core") == written
    assert json.loads(written[0].read_text())["results"] == {"a.old": [[1.0], []], "a.both": [[3.0], []]}
    assert "someone" not in written[0].read_text()
