"""`fusetrain result` and `fusetrain predict`: a job's result and model, saved, verified or run on rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional

import numpy as np

from . import errors, loaders, output as out
from .client import Client
from .cmdutil import EXIT_JOB_FAILED, EXIT_OK, client_of, print_result, resolve_job_id


def result(args) -> int:
    with client_of(args) as c:
        r = c.result(resolve_job_id(c, args.job_id))
        saved = r.save(args.output) if args.output else None
        check = _verify(c, r, Path(saved), args.verify, args) if saved and args.verify else None
    if args.json:
        extra = {"saved": str(saved)} if saved else {}
        if check:
            extra["verify"] = check
        if args.history:
            extra["history"] = r.history.to_list()
        out.print_json({**r.summary(), **extra})
    else:
        print_result(r)
        if args.history:
            for row in r.history.to_list():
                print(f"  epoch {row['epoch']:5d}  {out.metrics_line(row)}")
        if saved:
            print(f"  saved {saved} ({Path(saved).suffix[1:]}: {len(r.weights)} layers"
                  f"{', with the input ' + r.normalization.kind if r.normalization else ''})")
        if check:
            print(f"  verify {check['runtime']} on {check['rows']} rows of {check['input']}: max |difference| "
                  f"from Predict {check['max_abs_diff']:.3g} (tolerance {check['tolerance']:g}): "
                  f"{'ok' if check['ok'] else 'MISMATCH'}")
    return EXIT_OK if not check or check["ok"] else EXIT_JOB_FAILED


def _verify(c: Client, r, path: Path, input_text: str, args) -> dict:
    """Run the saved model on INPUT (onnxruntime for .onnx, numpy for .npz/.safetensors) and compare
    with the server's Predict."""
    from . import export

    x, _ = _read_inputs(input_text, r.spec.model.inputs, args)
    want = c.predict(r.job_id, x)
    tol = 1e-5 if r.dtype == "float32" else 1e-8
    if path.suffix.lower() == ".onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise errors.FusetrainError("--verify of an .onnx file needs onnxruntime (pip install onnxruntime)") \
                from None
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {"x": np.asarray(x, dtype=r.dtype)})[0]
        runtime = f"onnxruntime {ort.__version__}"
    else:
        reader = export.load_npz if path.suffix.lower() == ".npz" else export.load_safetensors
        layers, norm, _ = reader(path)
        got = export.forward(layers, norm, np.asarray(x))
        runtime = "numpy"
    diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if len(x) else 0.0
    return {"input": input_text, "rows": int(len(x)), "runtime": runtime, "max_abs_diff": diff, "tolerance": tol,
            "ok": diff <= tol}


def _read_inputs(text: str, inputs: int, args) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Rows to predict from a file or a JSON list, and their targets when the file has them."""
    if text.lstrip().startswith("["):
        try:
            x = np.asarray(json.loads(text), dtype=np.float64)
        except ValueError as exc:
            raise errors.SpecError(f"INPUT {text!r}: not a JSON list of rows: {exc}") from None
        return x.reshape(-1, inputs) if x.ndim == 1 else x, None
    path = Path(text)
    if not path.exists():
        raise errors.SpecError(f"INPUT {path}: not found")
    labels = getattr(args, "labels", None)
    target = getattr(args, "target", None)
    try:
        if path.suffix.lower() in (".csv", ".txt", ".tsv"):
            with open(path, newline="") as f:
                width = len(next(csv.reader(f), []))
            has_target = target is not None or width == inputs + 1
            d = loaders.load_csv(path, target=(-1 if target is None else target) if has_target else None)
        else:
            d = loaders.load(path)
        y = d.y
        if labels:
            y, _ = loaders.load_labels(labels)
    except loaders.LoadError as exc:
        raise errors.SpecError(str(exc)) from None
    return d.x, y


def predict(args) -> int:
    with client_of(args) as c:
        job = c.job(resolve_job_id(c, args.job_id))
        inputs = job.proto.spec.model.inputs
        x, y = _read_inputs(args.input, inputs, args)
        pred = c.predict(job.id, x)
    names = list(job.proto.spec.data.class_names)
    classes = _classes(pred, names) if pred.shape[1] > 1 else None
    acc = _accuracy(pred, y) if y is not None and len(y) == len(pred) else None
    if args.output:
        path = Path(args.output)
        if path.suffix.lower() == ".npy":
            np.save(path, pred)
        else:
            _write_csv(path, pred, classes)
    if args.json:
        doc = {"job_id": job.id, "rows": int(len(pred)), "outputs": int(pred.shape[1])}
        if names:
            doc["class_names"] = names
        if acc is not None:
            doc["accuracy"] = acc
        if args.output:
            doc["saved"] = str(args.output)
        else:
            doc["y"] = pred.tolist()
            if classes is not None:
                doc["class"] = classes
        out.print_json(doc)
        return EXIT_OK
    shown = pred[:args.rows]
    columns = ["row", *[f"y{j}" for j in range(pred.shape[1])]] + (["class"] if classes is not None else [])
    rows = [[i, *[f"{v:.4f}" for v in r], *([classes[i]] if classes is not None else [])]
            for i, r in enumerate(shown)]
    out.table(None, columns, rows)
    if len(pred) > len(shown):
        print(f"... {len(pred) - len(shown)} more rows" + (f" (all in {args.output})" if args.output else
                                                          " (-o FILE writes them all)"))
    if names and classes is not None:
        print("classes " + ", ".join(f"y{j} {n}" for j, n in enumerate(names)))
    if acc is not None:
        print(f"accuracy {out.pct(acc)} on {len(pred)} rows")
    return EXIT_OK


def _classes(pred: np.ndarray, names: list) -> list:
    """Each row's class: its name when the job's data had class labels, else its index."""
    index = np.argmax(pred, axis=1).tolist()
    return [names[i] if i < len(names) else i for i in index]


def _write_csv(path: Path, pred: np.ndarray, classes: Optional[list]) -> None:
    """A header (y0, y1, ..., class), one row per prediction, the class name (or index) last."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"y{j}" for j in range(pred.shape[1])] + (["class"] if classes is not None else []))
        for i, r in enumerate(pred):
            w.writerow([f"{v:.9g}" for v in r] + ([classes[i]] if classes is not None else []))


def _accuracy(pred: np.ndarray, y: np.ndarray) -> Optional[float]:
    y = np.asarray(y, dtype=np.float64)
    if y.shape[1] != pred.shape[1]:
        return None
    if pred.shape[1] > 1:
        return float(np.mean(np.argmax(pred, axis=1) == np.argmax(y, axis=1)))
    return float(np.mean((pred[:, 0] > 0.5) == (y[:, 0] > 0.5)))
