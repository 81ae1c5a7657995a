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


def quiet_libraries() -> None:
    """Silence library output that asks nothing of the user: deprecation notices raised inside
    transformers/TRL/PEFT, and the weight loading/writing progress bars."""
    import warnings

    from transformers.utils import logging as hf_logging

    for mod in ("transformers", "trl", "peft", "accelerate", "torch"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=mod)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=mod)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


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
        text = status_text(logs or {})
        if self._bar is not None and text:  # the closing summary log carries none of these
            self._bar.update(self._task, status=text)

    def on_train_end(self, args, state, control, **kw):
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
