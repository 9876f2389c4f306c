"""Job files and sweep files: read them, apply `--set` overrides, resolve local data files.

A job file is JobSpec in proto3 JSON, or YAML with the same fields. A data source may name a
local file (`data.train.file: {path: iris.csv}`); `resolve_files` reads it with loaders.py and
hands the arrays to a `store` function (an upload, or a local directory for `--local`), then
puts the returned dataset id in its place. A sweep file is

    base: {...JobSpec...}          # or base: path/to/job.yaml (relative to the sweep file)
    grid:                          # one job per combination, the last axis fastest
      optimizer.learning_rate: [0.1, 0.3]
      model.layers[0].units: [4, 8]
    folds: 5                       # optional: k-fold cross-validation, one more axis
    repeats: 3                     # optional: repeated k-fold, 3 shuffles (one more axis)
    labels: {sweep: seeds}         # optional: added to every job
    sort: val_accuracy             # optional: the metric the results table is sorted by
    set: {training.epochs: 50}     # optional: overrides of the base, as --set (which wins)
    search: {...}                  # instead of a grid: random search or successive halving
                                   # (one job; see searchspec.py)

No grpc here: the message classes come from fusetrain.v1, YAML is imported only when used.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
from google.protobuf import json_format

from fusetrain.wire.tensors import array_to_tensor
from fusetrain.v1 import job_pb2
from fusetrain.wire import paths

from . import loaders
from .errors import SpecError

SpecLike = Union[job_pb2.JobSpec, dict, str, Path]
# store(arrays, name) -> dataset id: where resolve_files puts the arrays it read.
Store = Callable[[dict, str], str]


# ------------------------------------------------------------------------------------ reading

def read_document(path) -> dict:
    """A JSON or YAML file as a dict (by extension; .yaml/.yml are YAML)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read: {exc}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise SpecError(f"{path}: not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: "
                        f"{exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of JobSpec fields at the top, got {type(data).__name__}")
    return data


def canonical(data: dict, origin: str = "spec") -> dict:
    """The job file's mapping with every field under its proto name (`learningRate` and
    `learning_rate` are one field); unknown fields are refused with the closest name."""
    try:
        return paths.canonical(data)
    except paths.FieldPathError as exc:
        raise SpecError(f"{origin}: {exc}") from None


def parse_spec(data: dict, origin: str = "spec") -> job_pb2.JobSpec:
    try:
        return json_format.ParseDict(canonical(data, origin), job_pb2.JobSpec())
    except json_format.ParseError as exc:
        raise SpecError(f"{origin}: {exc}") from None


def load_spec(spec: SpecLike, overrides: Optional[dict] = None,
              check: bool = True) -> tuple[job_pb2.JobSpec, Path]:
    """(JobSpec, folder that relative data paths start from) of a message, dict or job file path.

    check: refuse hyper-parameters the chosen optimizer or schedule does not use (a sweep's base
    is checked per job by the server instead: its grid may change the kind)."""
    base_dir = Path.cwd()
    origin = "spec"
    if isinstance(spec, job_pb2.JobSpec):
        data = to_dict(spec) if overrides else None
        msg = spec
    elif isinstance(spec, dict):
        data, msg = dict(spec), None
    elif isinstance(spec, (str, Path)):
        path = Path(spec)
        data, base_dir, origin, msg = read_document(path), path.resolve().parent, str(path), None
    else:
        raise TypeError(f"a job spec is a JobSpec, a dict or a file path, not {type(spec).__name__}")
    if overrides:
        data = canonical(data, origin)
        blame = getattr(overrides, "origin", "override")
        for key, value in overrides.items():
            set_path(data, key, value, blame)
    if data is not None:
        msg = parse_spec(data, origin)
    out = job_pb2.JobSpec()
    out.CopyFrom(msg)
    if check:
        for path, why in paths.unused_fields(out):
            raise SpecError(f"{origin}: {path}: {why}")
    return out, base_dir


def to_dict(spec) -> dict:
    return json_format.MessageToDict(spec, preserving_proto_field_name=True)


# ---------------------------------------------------------------------------------- overrides

class Overrides(dict):
    """Field overrides ({path: value}) with where they came from (`--set`), for the messages."""

    def __init__(self, items=(), origin: str = "--set"):
        super().__init__(items)
        self.origin = origin


def set_path(data: dict, path: str, value, origin: str = "override") -> None:
    """Set `a.b[0].c` in a job file's mapping (fusetrain.wire.paths: either spelling of a name,
    unknown fields refused with the closest one), creating mappings on the way."""
    try:
        paths.set_in_dict(data, path, value)
    except paths.FieldPathError as exc:
        raise SpecError(f"{origin} {exc}") from None


def parse_assignment(text: str) -> tuple[str, object]:
    """`FIELD=VALUE` from the command line; VALUE is read as YAML (numbers, booleans, lists)."""
    if "=" not in text:
        raise SpecError(f"--set {text!r}: expected FIELD=VALUE, e.g. training.epochs=20")
    key, raw = text.split("=", 1)
    import yaml
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


# ------------------------------------------------------------------------------- local files

def npz_bytes(arrays: dict) -> bytes:
    """A deterministic, uncompressed NPZ of `arrays` (fixed timestamps): the same arrays always give
    the same bytes, so the same data always has the same dataset id."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            arr = np.ascontiguousarray(arrays[name])
            if arr.dtype.byteorder == ">":
                arr = arr.astype(arr.dtype.newbyteorder("<"))
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)
    return buf.getvalue()


def read_file_source(src: job_pb2.LocalFile, base_dir: Path, where: str) -> loaders.Dataset:
    """The arrays a LocalFile names, read with loaders.py; errors name the field and the file."""
    path = _path(src.path, base_dir, f"{where}.path")
    options = {}
    name = path.name.lower()
    try:
        if name.endswith((".csv", ".txt", ".tsv")):
            options = {"target": src.target if src.HasField("target") else -1,
                       "header": src.header if src.HasField("header") else None,
                       "delimiter": src.delimiter or ","}
            if src.HasField("one_hot"):
                options["one_hot"] = src.one_hot
            if src.labels:
                options["target"] = None
        data = loaders.load(path, **options)
        if src.labels:
            labels_path = _path(src.labels, base_dir, f"{where}.labels")
            y, classes = loaders.load_labels(labels_path, src.one_hot if src.HasField("one_hot") else None)
            if len(y) != len(data.x):
                raise SpecError(f"{where}: {labels_path} has {len(y)} labels for {len(data.x)} rows of {path}")
            data = loaders.Dataset(x=data.x, y=y, classes=classes)
    except loaders.LoadError as exc:
        raise SpecError(f"{where}: {exc}") from None
    if data.y is None:
        raise SpecError(f"{where}: {path} gives no targets: name a target column (CSV), a y array (NPZ) "
                        f"or a labels file")
    return data


def _path(text: str, base_dir: Path, where: str) -> Path:
    if not text:
        raise SpecError(f"{where}: is empty")
    path = Path(text).expanduser()
    path = Path(os.path.normpath(path if path.is_absolute() else base_dir / path))
    if not path.exists():
        raise SpecError(f"{where}: {path} not found; put the file there or pass "
                        f"--set {where}=PATH")
    return path


def check_outputs(spec: job_pb2.JobSpec, src: job_pb2.LocalFile, data: loaders.Dataset, where: str) -> None:
    """When the targets read do not fit the output layer, say what was inferred from the file
    (a one-hot encoding of integer labels, say) and how to turn it off."""
    if not spec.model.layers or data.y is None:
        return
    units, width = spec.model.layers[-1].units, data.y.shape[1]
    if units == width:
        return
    name = Path(src.path).name
    if data.classes and not src.HasField("one_hot"):
        shown = ", ".join(map(str, data.classes[:5])) + (", ..." if len(data.classes) > 5 else "")
        raise SpecError(f"{where}: the targets of {name} were read as {len(data.classes)} classes ({shown}) and "
                        f"one-hot encoded into {width} columns, but the output layer has {units} unit"
                        f"{'s' if units != 1 else ''}; for a numeric (regression) target set "
                        f"{where}.one_hot: false (--set {where}.one_hot=false)")
    raise SpecError(f"{where}: {name} gives targets of {width} column{'s' if width != 1 else ''}, but the output "
                    f"layer has {units} unit{'s' if units != 1 else ''}")


def resolve_files(spec: job_pb2.JobSpec, base_dir: Path, store: Store) -> dict:
    """Replace every data.*.file with the dataset id `store` returns; return {where: Dataset}."""
    seen: dict = {}
    for name in ("train", "validation"):
        if not spec.data.HasField(name) or not getattr(spec.data, name).HasField("file"):
            continue
        src = getattr(spec.data, name)
        where = f"data.{name}.file"
        key = src.file.SerializeToString(deterministic=True)
        if key not in seen:
            data = read_file_source(src.file, base_dir, where)
            check_outputs(spec, src.file, data, where)
            arrays = {"x": data.x, "y": data.y}
            seen[key] = (store(arrays, Path(src.file.path).name), data)
        dataset_id, data = seen[key]
        if name == "train" and data.classes and not spec.data.class_names:
            spec.data.class_names.extend(str(c) for c in data.classes)
        src.ClearField("file")
        src.dataset_id = dataset_id
        src.x_array, src.y_array = "x", "y"
        seen[where] = data
    return {k: v for k, v in seen.items() if isinstance(k, str)}


def attach_arrays(spec: job_pb2.JobSpec, x, y, store: Store, which: str = "train",
                  inline_bytes: int = 64 << 10, sample_weight=None) -> None:
    """Put arrays x, y (and per-row weights) in data.<which>: inline when small, else through
    `store` (an upload; the weights as array "w", named by weight_array)."""
    x = np.asarray(x)
    y = np.asarray(y)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if x.ndim == 1:
        x = x.reshape(-1, 1)
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    src = getattr(spec.data, which)
    src.Clear()
    if x.nbytes + y.nbytes + (0 if w is None else w.nbytes) <= inline_bytes:
        src.x.CopyFrom(array_to_tensor(x))
        src.y.CopyFrom(array_to_tensor(y))
        if w is not None:
            src.sample_weight.CopyFrom(array_to_tensor(w))
    else:
        src.dataset_id = store({"x": x, "y": y} | ({} if w is None else {"w": w}), which)
        if w is not None:
            src.weight_array = "w"


# -------------------------------------------------------------------------------------- sweeps

@dataclass
class Sweep:
    base: job_pb2.JobSpec
    base_dir: Path
    axes: list = field(default_factory=list)      # [(field path, [values])]
    labels: dict = field(default_factory=dict)
    sort: str = ""
    folds: int = 0
    repeats: int = 1
    notes: list = field(default_factory=list)     # what the client changed, to say so (--folds)
    search: Optional[job_pb2.Search] = None       # a search instead of a grid

    def combinations(self) -> list[dict]:
        """The override of each job, in the order SubmitJobs returns them (last axis fastest)."""
        import itertools
        names = [name for name, _ in self.axes]
        return [dict(zip(names, combo)) for combo in itertools.product(*(v for _, v in self.axes))]


FOLD_FIELD = "data.cross_validation.fold"
REPEAT_FIELD = "data.cross_validation.repeat"
CV_FIELDS = (REPEAT_FIELD, FOLD_FIELD)


def load_sweep(path, overrides: Optional[dict] = None, folds: Optional[int] = None,
               repeats: Optional[int] = None) -> Sweep:
    """A sweep file (see the module docstring); `folds` and `repeats` override the file's."""
    path = Path(path)
    doc = read_document(path)
    unknown = set(doc) - {"base", "grid", "folds", "repeats", "fold_seed", "labels", "sort", "search", "set"}
    if unknown:
        raise SpecError(f"{path}: unknown sweep keys {sorted(unknown)}; expected base, set, grid, folds, "
                        f"repeats, fold_seed, labels, sort, search")
    if not isinstance(doc.get("set") or {}, dict):
        raise SpecError(f"{path}: set must map field paths to values")
    if doc.get("set"):
        overrides = Overrides({**doc["set"], **(overrides or {})},
                              origin=f"{path}: set" + (" or --set" if overrides else ""))
    if "search" in doc and (doc.get("grid") or doc.get("folds") or doc.get("repeats") or folds):
        raise SpecError(f"{path}: a search samples its own candidates: give search or grid/folds/repeats, "
                        f"not both")
    if "base" not in doc:
        raise SpecError(f"{path}: a sweep file needs `base` (a JobSpec, or the path of a job file)")
    base = doc["base"]
    if isinstance(base, str):
        base_path = (path.resolve().parent / base)
        spec, base_dir = load_spec(base_path, overrides, check=False)
    elif isinstance(base, dict):
        spec, _ = load_spec(base, overrides, check=False)
        base_dir = path.resolve().parent
    else:
        raise SpecError(f"{path}: base must be a mapping or a file path")
    axes = []
    grid = doc.get("grid") or {}
    items = grid.items() if isinstance(grid, dict) else ((a.get("field"), a.get("values")) for a in grid)
    for name, values in items:
        if not isinstance(name, str) or not isinstance(values, list) or not values:
            raise SpecError(f"{path}: grid axis {name!r} needs a non-empty list of values")
        axes.append((name, values))
    k = folds if folds is not None else int(doc.get("folds") or 0)
    r = repeats if repeats is not None else int(doc.get("repeats") or 1)
    labels = {str(a): str(b) for a, b in (doc.get("labels") or {}).items()}
    sw = Sweep(spec, base_dir, axes, labels, str(doc.get("sort") or ""))
    if "search" in doc:
        from .searchspec import parse_search
        sw.search = parse_search(doc["search"], str(path))
    if k:
        add_folds(sw, k, int(doc.get("fold_seed", 0)), origin=f"{path}: folds" if folds is None else "--folds",
                  repeats=r)
    elif r != 1:
        raise SpecError(f"{path}: repeats needs folds (repeated k-fold cross-validation)")
    return sw


def add_folds(sw: Sweep, k: int, seed: int = 0, origin: str = "--folds", repeats: int = 1) -> None:
    """k-fold cross-validation of the sweep's base: one more axis over the held-out fold (and one
    over the repeat when repeats > 1: repeat r shuffles with seed + r). A validation fraction in
    the base is replaced (each fold's held-out part is the validation set), and said so in
    `sw.notes`; a separate validation set cannot be combined and is refused."""
    if k < 2:
        raise SpecError(f"{origin}: folds must be at least 2, got {k}")
    if repeats < 1:
        raise SpecError(f"{origin}: repeats must be at least 1, got {repeats}")
    training = sw.base.training
    if sw.base.data.HasField("validation"):
        raise SpecError(f"{origin}: k-fold cross-validation holds out folds of data.train, and this job "
                        f"has a separate data.validation set: remove it to cross-validate")
    if training.HasField("validation_fraction"):
        sw.notes.append(f"{origin} {k} replaces training.validation_fraction {training.validation_fraction:g}: "
                        f"each job holds out one fold of data.train as its validation set")
        training.ClearField("validation_fraction")
    cv = sw.base.data.cross_validation
    cv.folds, cv.seed = k, seed
    sw.axes = [a for a in sw.axes if a[0] not in CV_FIELDS] + [(FOLD_FIELD, list(range(k)))]
    if repeats > 1:
        cv.repeats = repeats
        sw.axes.insert(len(sw.axes) - 1, (REPEAT_FIELD, list(range(repeats))))
    sw.folds, sw.repeats = k, repeats
