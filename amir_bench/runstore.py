"""Run directories: manifests, comparison for --resume, summaries, shard merging."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Sequence

from amir_bench import __version__
from amir_bench.errors import UserError
from amir_bench.metrics import summarize_frame
from amir_bench.runlock import has_content
from amir_bench.jsonio import atomic_write_json, atomic_write_jsonl, truncate_partial_tail
from amir_bench.records import (MANIFEST, SAMPLES, SUMMARY, Run, SampleRecord, dedupe, load_run,
                                read_manifest, read_samples)

# Manifest keys that define what a run computes; the rest is provenance.
CONFIG_KEYS = ("checkpoint", "backend", "decoding", "template", "benchmarks", "shard")
VERSIONED_PACKAGES = ("torch", "transformers", "tokenizers", "accelerate", "peft", "trl",
                      "math-verify", "vllm")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def checkpoint_hash(path: str | os.PathLike) -> str | None:
    """sha256 over the checkpoint folder's files (names, sizes and bytes); None for Hub ids."""
    p = Path(path)
    if not p.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        rel = f.relative_to(p).as_posix()
        if rel.startswith(".") or "/." in rel or rel.startswith(("checkpoint-", "runs/")):
            continue  # trainer checkpoints and hidden caches are not the model
        h.update(rel.encode() + b"\0" + str(f.stat().st_size).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(8 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def new_manifest(*, checkpoint: str, checkpoint_sha256: str | None, backend: str,
                 decoding: dict, template: str, benchmarks: dict, shard: str = "0/1",
                 extra: dict | None = None) -> dict:
    m = {
        "checkpoint": {"path": str(checkpoint), "sha256": checkpoint_sha256},
        "backend": backend,
        "decoding": decoding,
        "template": template,
        "benchmarks": benchmarks,
        "shard": shard,
        "package_versions": package_versions(),
        "amir_bench_version": __version__,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if extra:
        m.update(extra)
    return m


def differing_keys(manifests: Sequence[dict], keys: Sequence[str],
                   skip: Sequence[str] = ()) -> list[str]:
    """Dotted keys under `keys` whose values are not the same in every manifest (nested dicts
    are walked; keys named in `skip` are ignored at any depth)."""
    diffs: list[str] = []

    def walk(vals: list, prefix: str) -> None:
        if all(isinstance(v, dict) for v in vals):
            for k in sorted(set().union(*vals)):
                if k not in skip:
                    walk([v.get(k) for v in vals], f"{prefix}.{k}")
        elif any(v != vals[0] for v in vals[1:]):
            diffs.append(prefix)

    for key in keys:
        walk([m.get(key) for m in manifests], key)
    return diffs


def diff_config(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ between two manifests' configuration parts."""
    return differing_keys([old, new], CONFIG_KEYS)


def open_run_dir(out: Path, manifest: dict, resume: bool) -> list[SampleRecord]:
    """Check `out` can hold this run; returns the records already written (resume point).

    Without --resume an existing run is never touched; with --resume the configuration
    must match exactly (differing keys are listed) and a truncated last line is dropped.
    Writes nothing for a new run: `init_run_dir` does, once the model has loaded.
    """
    out = Path(out)
    if (out / MANIFEST).exists():
        old = read_manifest(out)
        diffs = diff_config(old, manifest)
        if not resume:
            if diffs:
                raise UserError(f"{out} holds a run with a different manifest "
                                f"({', '.join(diffs[:6])}); choose another --out")
            raise UserError(f"{out} already holds this run; pass --resume to continue it")
        if diffs:
            raise UserError(f"--resume with a changed configuration: {', '.join(diffs[:8])}")
        truncate_partial_tail(out / SAMPLES)
        records = read_samples(out / SAMPLES) if (out / SAMPLES).exists() else []
        return dedupe(records)[0]
    if has_content(out):
        raise UserError(f"{out} exists and is not a run directory; choose another --out")
    return []


def init_run_dir(out: Path, manifest: dict) -> None:
    """Write the manifest of a new run (an existing, matching one is kept as it is)."""
    out = Path(out)
    if not (out / MANIFEST).exists():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / MANIFEST, manifest)


def write_summary(run_dir: Path, records: Sequence[SampleRecord] | None = None,
                  manifest: dict | None = None) -> dict:
    """summary.json, derived only from samples.jsonl + manifest (recomputable any time)."""
    run_dir = Path(run_dir)
    if records is None:
        run = load_run(run_dir)
        if manifest is not None:
            run.manifest = manifest
    else:
        run = Run(run_dir, manifest or read_manifest(run_dir), samples=records)
    summary = summarize_frame(run.to_frame(), run.ns)
    atomic_write_json(run_dir / SUMMARY, summary)
    return summary


def benchmark_entry(source: str, sha256: str, problem_ids: Sequence[str],
                    shard_ids: Sequence[str] | None = None) -> dict:
    """Manifest entry of one benchmark: rows' source and hash, full count, this run's ids."""
    return {"source": source, "sha256": sha256, "count": len(problem_ids),
            "problem_ids": list(shard_ids if shard_ids is not None else problem_ids)}


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise UserError(f"--shard {text}: need 0 <= i < N")
    return i, n


def merge_runs(shard_dirs: Sequence[Path], out: Path) -> dict:
    """Join shard runs into one; they must share a configuration and cover each problem once."""
    if len(shard_dirs) < 1:
        raise UserError("merge needs at least one shard directory")
    manifests = [read_manifest(Path(d)) for d in shard_dirs]
    base = manifests[0]
    shards = []
    for d, m in zip(shard_dirs, manifests):
        i, n = parse_shard(m.get("shard"))
        shards.append((i, n, Path(d), m))
        probe = dict(m, shard=base.get("shard"))
        probe["benchmarks"] = _strip_ids(m.get("benchmarks", {}))
        ref = dict(base, benchmarks=_strip_ids(base.get("benchmarks", {})))
        diffs = diff_config(ref, probe)
        if diffs:
            raise UserError(f"{d}: shard configuration differs from {shard_dirs[0]}: "
                            f"{', '.join(diffs[:6])}")
    total = {n for _, n, _, _ in shards}
    if len(total) != 1:
        raise UserError(f"shards disagree on N: {sorted(total)}")
    n_shards = total.pop()
    idx = sorted(i for i, _, _, _ in shards)
    dup = sorted({i for i in idx if idx.count(i) > 1})
    if dup:
        raise UserError(f"overlapping shards: index {', '.join(map(str, dup))} given twice")
    missing = sorted(set(range(n_shards)) - set(idx))
    if missing:
        raise UserError(f"missing shard(s) {', '.join(f'{i}/{n_shards}' for i in missing)}")
    merged_bench: dict[str, dict] = {}
    owner: dict[tuple[str, str], Path] = {}
    for i, _, d, m in sorted(shards, key=lambda s: s[0]):
        for b, e in m.get("benchmarks", {}).items():
            mb = merged_bench.setdefault(b, dict(e, problem_ids=[]))
            for pid in e.get("problem_ids", []):
                if (b, pid) in owner:
                    raise UserError(f"overlapping shards: {b}/{pid} in {owner[(b, pid)]} and {d}")
                owner[(b, pid)] = d
                mb["problem_ids"].append(pid)
    for b, e in merged_bench.items():
        if len(e["problem_ids"]) != e["count"]:
            raise UserError(f"shards cover {len(e['problem_ids'])} of {e['count']} {b} problems")
    records: list[SampleRecord] = []
    for _, _, d, _ in sorted(shards, key=lambda s: s[0]):
        records.extend(load_run(d).samples)
    out = Path(out)
    if has_content(out):
        raise UserError(f"{out} exists and is not empty; choose another --out")
    manifest = dict(base, shard="0/1", benchmarks=merged_bench,
                    merged_from=[str(d) for d in shard_dirs])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(out / SAMPLES, records)
    summary = write_summary(out, records, manifest)
    atomic_write_json(out / MANIFEST, manifest)  # last: a dir without it is not a run
    return summary


def _strip_ids(bench: dict) -> dict:
    return {b: {k: v for k, v in e.items() if k != "problem_ids"} for b, e in bench.items()}
