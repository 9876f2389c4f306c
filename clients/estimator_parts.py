"""What the scikit-learn estimators (estimators.py) hand to fusetrain: the engine's model, the
job in its JSON form for a server, and a numpy forward pass for predictions after a server fit."""

from __future__ import annotations

import numpy as np

# The optimizer fields a job may carry for each kind (the service refuses the others).
OPTIMIZER_FIELDS = {"sgd": (), "momentum": ("momentum",), "nesterov": ("momentum",),
                    "adam": ("beta1", "beta2", "epsilon"), "adamw": ("beta1", "beta2", "epsilon"),
                    "rmsprop": ("rho", "epsilon")}
OPTIMIZER_OWN = ("momentum", "beta1", "beta2", "rho", "epsilon")

def engine_model(engine, plan: dict):
    layers = [engine.LayerSpec(units=units, activation=act, leaky_slope=plan["leaky_slope"])
              for units, act in plan["layers"]]
    return engine.ModelSpec(inputs=plan["inputs"], layers=layers, loss=plan["loss"],
                            initializer=plan["initializer"], seed=plan["seed"], dtype=plan["dtype"])


def schedule_fields(plan: dict) -> dict:
    """The schedule: its kind; "plateau" watches the training loss (no rows are held out for it)."""
    return {"kind": plan["schedule"]} | ({"monitor": "train_loss"} if plan["schedule"] == "plateau" else {})


def job_spec(plan: dict, name: str) -> dict:
    """The job in its JSON form (a job file's fields), without data."""
    t = plan["training"]
    training = {"epochs": t["epochs"], "batch_size": t["batch_size"], "shuffle": t["shuffle"], "seed": t["seed"]}
    if t["validation_fraction"]:
        training["validation_fraction"] = t["validation_fraction"]
    if plan["early_stopping"] is not None:
        training["early_stopping"] = dict(plan["early_stopping"])
    if plan["threads"] is not None:
        training["threads"] = plan["threads"]
    return {
        "name": name, "labels": {"client": "scikit-learn"},
        "model": {"inputs": plan["inputs"],
                  "layers": [{"units": units, "activation": act,
                              **({"leaky_slope": plan["leaky_slope"]} if act == "leaky_relu" else {})}
                             for units, act in plan["layers"]],
                  "loss": plan["loss"], "initializer": plan["initializer"], "seed": plan["seed"],
                  "dtype": plan["dtype"]},
        "optimizer": {**{k: v for k, v in plan["optimizer"].items()
                         if k not in OPTIMIZER_OWN or k in OPTIMIZER_FIELDS[plan["optimizer"]["kind"]]},
                      "schedule": schedule_fields(plan)},
        "training": training,
    }


def numpy_forward(weights, arch, X) -> np.ndarray:
    """The model's outputs in float64 with numpy (after a server fit: no numba needed)."""
    a = np.asarray(X, dtype=np.float64)
    for (w, b), (act, slope) in zip(weights, arch):
        z = a @ np.asarray(w, dtype=np.float64).T + np.asarray(b, dtype=np.float64)
        if act == "sigmoid":
            a = 0.5 * (1.0 + np.tanh(0.5 * z))       # 1 / (1 + e^-z) without overflow
        elif act == "tanh":
            a = np.tanh(z)
        elif act == "relu":
            a = np.maximum(z, 0.0)
        elif act == "leaky_relu":
            a = np.where(z >= 0, z, slope * z)
        elif act == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            a = e / e.sum(axis=1, keepdims=True)
        else:
            a = z
    return a
