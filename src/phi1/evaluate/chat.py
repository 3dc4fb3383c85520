"""Instruct models are asked for code the way evalplus asks them (a request in a chat turn, the answer opened
as a Python code block), and their fenced answers are turned back into completions of the benchmark prompt.
A base model (no chat template) is given the prompt as it is, to continue."""

from __future__ import annotations

import re
from typing import Any

from phi1.errors import Phi1Error
from phi1.prompt_format import FENCE, INSTRUCTION, RESPONSE, chat_prefix, has_chat_template, user_message

__all__ = ["FENCE", "INSTRUCTION", "MODES", "RESPONSE", "check_mode", "completion", "model_prompt", "use_chat",
           "user_message"]  # fmt: skip

MODES = ("auto", "on", "off")

_BLOCK = re.compile(r"```[\w+-]*[ \t]*\n(.*?)(?:```|\Z)", re.S)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise Phi1Error(f"--chat must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def use_chat(mode: str, tokenizer: Any | None) -> bool:
    """`auto`: chat when the model's tokenizer has a chat template (instruction-tuned models ship one, base
    models and phi1's own checkpoints do not); an endpoint (no tokenizer here) is asked for completions."""
    if check_mode(mode) != "auto":
        return mode == "on"
    return tokenizer is not None and has_chat_template(tokenizer)


def model_prompt(tokenizer: Any, prompt: str) -> str:
    """The text a local instruct model continues: its chat template around the request, then the opened answer
    (`phi1.prompt_format`, where finetuning writes its exercises the same way)."""
    return chat_prefix(tokenizer, prompt)


def completion(answer: str, entry_point: str, opened: bool) -> str:
    """What to append to the benchmark prompt. `opened`: the answer continues a code block we opened (a local
    model), so the code runs to the closing fence; else the first fenced block that defines the entry point
    (else the first block, else the whole answer). A whole function comes back after a newline and replaces
    the prompt's stub; a bare body continues the prompt."""
    if opened:
        code = answer.split(FENCE, 1)[0]
    else:
        blocks = _BLOCK.findall(answer)
        defining = [b for b in blocks if _defines(b, entry_point)]
        code = (defining or blocks or [answer])[0]
    if entry_point and _defines(code, entry_point):
        return "\n" + code.strip("\n") + "\n"
    return code


def _defines(code: str, entry_point: str) -> bool:
    return re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.M) is not None
