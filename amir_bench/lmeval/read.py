"""Reading lm-evaluation-harness 0.4.x `--log_samples` output, unedited.

`lm_eval --output_path DIR --log_samples` writes, per run, `DIR/<model>/results_<date>.json`
(model and its args, task configs, seeds, versions) and one `samples_<task>_<date>.jsonl` per
task: a line per (doc, filter) holding the doc, the raw outputs (`resps`, repeats included),
the exact prompt and gen_kwargs (`arguments`) and the task's per-doc metrics.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amir_bench.errors import UserError
from amir_bench.jsonio import iter_jsonl

SAMPLES_RE = re.compile(r"^samples_(?P<task>.+?)(?:_(?P<date>\d{4}-\d{2}-\d{2}T[0-9.\-]+))?"
                        r"\.jsonl$")
ID_FIELDS = ("id", "unique_id", "problem_id", "question_id", "idx")  # matched case-insensitively
TEXT_FIELDS = ("problem", "question", "input", "query")
# lm-eval task -> amir-bench benchmark where the names differ (`amir_<benchmark>` is ours)
TASK_BENCHMARKS: dict[str, str] = {
    "minerva_math500": "math500", "hendrycks_math500": "math500",
    "gsm8k_cot": "gsm8k", "gsm8k_cot_zeroshot": "gsm8k", "gsm8k_cot_llama": "gsm8k",
}
EXPORT_PREFIX = "amir_"
# per-doc metrics that average the verdicts of every sample (amir-bench's exported tasks)
MEAN_OF_SAMPLES = frozenset({"avg@n"})
# lm-eval's HF model default when neither the task nor the model args set max_gen_toks
DEFAULT_MAX_GEN_TOKS = 256
# settings recorded once per run, not per task, in the manifest's "lm_eval" entry
RUN_LEVEL = ("model", "model_args", "pretrained", "tokenizer", "seeds", "lm_eval_version")


@dataclass
class TaskFile:
    """One task's samples file and its run's results_*.json ({} when there is none)."""

    task: str
    path: Path
    results: dict
    results_path: Path | None

    @property
    def config(self) -> dict:
        c = (self.results.get("configs") or {}).get(self.task)
        return c if isinstance(c, dict) else {}


@dataclass
class LmSample:
    """One doc of one task under the chosen filter."""

    line: int
    doc_id: Any
    doc: dict
    outputs: list[str]
    prompt: str | None
    gen_kwargs: dict
    verdicts: list[bool | None]  # lm-eval's own verdict per output, where it has one
    verdict_source: str | None


def norm_text(text: Any) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------- files


def find_task_files(path: Path) -> list[TaskFile]:
    """The samples files of one lm-eval run: a samples file, or a whole --output_path folder."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(path.rglob("samples_*.jsonl"))
        if not files:
            raise UserError(f"{path}: no lm-eval samples_*.jsonl files (run lm_eval with "
                            f"--log_samples)")
    else:
        raise UserError(f"{path}: no such file or directory")
    parsed = []
    for f in files:
        m = SAMPLES_RE.match(f.name)
        parsed.append((f, m["task"] if m else None, m["date"] if m else None))
    runs = sorted({(str(f.parent), d or "") for f, _, d in parsed})
    if len(runs) > 1:
        shown = ", ".join(f"{Path(p).name}/{d or '?'}" for p, d in runs[:4])
        raise UserError(f"{path} holds {len(runs)} lm-eval runs ({shown}); pass one run's "
                        f"folder or samples file")
    out = []
    for f, task, date in parsed:
        results, rpath = _results_for(f, task, date)
        task = task or f.stem
        out.append(TaskFile(task, f, results, rpath))
    return out


def _results_for(samples: Path, task: str | None, date: str | None) -> tuple[dict, Path | None]:
    """The results_<date>.json written with a samples file (else the newest naming its task)."""
    same = samples.parent / f"results_{date}.json" if date else None
    candidates = [same] if same is not None and same.is_file() else \
        sorted(samples.parent.glob("results_*.json"), reverse=True)
    for c in candidates:
        try:
            data = json.loads(c.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{c}: not a readable lm-eval results file ({e})") from None
        if isinstance(data, dict) and (c == same or task in (data.get("configs") or {})):
            return data, c
    return {}, None


# ---------------------------------------------------------------- samples


def read_task(tf: TaskFile,
              filter_name: str | None) -> tuple[list[LmSample], str | None, list[str]]:
    """(samples under the chosen filter, that filter, every filter of the task): lm-eval
    writes one line per (doc, filter), each repeating the outputs; one filter is kept."""
    lines = list(iter_jsonl(tf.path))
    if not lines:
        raise UserError(f"{tf.path}: no lines")
    filters = [f["name"] for f in tf.config.get("filter_list") or []
               if isinstance(f, dict) and isinstance(f.get("name"), str)]
    for _, obj in lines:
        f = obj.get("filter") if isinstance(obj, dict) else None
        if isinstance(f, str) and f not in filters:
            filters.append(f)
    chosen = filter_name if filter_name in filters else (filters[0] if filters else None)
    out = []
    for i, obj in lines:
        if not isinstance(obj, dict):
            raise UserError(f"{tf.path}:{i}: expected a JSON object")
        if chosen is not None and obj.get("filter", chosen) != chosen:
            continue
        out.append(_sample(tf, i, obj, chosen))
    return out, chosen, filters


def _sample(tf: TaskFile, i: int, obj: dict, chosen: str | None) -> LmSample:
    where = f"{tf.path}:{i}"
    doc = obj.get("doc")
    if not isinstance(doc, dict):
        raise UserError(f"{where}: missing field 'doc'")
    resps = obj.get("resps")
    if not isinstance(resps, list) or not resps:
        raise UserError(f"{where}: missing field 'resps'")
    flat = [x for r in resps for x in (r if isinstance(r, list) else [r])]
    if not flat or not all(isinstance(x, str) for x in flat):
        raise UserError(f"{where}: 'resps' must hold strings")
    prompt, gen_kwargs = _arguments(obj.get("arguments"))
    verdicts, source = _verdicts(tf, obj, chosen, len(flat))
    return LmSample(i, obj.get("doc_id"), doc, flat, prompt, gen_kwargs, verdicts, source)


def _arguments(args: Any) -> tuple[str | None, dict]:
    """(prompt, gen_kwargs) of the doc's first request: {"gen_args_0": {"arg_0", "arg_1"}}
    as 0.4.x writes it, or the older [[context, gen_kwargs]]."""
    first: Any = None
    if isinstance(args, dict):
        g = args.get("gen_args_0")
        first = [g.get("arg_0"), g.get("arg_1")] if isinstance(g, dict) else None
    elif isinstance(args, list) and args and isinstance(args[0], list):
        first = args[0]
    if not first:
        return None, {}
    prompt = first[0] if isinstance(first[0], str) else None
    kwargs = first[1] if len(first) > 1 and isinstance(first[1], dict) else {}
    return prompt, kwargs


def _verdicts(tf: TaskFile, obj: dict, chosen: str | None, n: int) -> tuple[list, str | None]:
    """lm-eval's per-doc metric as per-output verdicts, where it judges known outputs: one
    output; a filter that keeps the first (sample 0); a 0/1 mean over all outputs (ours)."""
    names = [m.get("metric") for m in tf.config.get("metric_list") or [] if isinstance(m, dict)]
    names += [k for k in obj.get("metrics") or [] if k not in names]
    name = next((k for k in names if isinstance(k, str) and k in obj), None)
    value = obj.get(name) if name else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value not in (0, 1):
        return [None] * n, None
    ok = value == 1
    source = f"lm-eval:{tf.task}/{chosen or 'none'}/{name}"
    if n == 1 or name in MEAN_OF_SAMPLES:
        return [ok] * n, source
    if _takes_first(tf.config, chosen):
        return [ok] + [None] * (n - 1), source
    return [None] * n, None


def _takes_first(config: dict, chosen: str | None) -> bool:
    chains = {f.get("name"): f.get("filter") or [] for f in config.get("filter_list") or []
              if isinstance(f, dict)}
    if chosen not in chains:
        return chosen in (None, "none")  # lm-eval's default filter is take_first
    return any(isinstance(s, dict) and s.get("function") == "take_first" for s in chains[chosen])


# ---------------------------------------------------------------- problems


class ProblemMatcher:
    """Finds a benchmark problem for an lm-eval doc: by an id field, then by its text."""

    def __init__(self, problems: list):
        self.by_id = {p.id: p for p in problems}
        self.by_text = {norm_text(p.problem): p.id for p in problems}

    def match(self, doc: dict) -> str | None:
        low = {str(k).lower(): v for k, v in doc.items()}
        text = next((low[k] for k in TEXT_FIELDS if isinstance(low.get(k), str)), None)
        for k in ID_FIELDS:
            p = self.by_id.get(str(low[k])) if low.get(k) is not None else None
            if p is not None and (text is None or norm_text(text) == norm_text(p.problem)):
                return p.id
        return self.by_text.get(norm_text(text)) if text is not None else None


def task_benchmark(task: str, config: dict, registry: Any) -> str | None:
    """The benchmark a task evaluates: ours (`amir_<b>`, metadata), a known alias, or its name."""
    meta = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    if meta.get("amir_benchmark") in registry:
        return meta["amir_benchmark"]
    if task.startswith(EXPORT_PREFIX) and task[len(EXPORT_PREFIX):] in registry:
        return task[len(EXPORT_PREFIX):]
    return TASK_BENCHMARKS.get(task) or (task if task in registry else None)


def map_benchmarks(files: list[TaskFile], option: str | None, registry: Any) -> dict[str, str]:
    """task -> benchmark from `--benchmark B` (one task), `task=B,…`, or the task's name."""
    tasks = [tf.task for tf in files]
    explicit: dict[str, str] = {}
    for part in [x.strip() for x in (option or "").split(",") if x.strip()]:
        if "=" in part:
            t, b = (x.strip() for x in part.split("=", 1))
            if t not in tasks:
                raise UserError(f"--benchmark {part}: no task {t!r} here (tasks: "
                                f"{', '.join(tasks)})")
            explicit[t] = b
        elif len(tasks) == 1:
            explicit[tasks[0]] = part
        else:
            raise UserError(f"--benchmark {part}: {len(tasks)} tasks here ({', '.join(tasks)}); "
                            f"map each as TASK=BENCHMARK")
    out = {}
    for tf in files:
        b = explicit.get(tf.task) or task_benchmark(tf.task, tf.config, registry)
        if b is None:
            raise UserError(f"lm-eval task {tf.task!r} maps to no benchmark; pass --benchmark "
                            f"{tf.task}=NAME (see `amir-bench benchmarks`)")
        out[tf.task] = b
    return out


# ---------------------------------------------------------------- settings


def parse_model_args(raw: Any) -> dict:
    """lm-eval's model_args: 'k=v,k2=v2' or a dict."""
    if isinstance(raw, dict):
        return {str(k): v for k, v in raw.items()}
    out = {}
    for part in str(raw or "").split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def task_settings(tf: TaskFile, samples: list[LmSample]) -> dict:
    """How lm-eval made this task's samples: model, decoding, seeds, versions, prompt setup."""
    r, tc = tf.results, tf.config
    cfg = r.get("config") if isinstance(r.get("config"), dict) else {}
    gen = dict(tc.get("generation_kwargs") or {})
    if samples and samples[0].gen_kwargs:
        gen = dict(samples[0].gen_kwargs)  # what the request really carried
    margs = parse_model_args(cfg.get("model_args"))
    cap = gen.get("max_gen_toks") or gen.get("max_new_tokens") or margs.get("max_gen_toks") \
        or (DEFAULT_MAX_GEN_TOKS if r else None)
    sample_on = bool(gen.get("do_sample"))
    meta = tc.get("metadata") if isinstance(tc.get("metadata"), dict) else {}
    return {
        "model": cfg.get("model"), "model_args": cfg.get("model_args"),
        "pretrained": margs.get("pretrained"), "tokenizer": margs.get("tokenizer"),
        "max_gen_toks": int(cap) if cap is not None else None,
        "temperature": float(gen.get("temperature", 1.0)) if sample_on else 0.0,
        "top_p": gen.get("top_p"), "top_k": gen.get("top_k"), "gen_kwargs": gen,
        "seeds": {k: cfg.get(k) for k in ("random_seed", "numpy_seed", "torch_seed",
                                          "fewshot_seed") if k in cfg},
        "repeats": tc.get("repeats"),
        "num_fewshot": (r.get("n-shot") or {}).get(tf.task, tc.get("num_fewshot")),
        "task_version": (r.get("versions") or {}).get(tf.task, meta.get("version")),
        "lm_eval_version": r.get("lm_eval_version"),
        "chat_template": bool(r.get("chat_template")),
        "system_instruction": r.get("system_instruction"),
        "doc_to_text": str(tc.get("doc_to_text")) if tc.get("doc_to_text") is not None else None,
        "amir_template": meta.get("amir_template"),
        "results_file": str(tf.results_path) if tf.results_path else None,
        "samples_file": str(tf.path),
    }


# ---------------------------------------------------------------- import


def read_lm_eval(req: Any, problems: Any) -> Any:
    """ImportSource of an lm-eval run: one row per (problem, repeat) of each task, under one
    filter; model, decoding, seeds and versions from results_*.json into the manifest."""
    from amir_bench.importer import ImportRow, ImportSource
    from benchmarks.specs import REGISTRY

    files = find_task_files(Path(req.path))
    mapping = map_benchmarks(files, req.benchmark, REGISTRY)
    dirs = {(tf.config.get("metadata") or {}).get("amir_data_dir") for tf in files}
    if problems.data_dir is None and len(dirs) == 1 and None not in dirs:
        from benchmarks.loaders import resolve_data_dir

        if resolve_data_dir(None) is None:  # tasks we exported name the data they read
            problems.data_dir = dirs.pop()
    parsed = {tf.task: read_task(tf, req.filter_name) for tf in files}
    if req.filter_name and not any(req.filter_name in p[2] for p in parsed.values()):
        raise UserError(f"--filter {req.filter_name}: no task here has that filter")
    rows, notes, settings, skipped = [], [], {}, 0
    for tf in files:
        bench = mapping[tf.task]
        spec, probs = problems(bench)
        matcher = ProblemMatcher(probs)
        samples, chosen, filters = parsed[tf.task]
        st = settings[tf.task] = dict(task_settings(tf, samples), benchmark=spec.name,
                                      filter=chosen)
        for s in samples:
            pid = matcher.match(s.doc)
            if pid is None:
                if req.skip_unmatched:
                    skipped += 1
                    continue
                raise UserError(f"{tf.path}:{s.line}: doc {s.doc_id!r} matches no {spec.name} "
                                f"problem (by id or text); pass --skip-unmatched to leave it out")
            rows += [ImportRow(f"{tf.path}:{s.line}", spec.name, pid, k, text, prompt=s.prompt,
                               ref_correct=s.verdicts[k],
                               ref_source=s.verdict_source if s.verdicts[k] is not None else None,
                               max_tokens=st["max_gen_toks"])
                     for k, text in enumerate(s.outputs)]
        of = f" (of {', '.join(filters)})" if len(filters) > 1 else ""
        notes.append(f"{tf.task} → {spec.name}: filter {chosen or 'none'}{of}, "
                     f"{len(samples)} docs, max_gen_toks {st['max_gen_toks']}, "
                     f"model {st['model'] or '?'} {st['pretrained'] or ''}".rstrip())
    if skipped:
        notes.append(f"skipped {skipped} doc(s) that match no problem (--skip-unmatched)")
    return ImportSource(rows, notes=notes, skipped=skipped, **run_fields(req, files, settings))


def run_fields(req: Any, files: list[TaskFile], settings: dict[str, dict]) -> dict:
    """checkpoint, backend, decoding, template, tokenizer and provenance of the run."""
    from amir_bench.runstore import checkpoint_hash

    def common(key: str) -> Any:
        vals = {json.dumps(s.get(key), sort_keys=True) for s in settings.values()}
        return next(iter(settings.values())).get(key) if len(vals) == 1 else None

    pretrained = common("pretrained")
    local = pretrained and Path(str(pretrained)).expanduser().is_dir()
    tok = common("tokenizer") or (pretrained if local else None)
    if pretrained:
        checkpoint, sha = str(pretrained), checkpoint_hash(pretrained) if local else None
    else:
        checkpoint = f"import:{req.path}"
        sha = hashlib.sha256(b"".join(tf.path.read_bytes() for tf in files)).hexdigest()
    templates = {s.get("amir_template") for s in settings.values()}
    template = req.template or (templates.pop() if len(templates) == 1 and None not in templates
                                else "lm-eval:" + "+".join(settings))
    prompt = {t: {k: s[k] for k in ("task_version", "num_fewshot", "chat_template",
                                    "system_instruction", "doc_to_text")}
              for t, s in settings.items()}
    return {
        "checkpoint": checkpoint, "checkpoint_sha256": sha,
        "backend": f"lm-eval:{common('model') or '?'}",
        "decoding": {"temperature": common("temperature"), "top_p": common("top_p"),
                     "top_k": common("top_k"), "max_new_tokens": common("max_gen_toks"),
                     "seed": (common("seeds") or {}).get("torch_seed")},
        "template": template, "tokenizer": str(tok) if tok else None,
        "extra": {"prompt": {"source": "lm-eval", "per_sample": True, "tasks": prompt},
                  "lm_eval": {"version": common("lm_eval_version"),
                              "model": common("model"), "model_args": common("model_args"),
                              "seeds": common("seeds"),
                              "tasks": {t: {k: v for k, v in s.items() if k not in RUN_LEVEL}
                                        for t, s in settings.items()}}},
    }
