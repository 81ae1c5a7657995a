"""What lm-eval calls in tasks written by `amir-bench export lm-eval`.

Each exported task binds one TaskFunctions (benchmark, template, n, data folder): its
`doc_to_text` gives the suite's prompt for a doc (found by its amir-bench id), and its
`process_results` grades the doc's outputs with amir-bench's grader into avg@n and pass@k.
"""

from __future__ import annotations

from amir_bench.limits import GRADE_TIMEOUT_S

import atexit
from typing import Any

_GRADER: Any = None


def grader() -> Any:
    """One grading pool per lm_eval process, closed at exit (lm-eval grades doc by doc)."""
    global _GRADER
    if _GRADER is None:
        from amir_bench.grading import Grader

        _GRADER = Grader(timeout=GRADE_TIMEOUT_S)
        atexit.register(_GRADER.close)
    return _GRADER


class TaskFunctions:
    """doc_to_text and process_results of one exported task."""

    def __init__(self, benchmark: str, template: str, n: int, data_dir: str, chat: bool = True):
        self.benchmark, self.template, self.n = benchmark, template, int(n)
        self.data_dir, self.chat = data_dir, chat
        self._problems: dict[str, Any] | None = None

    def problem(self, doc: dict) -> tuple[Any, Any]:
        """(spec, Problem) of a doc: the suite's own row with this id."""
        from amir_bench.errors import UserError
        from benchmarks.loaders import load_problems
        from benchmarks.specs import get_spec

        spec = get_spec(self.benchmark)
        if self._problems is None:
            self._problems = {p.id: p for p in load_problems(spec.name, data_dir=self.data_dir)}
        p = self._problems.get(str(doc.get("id")))
        if p is None:
            raise UserError(f"{self.benchmark}: no problem with id {doc.get('id')!r} in "
                            f"{self.data_dir}")
        return spec, p

    def doc_to_text(self, doc: dict) -> str:
        """The user turn of the template (lm-eval's --apply_chat_template renders the chat;
        the system prompt is the task's description), or the template's plain prompt."""
        from amir_bench.prompts import build_messages, get_template, problem_text

        spec, p = self.problem(doc)
        text = problem_text(p, spec.show_options)
        t = get_template(self.template)
        if self.chat and t.chat:
            return build_messages(text, self.template)[-1]["content"]
        return t.plain_format.replace("{problem}", text)

    def process_results(self, doc: dict, results: list) -> dict[str, float]:
        """avg@n and pass@k over the doc's outputs, graded as `amir-bench run` grades."""
        from amir_bench.grading import item_for
        from amir_bench.metrics import ks_for, pass_at_k

        spec, p = self.problem(doc)
        outputs = [x for r in results for x in (r if isinstance(r, list) else [r])]
        grades = grader().grade([item_for(p, spec, str(o)) for o in outputs])
        c, n = sum(bool(g.correct) for g in grades), len(outputs)
        out = {"avg@n": c / n if n else 0.0}
        for k in ks_for(self.n):
            out[f"pass@{k}"] = pass_at_k(n, c, k) if k <= n else float(c > 0)
        return out
