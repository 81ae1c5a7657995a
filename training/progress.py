"""A compact training progress bar (step, reward, AMIR pairs, λ, loss) for `train` and the demo.

It replaces the trainer's per-step dict print; every logged value still goes to metrics.jsonl
and to TRL's `report_to` integrations.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

# (label, logged key, format): what the bar shows after the step counter, when logged
SHOWN = (("reward", "reward", "{:.3f}"), ("pairs", "amir/pairs", "{:.1f}"),
         ("λ", "amir/lambda", "{:.3g}"), ("loss", "loss", "{:.4f}"))


def status_text(logs: dict[str, Any]) -> str:
    """`reward 0.412  pairs 12.0  λ 0.05  loss 0.0123` from one logging step (missing: left out)."""
    parts = []
    for label, key, fmt in SHOWN:
        v = logs.get(key)
        if isinstance(v, (int, float)):
            parts.append(f"{label} {fmt.format(v)}")
    return "  ".join(parts)


class TrainProgress(TrainerCallback):
    """A rich progress bar over optimizer steps, with the latest logged metrics beside it."""

    def __init__(self, label: str = "train", enabled: bool = True):
        self.label = label
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None

    def on_train_begin(self, args, state, control, **kw):
        if not (self.enabled and state.is_world_process_zero):
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        self._bar = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TimeRemainingColumn(),
                             TextColumn("{task.fields[status]}"))
        self._bar.start()
        self._task = self._bar.add_task("", total=state.max_steps, completed=state.global_step,
                                        status="")

    def on_step_end(self, args, state, control, **kw):
        if self._bar is not None:
            self._bar.update(self._task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kw):
        if self._bar is not None and logs:
            self._bar.update(self._task, status=status_text(logs))

    def on_train_end(self, args, state, control, **kw):
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
