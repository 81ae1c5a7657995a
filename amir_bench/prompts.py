"""Prompt templates, one module for training and evaluation.

A template turns a problem statement into either chat messages (rendered with the
tokenizer's chat template when it has one) or a plain completion-style string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from amir_bench.errors import UserError

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

# The system prompt of the AMIR-GRPO paper's code: reasoning in <think>, answer in <answer>.
AMIR_XML_SYSTEM = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
    "process here </think> <answer> answer here </answer>. Put the final answer within "
    "\\boxed{} inside the answer tags."
)


@dataclass(frozen=True)
class Template:
    name: str
    system: str | None
    user_format: str  # formatted with {problem}
    chat: bool  # False: completion-style string, never a chat template
    plain_format: str = "Question: {problem}\nAnswer:"  # used when chat is False or no chat template


TEMPLATES: dict[str, Template] = {
    "boxed": Template("boxed", None, "{problem}\n" + BOXED_INSTRUCTION, chat=True,
                      plain_format="Question: {problem}\n" + BOXED_INSTRUCTION + "\nAnswer:"),
    "amir-xml": Template("amir-xml", AMIR_XML_SYSTEM, "{problem}", chat=True,
                         plain_format=AMIR_XML_SYSTEM + "\nUser: {problem}\nAssistant: <think>"),
    "plain": Template("plain", None, "{problem}", chat=False),
}


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise UserError(f"unknown template {name!r}; choose one of {', '.join(TEMPLATES)}") from None


def with_options(problem: str, options: Sequence[str] | None) -> str:
    """Multiple-choice variant: list the options under the problem (AQuA-RAT style)."""
    if not options:
        return problem
    return problem + "\nOptions: " + " ".join(str(o) for o in options) + \
        "\nAnswer with the letter of the correct option."


def problem_text(problem: Any, show_options: bool) -> str:
    """A problem's statement as prompted: with its options listed for multiple-choice specs."""
    return with_options(problem.problem, problem.meta.get("options")) if show_options \
        else problem.problem


def build_messages(problem: str, template: str) -> list[dict[str, str]]:
    t = get_template(template)
    msgs = []
    if t.system:
        msgs.append({"role": "system", "content": t.system})
    msgs.append({"role": "user", "content": t.user_format.replace("{problem}", problem)})
    return msgs


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def build_prompt(problem: str, template: str, tokenizer: Any = None) -> str:
    """The exact prompt string fed to the model (chat template applied when available)."""
    t = get_template(template)
    if t.chat and tokenizer is not None and has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            build_messages(problem, template), tokenize=False, add_generation_prompt=True)
    return t.plain_format.replace("{problem}", problem)


def problem_prompt(problem: Any, spec: Any, template: str, tokenizer: Any) -> str:
    """The prompt of one benchmark problem (run, score, training and warm start share it): the
    template applied to the statement, with the options listed for multiple-choice specs."""
    return build_prompt(problem_text(problem, spec.show_options), template, tokenizer)
