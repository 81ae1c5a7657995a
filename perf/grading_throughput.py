"""Grading throughput: amir_bench Grader (worker pool) vs serial math-verify in one process.

Builds N (completion, gold) pairs from GSM8K-test and MATH-500 reference solutions plus
perturbations (wrong final answers, reformatted equivalents, boxed answers inside prose),
grades them both ways in the same run, and prints pairs/s, the ratio, the slowest sample and
the number of timeouts of each, and how often the two verdicts disagree.

    .venv/bin/python perf/grading_throughput.py --n 5000 --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amir_bench.grading import GradeItem, Grader  # noqa: E402
from amir_bench.limits import GRADE_TIMEOUT_S

GSM_MODES = ("boxed", "answer_tag", "gsm8k", "last_number")
MATH_MODES = ("boxed", "answer_tag")


def _read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _wrong_number(ans: str, rng: random.Random) -> str:
    try:
        v = int(ans.replace(",", ""))
        return str(v + rng.choice([-10, -2, -1, 1, 2, 7, 100]))
    except ValueError:
        return ans + "+1"


def _gsm_variants(row: dict, rng: random.Random) -> list[tuple[str, str, str]]:
    """(kind of variant, completion, gold) for one GSM8K row."""
    gold = row["answer"]
    body = row["solution"].rsplit("####", 1)[0].rstrip()
    n = gold.replace(",", "")
    try:
        pretty = f"{int(n):,}"
    except ValueError:
        pretty = n
    wrong = _wrong_number(n, rng)
    return [
        ("reference", row["solution"], gold),
        ("wrong", f"{body}\n#### {wrong}", gold),
        ("reformatted", f"{body}\nSo the total is ${pretty}.00, i.e. $\\boxed{{\\${pretty}}}$.", gold),
        ("prose", f"Let me think step by step.\n{body}\nThe answer is {n} dollars in the end.", gold),
    ]


_BOX_RE = re.compile(r"\\boxed\{")


def _replace_last_box(sol: str, new: str) -> str | None:
    i = sol.rfind("\\boxed{")
    if i < 0:
        return None
    depth, j = 0, i + len("\\boxed")
    while j < len(sol):
        c = sol[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return sol[:i] + "\\boxed{" + new + "}" + sol[j + 1:]
        j += 1
    return None


def _reformat(ans: str) -> str:
    """An equivalent spelling of a MATH answer."""
    m = re.fullmatch(r"\\frac\{(\d+)\}\{(\d+)\}", ans)
    if m and int(m.group(2)) in (2, 4, 5, 8, 10, 20, 25):
        return str(int(m.group(1)) / int(m.group(2)))
    if re.fullmatch(r"-?\d+", ans):
        return f"{ans}.0"
    return ans.replace("\\frac", "\\dfrac").replace(",", ", ")


def _math_variants(row: dict, other: dict, rng: random.Random) -> list[tuple[str, str, str]]:
    gold, sol = row["answer"], row["solution"]
    out = [("reference", sol, gold)]
    wrong = other["answer"] if other["answer"] != gold else gold + "+1"
    w = _replace_last_box(sol, wrong)
    if w:
        out.append(("wrong", w, gold))
    r = _replace_last_box(sol, _reformat(gold))
    if r:
        out.append(("reformatted", r, gold))
    out.append(("prose", f"We work it out carefully. {row['problem'][:300]} After simplifying, "
                         f"we find that the answer is $\\boxed{{{gold}}}$, as claimed. "
                         f"Checking once more confirms it.", gold))
    return out


def build_pairs(data_dir: Path, n: int, seed: int = 0) -> list[tuple[str, str, tuple[str, ...]]]:
    rng = random.Random(seed)
    gsm = _read(data_dir / "gsm8k_test.jsonl")
    m500 = _read(data_dir / "math500.jsonl")
    pairs: list[tuple[str, str, tuple[str, ...]]] = []
    for r in gsm:
        pairs += [(c, g, GSM_MODES) for _, c, g in _gsm_variants(r, rng)]
    for r in m500:
        pairs += [(c, g, MATH_MODES) for _, c, g in _math_variants(r, rng.choice(m500), rng)]
    rng.shuffle(pairs)
    while len(pairs) < n:  # more than the data gives: repeat (the Grader's cache will show it)
        pairs += pairs[: n - len(pairs)]
    return pairs[:n]


def serial_math_verify(pairs, timeout: int = 5):
    """The usual in-process loop: parse(completion), parse($gold$), verify, one at a time."""
    import logging

    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    verdicts, max_lat, slow = [], 0.0, 0
    t0 = time.perf_counter()
    for completion, gold, _modes in pairs:
        t = time.perf_counter()
        try:
            ok = verify(parse(f"${gold}$", parsing_timeout=timeout),
                        parse(completion, parsing_timeout=timeout), timeout_seconds=timeout)
        except Exception:  # noqa: BLE001
            ok = False
        lat = time.perf_counter() - t
        max_lat = max(max_lat, lat)
        slow += lat >= timeout
        verdicts.append(bool(ok))
    return verdicts, time.perf_counter() - t0, max_lat, slow


def grader_run(pairs, workers: int | None, timeout: float = GRADE_TIMEOUT_S):
    items = [GradeItem(completion=c, gold=g, extract=m) for c, g, m in pairs]
    t0 = time.perf_counter()
    with Grader(timeout=timeout, workers=workers) as gr:
        res = gr.grade(items)
        stats, max_lat = dict(gr.stats), gr.max_latency
    return res, time.perf_counter() - t0, max_lat, stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--data-dir", default=os.environ.get("AMIR_BENCH_DATA_DIR", "../shared/data"))
    ap.add_argument("--timeout", type=float, default=GRADE_TIMEOUT_S)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    data_dir = Path(args.data_dir)
    for f in ("gsm8k_test.jsonl", "math500.jsonl"):
        if not (data_dir / f).exists():
            print(f"error: {data_dir / f} not found (use --data-dir)", file=sys.stderr)
            return 2
    pairs = build_pairs(data_dir, args.n, args.seed)
    cores = os.cpu_count() or 1
    uniq = len({(c, g) for c, g, _ in pairs})
    print(f"{len(pairs)} pairs ({uniq} distinct) from GSM8K test + MATH-500 references and "
          f"perturbations; {cores} CPU cores; per-sample timeout {args.timeout:g} s")

    res_pool, t_pool, lat_pool, st_pool = grader_run(pairs, None, args.timeout)
    res_one, t_one, lat_one, st_one = grader_run(pairs, 1, args.timeout)
    ver_mv, t_mv, lat_mv, slow_mv = serial_math_verify(pairs, int(round(args.timeout)))

    n = len(pairs)
    rows = [
        (f"Grader ({cores} workers)", t_pool, lat_pool, st_pool.get("timeouts", 0),
         sum(r.correct for r in res_pool)),
        ("Grader (1 worker)", t_one, lat_one, st_one.get("timeouts", 0),
         sum(r.correct for r in res_one)),
        ("serial math-verify", t_mv, lat_mv, slow_mv, sum(ver_mv)),
    ]
    print(f"\n{'method':<24}{'wall s':>9}{'pairs/s':>10}{'max lat s':>11}{'timeouts':>10}{'correct':>9}")
    for name, t, lat, to, k in rows:
        print(f"{name:<24}{t:>9.2f}{n / t:>10.1f}{lat:>11.3f}{to:>10}{k:>9}")
    print(f"\nspeedup Grader({cores} workers) / serial math-verify: {t_mv / t_pool:.2f}x "
          f"(goal >= 1.8x on 2 cores)")
    print(f"speedup Grader({cores} workers) / Grader(1 worker):   {t_one / t_pool:.2f}x")
    print(f"Grader: {st_pool.get('decided_in_parent', 0)} decided by string/integer comparison in the "
          f"parent, {st_pool.get('no_answer', 0)} no answer, {st_pool.get('sent_to_workers', 0)} sent to "
          f"math-verify workers, {st_pool.get('cache_hits', 0)} cache hits, "
          f"{st_pool.get('kills', 0)} worker kills; Grader times include worker start-up")
    diff = [i for i in range(n) if res_pool[i].correct != ver_mv[i]]
    print(f"verdicts that differ from serial math-verify: {len(diff)} of {n}")
    for i in diff[:5]:
        c, g, _ = pairs[i]
        print(f"  gold={g!r} extracted={res_pool[i].extracted!r} grader={res_pool[i].correct} "
              f"math-verify={ver_mv[i]}  ...{c[-80:]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
