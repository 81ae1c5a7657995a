"""Whether compared runs were made the same way: prompt, decoding and max tokens.

`coverage`, `length`, `margin` and `report` call `setup_warnings`: a comparison of runs
sampled under different prompts or budgets says little about the checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence


def _known(v: Any) -> str:
    return "unknown" if v is None else str(v)


def prompt_label(m: dict) -> str:
    """The prompt a run used: an amir-bench template, or another harness's task prompts."""
    from amir_bench.prompts import TEMPLATES

    template = m.get("template")
    p = m.get("prompt") if isinstance(m.get("prompt"), dict) else {}
    tasks = p.get("tasks") if isinstance(p.get("tasks"), dict) else {}
    if template in TEMPLATES or not tasks:
        chat = {bool(s.get("chat_template")) for s in tasks.values() if isinstance(s, dict)}
        how = " (lm-eval without chat template)" if chat == {False} and template != "plain" \
            else ""
        return f"template {_known(template)}{how}"
    parts = []
    for t, s in sorted(tasks.items()):
        s = s if isinstance(s, dict) else {}
        parts.append(f"{t} v{_known(s.get('task_version'))} {_known(s.get('num_fewshot'))}-shot"
                     + (" chat" if s.get("chat_template") else ""))
    return f"{p.get('source', 'imported')} " + ", ".join(parts)


def decoding_label(m: dict) -> str:
    d = m.get("decoding") if isinstance(m.get("decoding"), dict) else {}
    if d.get("temperature") == 0:
        return "greedy"
    return ", ".join(f"{k} {_known(d.get(k))}" for k in ("temperature", "top_p", "top_k"))


def max_tokens_label(m: dict) -> str:
    d = m.get("decoding") if isinstance(m.get("decoding"), dict) else {}
    return _known(d.get("max_new_tokens"))


# what is compared -> how a manifest shows it
ASPECTS: dict[str, Callable[[dict], str]] = {
    "prompt": prompt_label,
    "decoding": decoding_label,
    "max tokens": max_tokens_label,
}


def setup_warnings(manifests: Sequence[dict], labels: Sequence[str]) -> list[str]:
    """One line per aspect (prompt, decoding, max tokens) in which the runs differ."""
    out = []
    for what, label in ASPECTS.items():
        vals = [label(m) for m in manifests]
        if len(set(vals)) > 1:
            out.append(f"runs differ in {what}: "
                       + "; ".join(f"{lab}: {v}" for lab, v in zip(labels, vals)))
    return out


def setup_warnings_for(run_dirs: Sequence[Path]) -> list[str]:
    """setup_warnings of run directories, labelled by folder name (or path when names clash)."""
    from amir_bench.records import read_manifest

    dirs = list(dict.fromkeys(Path(d) for d in run_dirs))
    names = [d.name for d in dirs]
    labels = names if len(set(names)) == len(names) else [str(d) for d in dirs]
    return setup_warnings([read_manifest(d) for d in dirs], labels)
