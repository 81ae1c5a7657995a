"""`amir-bench score`: teacher-forced log-probs of a run's samples, written to scores.jsonl.

By default the run's own checkpoint scores its samples; any other checkpoint cross-scores
them. Scores are appended per batch and the command resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amir_bench.errors import UserError
from amir_bench.jsonio import JsonlAppender, iter_jsonl, truncate_partial_tail
from amir_bench.records import SCORES, ScoreRecord, load_run


def run_problems(manifest: dict, data_dir: str | None) -> dict[tuple[str, str], Any]:
    """(benchmark, problem id) -> (spec, Problem) for the problems a run evaluated; the rows
    must hash to the manifest's sha256 (the same data the run saw)."""
    from benchmarks.loaders import load_problems, rows_sha256
    from benchmarks.specs import get_spec

    out: dict[tuple[str, str], Any] = {}
    for name, entry in manifest.get("benchmarks", {}).items():
        spec = get_spec(name)
        src = str(entry.get("source", ""))
        root = data_dir
        if not root and not src.startswith(("hf:", "builtin:")) and Path(src).exists():
            root = str(Path(src).parent)
        probs = {p.id: p for p in load_problems(name, data_dir=root)}
        ids = [str(i) for i in entry.get("problem_ids", [])]
        missing = [i for i in ids if i not in probs]
        if missing:
            raise UserError(f"{name}: the benchmark rows no longer contain problem "
                            f"{missing[0]!r} (pass --data-dir with the data the run used)")
        if len(ids) == entry.get("count") and entry.get("sha256") and \
                rows_sha256([probs[i] for i in ids]) != entry["sha256"]:
            raise UserError(f"{name}: benchmark rows differ from the run's (sha256 mismatch); "
                            f"pass --data-dir with the data the run used")
        for i in ids:
            out[(name, i)] = (spec, probs[i])
    return out


def score_run(run_dir: Path, ckpt: str | None = None, backend: str = "hf",
              batch_size: int | None = None, data_dir: str | None = None,
              template: str | None = None, console: Any = None,
              backend_kwargs: dict | None = None) -> dict:
    """Score every sample of a run that has no score yet; returns counts."""
    from amir_bench.backends import make_backend
    from amir_bench.evaluate import progress_bar
    from amir_bench.prompts import problem_prompt

    run = load_run(run_dir)
    scorer = ckpt or run.manifest.get("checkpoint", {}).get("path")
    if not scorer or str(scorer).startswith("import:"):
        raise UserError(f"{run_dir}: the run records no checkpoint; pass --ckpt PATH")
    own = {r.key: r.prompt for r in run.samples if r.prompt is not None and template is None}
    template = template or run.manifest.get("template") or "boxed"
    if len(own) < len(run.samples):
        from amir_bench.prompts import get_template
        get_template(template)  # the prompts are built from it: fail before the model loads
    spath = Path(run_dir) / SCORES
    done: set = set()
    if spath.exists():
        truncate_partial_tail(spath)
        for i, obj in iter_jsonl(spath):
            if obj.get("scorer") != str(scorer):
                raise UserError(f"{spath}:{i}: scored by {obj.get('scorer')!r}, not {scorer!r}; "
                                f"move the file away to score with another checkpoint")
            done.add((obj["benchmark"], str(obj["problem_id"]), int(obj["sample_idx"])))
    todo = [r for r in run.samples if r.key not in done]
    if not todo:
        return {"scored": 0, "already": len(done)}
    problems = run_problems(run.manifest, data_dir)
    be = make_backend(backend, str(scorer), **({"batch_size": batch_size} if batch_size else {}),
                      **(backend_kwargs or {}))
    tok = getattr(be, "tokenizer", None)
    prompts: dict[tuple[str, str], str] = {}
    chunk = max(1, batch_size or 64)
    with JsonlAppender(spath) as sink, progress_bar(console) as progress:
        task = progress.add_task("score", total=len(todo))
        for k in range(0, len(todo), chunk):
            part = todo[k:k + chunk]
            ps = []
            for r in part:
                pk = (r.benchmark, r.problem_id)
                if r.key not in own and pk not in prompts:
                    spec, prob = problems[pk]
                    prompts[pk] = problem_prompt(prob, spec, template, tok)
                ps.append(own[r.key] if r.key in own else prompts[pk])  # an import keeps its own
            lps = be.score(ps, [r.completion for r in part], batch_size)
            sink.write_many(
                ScoreRecord(benchmark=r.benchmark, problem_id=r.problem_id,
                            sample_idx=r.sample_idx, logprob_sum=float(sum(lp)),
                            logprob_mean=float(sum(lp) / len(lp)) if lp else 0.0,
                            num_tokens=len(lp), scorer=str(scorer))
                for r, lp in zip(part, lps))
            progress.advance(task, len(part))
    be.close()
    return {"scored": len(todo), "already": len(done)}
