"""The five comparison shapes, their fixed-seed data and initial weights, and exact FLOP counts.

Every library in the comparison gets the same arrays: the parent process writes one `.npz`
per shape (x, one-hot or 0/1 targets y, integer labels, initial weights W as (units, inputs)
like torch's `Linear.weight`, biases b) and each peer's worker process loads it.

Legend: N = rows, B = batch rows, I = inputs of a layer, O = units (outputs) of a layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


@dataclass(frozen=True)
class Shape:
    """One benchmark configuration: architecture, loss, data size, batch, epochs, rate."""

    name: str
    sizes: tuple             # (inputs, hidden..., outputs)
    hidden: str              # hidden activation: "sigmoid" or "relu"
    output: str              # output activation: "sigmoid" or "softmax"
    loss: str                # fusetrain loss name: "half_sse" or "softmax_cross_entropy"
    rows: int
    batch: int               # rows per batch; == rows means full batch
    epochs: int
    learning_rate: float

    @property
    def weights(self) -> int:
        """W: number of weights (biases not counted)."""
        return sum(i * o for i, o in zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def first_weights(self) -> int:
        """W1: weights of the first layer, which needs no back-propagated gradient."""
        return self.sizes[0] * self.sizes[1]

    @property
    def flops_per_sample(self) -> int:
        """Training FLOPs per row: forward 2W, weight gradients 2W, input gradients 2(W - W1)."""
        return 6 * self.weights - 2 * self.first_weights

    @property
    def full_batch(self) -> bool:
        return self.batch >= self.rows

    def arch(self) -> str:
        return "-".join(str(s) for s in self.sizes)

    def scaled(self, quick: bool) -> "Shape":
        """The --quick variant: a tenth of the epochs (at least one) and at most 10,000 rows."""
        if not quick:
            return self
        rows = min(self.rows, 10_000)
        batch = rows if self.full_batch else self.batch
        return Shape(self.name, self.sizes, self.hidden, self.output, self.loss, rows, batch,
                     max(1, self.epochs // 10), self.learning_rate)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(weights=self.weights, flops_per_sample=self.flops_per_sample)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Shape":
        keys = cls.__dataclass_fields__
        d = {k: v for k, v in d.items() if k in keys}
        d["sizes"] = tuple(d["sizes"])
        return cls(**d)


SHAPES = {
    "tiny": Shape("tiny", (2, 2, 1), "sigmoid", "sigmoid", "half_sse", 4, 4, 10_000, 0.5),
    "small": Shape("small", (7, 5, 3), "sigmoid", "sigmoid", "half_sse", 210, 16, 500, 0.3),
    "medium": Shape("medium", (64, 128, 10), "relu", "softmax", "softmax_cross_entropy",
                    1797, 32, 50, 0.05),
    "large": Shape("large", (784, 512, 256, 10), "relu", "softmax", "softmax_cross_entropy",
                   60_000, 128, 2, 0.05),
    "wide": Shape("wide", (784, 2048, 10), "relu", "softmax", "softmax_cross_entropy",
                  20_000, 256, 1, 0.05),
}


def batch_sizes(shape: Shape) -> list[int]:
    """Rows of each batch in one epoch (the last one may be short)."""
    full, rest = divmod(shape.rows, shape.batch)
    return [shape.batch] * full + ([rest] if rest else [])


def _seeds_data() -> tuple[np.ndarray, np.ndarray] | None:
    path = SHARED_DATASETS / "seeds_dataset.csv"
    if not path.is_file():
        return None
    raw = np.loadtxt(path, delimiter=",")
    x = raw[:, :7]
    x = (x - x.min(0)) / (x.max(0) - x.min(0))
    return x, raw[:, 7].astype(np.int64) - 1


def make_data(shape: Shape, seed: int = 1234) -> dict:
    """x (N, I0), y (N, O) targets, labels (N,), and a note saying where the data came from.

    tiny is XOR itself; small is the UCI seeds data (min-max normalised) when
    ../shared/datasets is present; everything else is fixed-seed synthetic data with
    learnable labels (argmax of a random linear "teacher"), which is all speed needs.
    """
    rng = np.random.default_rng(seed)
    inputs, outputs = shape.sizes[0], shape.sizes[-1]
    note = "synthetic (fixed seed)"
    if shape.name == "tiny":
        x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
        labels = np.array([0, 1, 1, 0])
        note = "XOR"
    elif shape.name == "small" and shape.rows == 210 and (seeds := _seeds_data()) is not None:
        x, labels = seeds
        note = "UCI seeds (real)"
    else:
        x = rng.random((shape.rows, inputs))
        teacher = rng.standard_normal((inputs, max(outputs, 2)))
        scores = (x - 0.5) @ teacher
        labels = scores.argmax(1) if outputs > 1 else (scores[:, 0] > 0).astype(np.int64)
    x = x[: shape.rows].astype(np.float32)
    labels = labels[: shape.rows].astype(np.int64)
    if outputs == 1:
        y = labels.reshape(-1, 1).astype(np.float32)
    else:
        y = np.eye(outputs, dtype=np.float32)[labels]
    return {"x": np.ascontiguousarray(x), "y": y, "labels": labels, "note": note}


def initial_weights(shape: Shape, seed: int = 42) -> list[tuple[np.ndarray, np.ndarray]]:
    """Glorot-uniform weights W (O, I) and zero-mean small biases b (O,), float32."""
    rng = np.random.default_rng(seed)
    layers = []
    for fan_in, fan_out in zip(shape.sizes[:-1], shape.sizes[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)
        b = rng.uniform(-0.1, 0.1, fan_out).astype(np.float32)
        layers.append((w, b))
    return layers


def save(shape: Shape, path: Path) -> str:
    """Write the shape's data and initial weights to `path` (.npz); return the data note."""
    data = make_data(shape)
    arrays = {"x": data["x"], "y": data["y"], "labels": data["labels"]}
    for k, (w, b) in enumerate(initial_weights(shape)):
        arrays[f"W{k}"] = w
        arrays[f"b{k}"] = b
    np.savez(path, **arrays)
    return data["note"]


def load(path: Path) -> tuple[dict, list]:
    """(data dict with x, y, labels; [(W, b), ...]) from a file written by `save`."""
    with np.load(path) as f:
        data = {k: f[k] for k in ("x", "y", "labels")}
        layers = []
        k = 0
        while f"W{k}" in f:
            layers.append((f[f"W{k}"], f[f"b{k}"]))
            k += 1
    return data, layers


def _activate(z: np.ndarray, name: str) -> np.ndarray:
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "softmax":
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    raise ValueError(name)


def evaluate(shape: Shape, layers: list, x: np.ndarray, y: np.ndarray) -> dict:
    """Loss (the shape's own loss) and accuracy of trained weights, in float64 NumPy."""
    a = x.astype(np.float64)
    for k, (w, b) in enumerate(layers):
        act = shape.output if k == len(layers) - 1 else shape.hidden
        a = _activate(a @ np.asarray(w, np.float64).T + np.asarray(b, np.float64), act)
    y = y.astype(np.float64)
    if shape.loss == "half_sse":
        loss = 0.5 * ((a - y) ** 2).sum(1).mean()
    else:
        loss = -(y * np.log(np.clip(a, 1e-12, None))).sum(1).mean()
    if y.shape[1] == 1:
        acc = ((a[:, 0] > 0.5) == (y[:, 0] > 0.5)).mean()
    else:
        acc = (a.argmax(1) == y.argmax(1)).mean()
    return {"loss": float(loss), "accuracy": float(acc)}
