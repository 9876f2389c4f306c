"""`make demo` (python examples/demo.py): start a service, train XOR and a seeds sweep through it
over gRPC with the generated stubs, then stop it."""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from google.protobuf import json_format, struct_pb2

from fusetrain.v1 import job_pb2, service_pb2 as pb, service_pb2_grpc
from fusetrain.wire.tensors import array_to_tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from helpers import ServerProcess  # noqa: E402  -- starts `fusetrain serve`, waits for SERVING

SEEDS = ROOT.parent / "shared" / "datasets" / "seeds_dataset.csv"


def _events(stub, job_id):
    for message in stub.WatchJob(pb.WatchJobRequest(job_id=job_id)):
        yield from message.events


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data")
        print(f"started fusetrain serve; healthy after {server.wait_healthy():.1f} s on {server.address}")
        channel = grpc.insecure_channel(server.address)
        stub = service_pb2_grpc.TrainingServiceStub(channel)
        try:
            info = stub.GetServerInfo(pb.GetServerInfoRequest())
            print(f"server {info.version}: {info.workers} workers x {info.threads_per_worker} thread(s); "
                  f"optimizers {', '.join(info.optimizers)}")

            spec = json_format.Parse((ROOT / "examples" / "jobs" / "xor.json").read_text(), job_pb2.JobSpec())
            t0 = time.perf_counter()
            job = stub.SubmitJob(pb.SubmitJobRequest(spec=spec))
            for event in _events(stub, job.id):
                if event.HasField("state"):
                    print(f"  xor {job.id}: {pb.JobState.Name(event.state.state)}")
                elif event.epoch.epoch % 100 == 0:
                    print(f"    epoch {event.epoch.epoch}: loss {event.epoch.train_loss:.4f}")
            r = stub.GetResult(pb.GetResultRequest(job_id=job.id))
            print(f"  xor trained in {r.timings.train_seconds * 1e3:.1f} ms (round trip "
                  f"{(time.perf_counter() - t0) * 1e3:.0f} ms); accuracy {r.final.train_accuracy:.2f}")
            x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
            y = stub.Predict(pb.PredictRequest(job_id=job.id, x=array_to_tensor(x))).y
            out = ', '.join(f'{v:.3f}' for v in np.frombuffer(y.data, '<f4'))
            print(f"  predict {x.astype(int).tolist()} -> [{out}]")

            if SEEDS.exists():
                raw = np.loadtxt(SEEDS, delimiter=",")
                xs = raw[:, :7]
                xs = ((xs - xs.min(0)) / (xs.max(0) - xs.min(0))).astype(np.float32)
                ys = np.eye(3, dtype=np.float32)[raw[:, 7].astype(int) - 1]
                buf = io.BytesIO()
                np.savez(buf, x=xs, y=ys)
                data = buf.getvalue()
                ds = stub.UploadDataset(iter([pb.UploadDatasetRequest(name="seeds", chunk=data)]))
                base = json_format.ParseDict({
                    "model": {"inputs": 7, "layers": [{"units": 5, "activation": "sigmoid"},
                                                      {"units": 3, "activation": "sigmoid"}]},
                    "optimizer": {"kind": "sgd", "learning_rate": 0.3},
                    "training": {"epochs": 500, "batch_size": 1, "validation_fraction": 0.2},
                    "data": {"train": {"dataset_id": ds.id}}}, job_pb2.JobSpec())
                grid = [pb.GridAxis(field="model.seed", values=[struct_pb2.Value(number_value=s) for s in range(10)])]
                t0 = time.perf_counter()
                batch = stub.SubmitJobs(pb.SubmitJobsRequest(base=base, grid=grid, labels={"demo": "seeds"}))
                accs = []
                for j in batch.jobs:
                    for _ in _events(stub, j.id):
                        pass
                    accs.append(stub.GetResult(pb.GetResultRequest(job_id=j.id)).final.val_accuracy)
                print(f"  seeds sweep: 10 seeds of 7-5-3, online SGD, 500 epochs in "
                      f"{time.perf_counter() - t0:.1f} s; validation accuracy mean {np.mean(accs):.3f} "
                      f"(min {min(accs):.3f}, max {max(accs):.3f})")
            else:
                print(f"  (seeds sweep skipped: {SEEDS} is absent)")
        finally:
            channel.close()
            code = server.stop()
        print(f"stopped the server (exit code {code})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
