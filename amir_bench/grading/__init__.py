"""Grading: extract a final answer from a completion and verify it against the gold.

Modules: `extract` (answer extraction, parent side), `normalize` (string normalization and
the string-only verdicts), `verify` (math-verify and our guards, in worker processes), `pool`
(the isolated worker pool and `Grader`), `items` (GradeItem / GradeResult / item_for),
`gradefile` (`amir-bench grade` on a JSONL file).
"""

from amir_bench.grading.extract import extract_answer
from amir_bench.grading.items import GradeItem, GradeResult, item_for
from amir_bench.grading.normalize import normalize_answer
from amir_bench.grading.pool import Grader, grade_one

__all__ = ["Grader", "GradeItem", "GradeResult", "extract_answer", "normalize_answer",
           "item_for", "grade_one"]
