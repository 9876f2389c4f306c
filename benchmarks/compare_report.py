"""Plain-text tables for the comparison report (benchmarks/compare.py), and the target check."""

from __future__ import annotations

import compare_convergence
import compare_memory

LIBRARY_NAMES = {"fusetrain": "fusetrain", "torch": "PyTorch eager", "jax": "JAX jit+scan",
                 "sklearn": "scikit-learn"}

# The targets (section 4): fusetrain / fastest peer, fraction of the BLAS floor.
PEER_RATIO_TARGET = {"tiny": 1.2, "small": 1.2, "medium": 1.2, "large": 1.1, "wide": 1.1}
FLOOR_TARGET = {"large": 0.9, "wide": 0.9}
OPTIMIZER_TARGET = 0.9       # Adam and momentum throughput / plain SGD's, on "large"
COMPILE_COLD_TARGET = 2.0    # seconds
COMPILE_CACHED_TARGET = 0.3  # seconds
MANY_TARGET = 1.8            # train_many speed-up over one train call after another


def si(value: float) -> str:
    """12.4M, 91.2k, 950."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}" if value / scale < 100 else f"{value / scale:.0f}{unit}"
    return f"{value:.3g}"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def line(r):
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        return "  ".join(cells).rstrip()
    return [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]


def _ok(row) -> bool:
    return row is not None and "error" not in row


def display_name(report: dict, name: str) -> str:
    """A library's display name; the baseline row is fusetrain's engine at the baseline revision."""
    return f"fusetrain @ {report.get('baseline')}" if name == "baseline" else LIBRARY_NAMES[name]


def fastest_peer(report: dict, shape: str) -> tuple[str, dict] | tuple[None, None]:
    best = (None, None)
    for name, rows in report["rows"].items():
        row = rows.get(shape)
        if name in ("fusetrain", "baseline") or not _ok(row):
            continue
        if best[1] is None or row["samples_per_s"] > best[1]["samples_per_s"]:
            best = (name, row)
    return best


def kept_foreign_load(report: dict) -> float:
    """Most cores other processes kept busy beside any figure the report keeps."""
    found = [0.0]

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("foreign_load"), (int, float)):
                found.append(node["foreign_load"])
            for key, value in node.items():
                if key != "foreign_loads":
                    walk(value)
    for key in ("rows", "optimizers", "limits", "many", "compile"):
        walk(report.get(key))
    return max(found)


def _blas_lines(report: dict) -> list[str]:
    out = []
    limits = report.get("limits") or {}
    roles = {"numpy": "NumPy's: the GEMM peak",
             "scipy": "SciPy's: fusetrain's GEMMs and the BLAS floor (cython_blas, one thread per slab)"}
    for info in limits.get("blas", []):
        role = roles.get(info.get("shipped_by"), info.get("shipped_by"))
        out.append(f"  {info.get('internal_api')} {info.get('version')}, kernel {info.get('architecture')}, "
                   f"{info.get('num_threads')} threads ({info.get('threading_layer')}) -- {role}")
    for name, meta in report.get("peers", {}).items():
        for info in (meta or {}).get("blas") or []:
            if name not in ("fusetrain", "baseline") and info.get("shipped_by") not in ("numpy", "scipy"):
                out.append(f"  {name}: {info.get('internal_api')} {info.get('version') or ''} "
                           f"({info.get('user_api')}, shipped by {info.get('shipped_by')}), "
                           f"{info.get('num_threads')} threads")
    if limits.get("openblas_coretype"):
        out.append(f"  OPENBLAS_CORETYPE={limits['openblas_coretype']} is set (it can cost a third of GEMM speed)")
    return out


def render(report: dict) -> str:
    limits = report.get("limits") or {}
    peak = (limits.get("gemm_peak") or {}).get("gflops")
    floors = limits.get("floor") or {}
    rows = report["rows"]
    lines = []
    versions = ", ".join(f"{display_name(report, n)} {m.get('version')}" for n, m in report["peers"].items()
                         if m and m.get("version"))
    lines.append(f"fusetrain vs peers: float32, plain SGD, same architecture / batch / epochs / initial "
                 f"weights / data; {report['threads']} thread(s) of {report['cores']} cores; best of "
                 f"{report['repeat']} round(s); {report['date']}"
                 + ("; QUICK (a tenth of the epochs, at most 10,000 rows)" if report["quick"] else ""))
    lines.append(f"versions: {versions}; Python {report['python']}")
    for name, why in report.get("skipped", {}).items():
        lines.append(f"skipped {name}: {why}")
    for name, meta in report["peers"].items():
        if meta and meta.get("error"):
            lines.append(f"{name} failed: {meta['error']}")
    if "error" in limits:
        lines.append(f"limits failed: {limits['error']}")
    load = kept_foreign_load(report)
    if load > 0.15:
        lines.append(f"WARNING: other processes kept up to {load:.2f} core(s) busy beside a measurement "
                     f"(after retries); those figures are unreliable: rerun on a quiet machine")
    lines.append("BLAS:")
    lines.extend(_blas_lines(report))
    if peak:
        g = limits["gemm_peak"]
        lines.append(f"GEMM peak: {g['n']}x{g['n']}x{g['n']} float32 sgemm through NumPy, best of 5: "
                     f"{peak:.1f} GFLOP/s")
    lines.append("FLOPs per training row: 6·W − 2·W₁ (W weights, W₁ the first layer's); samples/s and "
                 "seconds exclude compilation.")
    lines.append("")

    header = ["shape", "library", "samples/s", "fusetrain/x", "GFLOP/s", "% peak", "% floor",
              "compile s", "final loss", "acc"] + (["peak MiB", "MiB ft/x"] if report.get("memory") else [])
    table = []
    for sname, shape in report["shapes"].items():
        floor = floors.get(sname)
        ft = rows.get("fusetrain", {}).get(sname)
        label = (f"{sname} {shape['sizes'][0]}" + "".join(f"-{u}" for u in shape["sizes"][1:]))
        first = True
        for name in ["fusetrain"] + [n for n in rows if n != "fusetrain"]:
            row = rows.get(name, {}).get(sname)
            if row is None:
                continue
            cell = label if first else ""
            first = False
            if not _ok(row):
                table.append([cell, display_name(report, name), "error: " + row["error"][:60]]
                             + [""] * (len(header) - 3))
                continue
            ratio = "" if name == "fusetrain" or not _ok(ft) else f"{ft['samples_per_s'] / row['samples_per_s']:.2f}x"
            table.append([
                cell, display_name(report, name), si(row["samples_per_s"]), ratio, f"{row['gflops']:.2f}",
                f"{100 * row['gflops'] / peak:.1f}" if peak else "",
                f"{100 * row['gflops'] / floor['gflops']:.0f}" if floor else "",
                f"{row['compile_seconds']:.2f}" if row.get("compile_seconds") else "-",
                f"{row['loss']:.4g}", f"{100 * row['accuracy']:.1f}",
            ] + ([_mib(compare_memory.peak(report, name, sname)), compare_memory.ratio_cell(report, name, sname)]
                 if report.get("memory") else []))
        if floor:
            table.append(["" if not first else label, "BLAS floor", si(floor["samples_per_s"]),
                          f"{ft['samples_per_s'] / floor['samples_per_s']:.2f}x" if _ok(ft) else "",
                          f"{floor['gflops']:.2f}", f"{100 * floor['gflops'] / peak:.1f}" if peak else "",
                          "100"] + [""] * (len(header) - 7))
        table.append([""] * len(header))
    lines.extend(_table(header, table[:-1], right={2, 3, 4, 5, 6, 7, 8, 9, 10, 11}))
    for sname, shape in report["shapes"].items():
        for name in rows:
            row = rows[name].get(sname)
            if _ok(row) and row.get("epochs_run", shape["epochs"]) != shape["epochs"]:
                lines.append(f"NOTE: {display_name(report, name)} ran {row['epochs_run']} of {shape['epochs']} epochs "
                             f"on {sname} ({row.get('stop_reason', 'stopped early')}); its rate counts those only")
    lines.append("")
    lines.append("fusetrain/x: fusetrain's samples/s over that library's. % peak / % floor: GFLOP/s over the "
                 "GEMM peak / over that shape's BLAS floor (its GEMM calls alone, cut into the engine's fixed "
                 "slabs of single-threaded BLAS calls, as the engine runs them).")
    if report.get("memory"):
        lines.append("peak MiB: the peak RSS (VmHWM) of a fresh process that loaded the data, imported that "
                     "library and trained only that shape, as in its speed row; MiB ft/x: fusetrain's peak over "
                     "that library's (details under \"Peak memory\").")
    lines.extend(_baseline_lines(report))
    lines.append("final loss / acc: the shape's own loss and training accuracy after the run, computed "
                 "alike for all: a cross-check. tiny is full batch and unshuffled, so the libraries agree "
                 "to every printed digit; the others shuffle, each library in its own order. scikit-learn's "
                 "classifier trains log-loss on tiny and small.")
    for sname, shape in report["shapes"].items():
        lines.append(f"  {sname}: {shape['rows']} rows, batch {shape['batch']}, {shape['epochs']} epochs, "
                     f"{shape['hidden']} hidden, {shape['output']} output, {shape['loss']}, lr "
                     f"{shape['learning_rate']}, data: {shape['data']}")

    lines.extend(compare_memory.lines(report, display_name))
    lines.extend(compare_convergence.lines(report, display_name))
    lines.extend(_optimizer_lines(report))
    lines.extend(_many_lines(report))
    lines.extend(_compile_lines(report))
    lines.append("")
    lines.append("Targets (issue 2, section 4)" + (" -- quick run, indicative only" if report["quick"] else "")
                 + ":")
    for verdict, text in targets(report):
        lines.append(f"  {verdict:6}  {text}")
    memory_targets = compare_memory.targets(report)
    if memory_targets:
        lines.append("Targets (issue 13)" + (" -- quick run, indicative only" if report["quick"] else "") + ":")
        for verdict, text in memory_targets:
            lines.append(f"  {verdict:6}  {text}")
    return "\n".join(lines)


def _mib(value) -> str:
    return f"{value / 2**20:.0f}" if value else "-"


def _baseline_lines(report: dict) -> list[str]:
    """fusetrain today over fusetrain at the baseline revision, per shape and optimizer, in this run."""
    rows, opts = report["rows"], report.get("optimizers") or {}
    if "baseline" not in rows:
        return []
    pairs = [(s, rows.get("fusetrain", {}).get(s), rows["baseline"].get(s)) for s in report["shapes"]]
    pairs += [(f"{k} on large", opts.get("fusetrain", {}).get(k), opts.get("baseline", {}).get(k))
              for k in ("momentum", "adam")]
    cells = [f"{s} {si(a['samples_per_s'])}/{si(b['samples_per_s'])} = {a['samples_per_s'] / b['samples_per_s']:.2f}x"
             for s, a, b in pairs if _ok(a) and _ok(b)]
    return ["", f"fusetrain now / at {report['baseline']} (samples/s, same run): " + "; ".join(cells)]


def _optimizer_lines(report: dict) -> list[str]:
    opts = report.get("optimizers") or {}
    if not opts:
        return []
    out = ["", "Optimizers on large (samples/s; lr: sgd base, momentum base/5 with 0.9, adam 1e-3):"]
    header = ["library", "sgd", "momentum", "adam", "momentum/sgd", "adam/sgd"]
    table = []
    for name, rows in opts.items():
        def sps(kind):
            r = rows.get(kind)
            return r["samples_per_s"] if _ok(r) else None
        s, m, a = sps("sgd"), sps("momentum"), sps("adam")
        table.append([display_name(report, name), si(s) if s else "-", si(m) if m else "-", si(a) if a else "-",
                      f"{m / s:.2f}" if s and m else "-", f"{a / s:.2f}" if s and a else "-"])
    if "fusetrain" in opts and "torch" in opts:
        f, t = opts["fusetrain"], opts["torch"]
        ratios = [f"{f[k]['samples_per_s'] / t[k]['samples_per_s']:.2f}x" if _ok(f.get(k)) and _ok(t.get(k))
                  else "-" for k in ("sgd", "momentum", "adam")]
        table.append(["fusetrain/torch"] + ratios + ["", ""])
    out.extend(_table(header, table, right={1, 2, 3, 4, 5}))
    return out


def _many_lines(report: dict) -> list[str]:
    many = report.get("many")
    if not many:
        return []
    if "error" in many:
        return ["", f"Many models: failed: {many['error']}"]
    return ["", f"Many models: {many['models']} models {many['arch']}, {many['epochs']} epochs, batch "
                f"{many['batch']}, {many['threads']} thread(s):",
            f"  engine.train_many, one call: {many['batch_seconds']:.2f} s "
            f"({si(many['batch_samples_per_s'])} samples/s)",
            f"  engine.train, one after another: {many['alone_seconds']:.2f} s "
            f"({si(many['alone_samples_per_s'])} samples/s)",
            f"  speed-up {many['speedup']:.2f}x; weights bit-identical to training alone: "
            f"{'yes' if many['identical'] else 'NO'}; mean training accuracy "
            f"{100 * many['mean_accuracy']:.1f}%"]


def _compile_lines(report: dict) -> list[str]:
    comp = report.get("compile")
    if not comp:
        return []
    out = ["", "fusetrain compile seconds (a fresh process per row; the engine's own figure, and "
               "first-call minus second-call wall time):"]
    header = ["shape", "cold", "cold (wall diff)", "cached", "cached (wall diff)", "import s"]
    table = []
    for sname, c in comp.items():
        cold, cached = c.get("cold", {}), c.get("cached", {})
        if not _ok(cold) or not _ok(cached):
            table.append([sname, "error: " + (cold.get("error") or cached.get("error", ""))[:70]] + [""] * 4)
            continue
        table.append([sname, f"{cold['compile_seconds']:.2f}", f"{cold['wall_difference']:.2f}",
                      f"{cached['compile_seconds']:.3f}", f"{cached['wall_difference']:.3f}",
                      f"{cached['import_seconds']:.2f}"])
    out.extend(_table(header, table, right={1, 2, 3, 4, 5}))
    return out


def targets(report: dict) -> list[tuple[str, str]]:
    """[(MET / MISSED / n/a, description with the measured number), ...]."""
    out = []
    rows = report["rows"]
    floors = (report.get("limits") or {}).get("floor") or {}

    def verdict(ok):
        return "MET" if ok else "MISSED"

    for sname in report["shapes"]:
        ft = rows.get("fusetrain", {}).get(sname)
        peer, prow = fastest_peer(report, sname)
        goal = PEER_RATIO_TARGET.get(sname)
        if goal and _ok(ft) and peer:
            r = ft["samples_per_s"] / prow["samples_per_s"]
            out.append((verdict(r >= goal), f"{sname}: fusetrain {si(ft['samples_per_s'])}/s is {r:.2f}x the "
                                            f"fastest peer ({LIBRARY_NAMES[peer]} {si(prow['samples_per_s'])}/s); "
                                            f"target >= {goal}x"))
        fgoal = FLOOR_TARGET.get(sname)
        if fgoal and _ok(ft) and sname in floors:
            f = ft["gflops"] / floors[sname]["gflops"]
            out.append((verdict(f >= fgoal), f"{sname}: {100 * f:.0f}% of the BLAS floor "
                                             f"({ft['gflops']:.1f} of {floors[sname]['gflops']:.1f} GFLOP/s); "
                                             f"target >= {100 * fgoal:.0f}%"))
    fo = (report.get("optimizers") or {}).get("fusetrain", {})
    if _ok(fo.get("sgd")):
        for kind in ("momentum", "adam"):
            if _ok(fo.get(kind)):
                r = fo[kind]["samples_per_s"] / fo["sgd"]["samples_per_s"]
                out.append((verdict(r >= OPTIMIZER_TARGET),
                            f"{kind} on large: {100 * r:.0f}% of plain SGD's throughput; target >= "
                            f"{100 * OPTIMIZER_TARGET:.0f}%"))
    comp = report.get("compile") or {}
    cold = [c["cold"]["compile_seconds"] for c in comp.values() if _ok(c.get("cold"))]
    cached = [c["cached"]["compile_seconds"] for c in comp.values() if _ok(c.get("cached"))]
    if cold:
        out.append((verdict(max(cold) <= COMPILE_COLD_TARGET),
                    f"compile cold: at most {max(cold):.2f} s over the shapes; target <= {COMPILE_COLD_TARGET} s"))
    if cached:
        out.append((verdict(max(cached) <= COMPILE_CACHED_TARGET),
                    f"compile from the cache: at most {max(cached):.3f} s; target <= {COMPILE_CACHED_TARGET} s"))
    many = report.get("many")
    if _ok(many):
        out.append((verdict(many["speedup"] >= MANY_TARGET),
                    f"many models: {many['models']} models as a batch {many['speedup']:.2f}x faster than one "
                    f"after another; target >= {MANY_TARGET}x"))
    return out
