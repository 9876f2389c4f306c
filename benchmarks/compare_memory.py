"""Peak memory of each library on each shape: a fresh process per pair, its own high-water RSS.

One worker process per (library, shape) loads that shape's data, imports the library, then
trains the shape exactly as the speed rows do (warm-up and timed runs) and nothing else. At
the end it reads its own peak resident set size, VmHWM from /proc/self/status: the high-water
mark of this process's address space since it was started, so the library's import, its
buffers and everything it allocated while training count, and nothing from any other shape
or library does.

Why not ru_maxrss: on Linux a child's ru_maxrss (getrusage or wait4) also holds the RSS its
parent had when it was forked, because the kernel keeps the larger of the pre-exec and the
post-exec peaks; VmHWM starts afresh at exec. And one worker's ru_maxrss growth over a shape
reads zero for every shape smaller than one measured before it.
"""

from __future__ import annotations

from pathlib import Path

MIB = 2**20


def _status_kib(field: str) -> int | None:
    """A "VmXXX:   1234 kB" field of /proc/self/status, in KiB (None off Linux)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def own_peak_rss() -> int:
    """This process's peak resident set size in bytes (VmHWM; ru_maxrss where /proc is absent)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        import resource
        import sys
        scale = 1 if sys.platform == "darwin" else 1024     # macOS reports bytes, Linux KiB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    return kib * 1024


def own_rss() -> int | None:
    """This process's resident set size now, in bytes (VmRSS)."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def measure(peer, shape, path: str, threads: int) -> dict:
    """Worker side: RSS with the library imported and the data loaded, then the peak after training."""
    import importlib

    from compare_shapes import load

    for module in getattr(peer, "IMPORTS", (peer.LIBRARY,)):
        importlib.import_module(module)
    peer.version()
    data, layers = load(Path(path))
    before = own_rss()
    out = peer.train(shape, data, layers, threads, "sgd")
    return {"import_rss_bytes": before, "peak_rss_bytes": own_peak_rss(), "seconds": out["seconds"]}


def run(runner, names: list[str], shapes: dict, job: dict) -> dict:
    """Parent side: one fresh worker per (library, shape); {library: {shape: figures or {"error"}}}."""
    out: dict = {}
    for name in names:
        for sname, shape in shapes.items():
            print(f" {name}/{sname}", end="", flush=True)
            sub = {**job, "shapes": {sname: shape.to_dict()}, "library": name}
            res, _ = runner.spawn("memory", sub, quiet=False)
            out.setdefault(name, {})[sname] = res
    return out


def _mib(value) -> str:
    return f"{value / MIB:.0f}" if value else "-"


def peak(report: dict, name: str, shape: str) -> int | None:
    row = (report.get("memory") or {}).get(name, {}).get(shape)
    return row.get("peak_rss_bytes") if row and "error" not in row else None


def ratio_cell(report: dict, name: str, shape: str) -> str:
    """fusetrain's peak RSS over `name`'s on `shape`, for the main table."""
    ours, theirs = peak(report, "fusetrain", shape), peak(report, name, shape)
    if name == "fusetrain" or not ours or not theirs:
        return ""
    return f"{ours / theirs:.2f}x"


def lines(report: dict, display_name) -> list[str]:
    """The memory table: RSS before training, peak, and what training added, per shape and library."""
    from compare_report import _table

    memory = report.get("memory")
    if not memory:
        return []
    out = ["", "Peak memory (MiB; a fresh process per library and shape, which loads the data, imports the "
               "library and trains that shape as its speed row does; peak = the process's VmHWM, its own "
               "high-water RSS, import included; before = RSS with the library imported and the data "
               "loaded; ru_maxrss would also count the RSS of the parent that started it):"]
    header = ["shape", "library", "before", "peak", "peak - before", "fusetrain/x"]
    table = []
    for sname in report["shapes"]:
        first = True
        for name in ["fusetrain"] + [n for n in memory if n != "fusetrain"]:
            row = memory.get(name, {}).get(sname)
            if row is None:
                continue
            cell, first = (sname if first else ""), False
            if "error" in row:
                table.append([cell, display_name(report, name), "error: " + row["error"][:60], "", "", ""])
                continue
            grew = (row["peak_rss_bytes"] - row["import_rss_bytes"]) if row.get("import_rss_bytes") else None
            table.append([cell, display_name(report, name), _mib(row.get("import_rss_bytes")),
                          _mib(row["peak_rss_bytes"]), _mib(grew), ratio_cell(report, name, sname)])
    out.extend(_table(header, table, right={2, 3, 4, 5}))
    return out


TARGET = 1.0   # issue 13: fusetrain's peak RSS at most PyTorch's, on every shape


def targets(report: dict) -> list[tuple[str, str]]:
    out = []
    for sname in report["shapes"]:
        ours, theirs = peak(report, "fusetrain", sname), peak(report, "torch", sname)
        if ours and theirs:
            r = ours / theirs
            out.append(("MET" if r <= TARGET else "MISSED",
                        f"memory on {sname}: fusetrain peaks at {ours / MIB:.0f} MiB, PyTorch at "
                        f"{theirs / MIB:.0f} MiB ({r:.2f}x); target <= {TARGET:.1f}x"))
    return out
