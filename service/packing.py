"""Which queued jobs train together and how many at once: a task's pack key and a pack's size.

Small jobs of one batch (a sweep's seeds, a grid's learning rates) pay more for being a task each
(scheduling, shipping, one result message: 20-30 ms a job on Ray) than for their training. Jobs
with the same pack key can train as one engine.ManyRun (packfn.run_pack): one architecture, one
data set, the same epochs, threads, class weights, owner and priority; no validation, early
stopping, plateau schedule, search or checkpoint to resume from.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Optional

from fusetrain.v1 import job_pb2

from . import executor as ex

# A job's training time, estimated: rows x epochs x (SAMPLE_NS + PARAM_NS x parameters) ns, fitted
# to the engine on one core here (ns a row, SGD / Adam, batch 16): 4-8-3 (67 parameters) 250 /
# 271, 13-16-3 (275) 175 / 213, 64-32-10 (2,410) 303 / 397, 100-64-10 (7,114) 563 / 809,
# 784-256-10 (203,530) 11,064 / 19,038; the seeds' 7-5-3 with SGD runs its generated loop at 94.
# An estimate only chooses packs: a pack times its own steps.
SAMPLE_NS = 150.0
PARAM_NS = 0.08
# Default work of one pack, in estimated seconds (`fusetrain serve --pack-seconds`): the
# 1,000-job seeds sweep on Ray ran fastest at 0.5 s (docs/SCALING.md); a job estimated over half
# of it trains alone.
PACK_SECONDS = 0.5


def estimate_seconds(task: ex.Task) -> float:
    """The task's training time, estimated (inf when its row count is not known)."""
    job = task.job
    if job is None or job.rows <= 0:
        return math.inf
    return job.rows * job.config.epochs * (SAMPLE_NS + PARAM_NS * job.model.parameter_count()) * 1e-9


def pack_key(task: ex.Task) -> Optional[tuple]:
    """What a task must share with others to train in one pack; None: it trains alone."""
    job = task.job
    if job is None or task.resume_from or task.resume_state is not None:
        return None
    conf = job.config
    if conf.validation_fraction > 0 or conf.early_stopping is not None or job.optimizer.schedule.kind == "plateau":
        return None
    spec = job_pb2.JobSpec.FromString(task.spec)
    if spec.HasField("search") or spec.data.HasField("validation") or spec.data.HasField("cross_validation"):
        return None
    return (task.owner, task.priority, task.threads, task.data_dir, task.spec_data_sha,
            spec.data.SerializeToString(deterministic=True),
            spec.model.normalization.SerializeToString(deterministic=True),
            repr(replace(job.model, seed=0)), conf.epochs, repr(conf.class_weight))


def pack_size(seconds_each: float, same: int, cpus: float, pack_seconds: float) -> int:
    """How many of `same` queued jobs of one key (each estimated at `seconds_each`) to pack into
    the next task: about `pack_seconds` of work, and no more than an equal share per CPU, so every
    CPU gets a pack. 1: the job trains alone."""
    if pack_seconds <= 0 or same < 2 or not seconds_each * 2 <= pack_seconds:
        return 1
    share = math.ceil(same / max(1, int(cpus)))
    return max(1, min(same, share, int(pack_seconds / max(seconds_each, 1e-6))))
