"""Live progress bars (rich, on stderr): one job's epochs, or a whole batch.

    epoch 120/500 ━━━━━━━━━╸━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ loss 0.0831 acc 97.5% val 96.7%  81.2k samples/s 0:00:01 0:00:03

Imported only when a bar is wanted; rich is a dependency of the command line.
"""

from __future__ import annotations

from typing import Optional


def _console(console=None):
    from rich.console import Console
    import sys
    return console or Console(stderr=True, width=None if sys.stderr.isatty() else 150)


def _pct(value: Optional[float]) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def _rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.1f}M samples/s"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k samples/s"
    return f"{value:.0f} samples/s"


def epoch_stats(e) -> str:
    """loss, accuracy, validation accuracy and speed of an EpochEvent (or a latest-metrics dict)."""
    get = e.get if isinstance(e, dict) else (lambda k: getattr(e, k, None))
    parts = [f"loss {get('train_loss'):.4g}"]
    if get("train_accuracy") is not None:
        parts.append(f"acc {_pct(get('train_accuracy'))}")
    if get("val_loss") is not None:
        parts.append(f"val_loss {get('val_loss'):.4g}")
    if get("val_accuracy") is not None:
        parts.append(f"val_acc {_pct(get('val_accuracy'))}")
    if get("val_macro_f1") is not None:
        parts.append(f"val_f1 {_pct(get('val_macro_f1'))}")
    for key in ("val_rmse", "val_r2"):
        if get(key) is not None:
            parts.append(f"{key} {get(key):.4g}")
    if get("samples_per_second"):
        parts.append(_rate(get("samples_per_second")))
    return "  ".join(parts)


class JobProgress:
    """A bar over one job's epochs; call it with every watch event, then close()."""

    def __init__(self, name: str = "", total: Optional[int] = None, console=None):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), TextColumn("epoch {task.completed:.0f}/{task.total:.0f}"),
            BarColumn(bar_width=20), TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
            TimeRemainingColumn(), console=_console(console), transient=False)
        self.progress.start()
        self.task = self.progress.add_task(name or "training", total=total or 1, stats="queued")
        self.total = total

    def __call__(self, event) -> None:
        from .types import EpochEvent

        if isinstance(event, EpochEvent):
            self.progress.update(self.task, completed=event.epoch, stats=epoch_stats(event))
        elif event.state in ("QUEUED", "RUNNING", "CANCELLING") and not self.progress.tasks[0].completed:
            self.progress.update(self.task, stats=event.state.lower())
        elif event.terminal and event.state != "SUCCEEDED":
            self.progress.update(self.task, stats=f"{self.progress.tasks[0].fields['stats']}  {event.state}")

    def set_total(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def close(self) -> None:
        self.progress.stop()


class BatchProgress:
    """One bar over every epoch of a batch's jobs, with counts of finished and failed jobs."""

    def __init__(self, name: str = "sweep", console=None):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=30),
            TextColumn("{task.fields[jobs]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=_console(console))
        self.progress.start()
        self.task = self.progress.add_task(name, total=1, jobs="")

    def update(self, jobs: list) -> None:
        total = sum(max(j.epochs_total, 1) for j in jobs) or 1
        done = sum(max(j.epochs_total, 1) if j.done else j.epochs_done for j in jobs)
        finished = sum(j.done for j in jobs)
        failed = sum(j.state in ("FAILED", "CANCELLED") for j in jobs)
        running = sum(j.state == "RUNNING" for j in jobs)
        text = f"{finished}/{len(jobs)} jobs done, {running} running" + (f", {failed} failed" if failed else "")
        self.progress.update(self.task, total=total, completed=done, jobs=text)

    def close(self) -> None:
        self.progress.stop()
