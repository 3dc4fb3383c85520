"""How a problem and its solution are written for a model, with the mask of the tokens it learns: one place
for what `phi1 tokenize` writes for finetuning, what validation's HumanEval loss measures and what
`phi1 eval` asks, so that training and evaluation formats match token for token.

- `completion`: the prompt (a signature and docstring) as the tokenizer encodes text on its own (with its
  own start token, if it adds one), then the solution and the end-of-text token.
- `chat`: an instruct model's own chat template, asked the way evalplus asks (the request as the user's turn,
  the answer opened as a Python code block); the model writes the whole function, closes the block and ends
  its turn. Here the prefix is exactly the text `phi1 eval --chat` gives the model to continue.

The mask is 1 on the tokens the loss is taken on: the solution and what ends it (EOS, or the closing fence and
the end of the turn), never the prompt. It is built from the pieces, not from the token ids, so a tokenizer
whose pad token is its EOS (SmolLM2, Llama 3) still learns to stop (TRL #1623).
"""

from __future__ import annotations

from typing import Any, Literal

from phi1.errors import Phi1Error

Format = Literal["completion", "chat"]

INSTRUCTION = (
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:\n"
    "```\n{prompt}\n```\n"
)
# The start of the answer, given to a local model to continue: it writes code, inside a fence it must close.
RESPONSE = (
    "Below is a Python script with a self-contained function that solves the problem and passes "
    "corresponding tests:\n```python\n"
)
FENCE = "```"


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def resolve_format(choice: str, tokenizer: Any) -> Format:
    """`auto`: chat where the tokenizer has a chat template (an instruct model), else completion."""
    if choice == "auto":
        return "chat" if has_chat_template(tokenizer) else "completion"
    if choice == "chat" and not has_chat_template(tokenizer):
        raise Phi1Error("finetune.format: chat needs a tokenizer with a chat template (this one has none)")
    if choice not in ("completion", "chat"):
        raise Phi1Error(f"finetune.format: {choice!r} is not one of auto, completion, chat")
    return choice  # type: ignore[return-value]


def user_message(prompt: str) -> str:
    return INSTRUCTION.format(prompt=prompt.strip())


def chat_prefix(tokenizer: Any, prompt: str) -> str:
    """The text an instruct model continues: its chat template around the request, then the opened answer."""
    if not has_chat_template(tokenizer):
        raise Phi1Error("--chat on: this model's tokenizer has no chat template (a base model: use --chat off)")
    messages = [{"role": "user", "content": user_message(prompt)}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + RESPONSE


def chat_answer_parts(tokenizer: Any, prompt: str, code: str) -> tuple[str, str]:
    """(prefix, the rest of the conversation after it) for an answer whose code block holds `code`: the rest is
    the code, the closing fence and whatever the template writes to end the assistant's turn."""
    prefix = chat_prefix(tokenizer, prompt)
    answer = RESPONSE + code.rstrip("\n") + "\n" + FENCE
    messages = [{"role": "user", "content": user_message(prompt)}, {"role": "assistant", "content": answer}]
    whole = tokenizer.apply_chat_template(messages, tokenize=False)
    if not whole.startswith(prefix):
        raise Phi1Error(
            "finetune.format chat: this tokenizer's chat template writes an answer differently from how it asks "
            "for one (the conversation does not begin with the generation prompt); use finetune.format completion"
        )
    return prefix, whole[len(prefix) :]


def encode(tokenizer: Any, prompt: str, solution: str, fmt: Format) -> tuple[list[int], list[int]]:
    """(token ids, loss mask) of one problem and its solution. `solution` continues `prompt` (a function body
    after its signature and docstring), as exercises and HumanEval's canonical solutions do."""
    rows, masks = encode_many(tokenizer, [prompt], [solution], fmt)
    return rows[0], masks[0]


def encode_many(
    tokenizer: Any, prompts: list[str], solutions: list[str], fmt: Format
) -> tuple[list[list[int]], list[list[int]]]:
    """`encode` of many: in completion format the prompts and the solutions are tokenized in a batch each."""
    eos = tokenizer.eos_token_id
    if fmt == "completion":
        heads = tokenizer(prompts, add_special_tokens=True)["input_ids"] if prompts else []
        heads = [h if p else [] for h, p in zip(heads, prompts, strict=True)]
        tails = [[*t, eos] for t in tokenizer(solutions, add_special_tokens=False)["input_ids"]] if solutions else []
    else:
        heads, tails = [], []
        for prompt, solution in zip(prompts, solutions, strict=True):
            prefix, rest = chat_answer_parts(tokenizer, prompt, prompt + solution)
            # The template writes its own special tokens: none are added, as `phi1 eval --chat` adds none.
            heads.append(tokenizer(prefix, add_special_tokens=False)["input_ids"])
            tail = tokenizer(rest, add_special_tokens=False)["input_ids"]
            tails.append(tail if eos in tail else [*tail, eos])
    rows = [[*h, *t] for h, t in zip(heads, tails, strict=True)]
    masks = [[0] * len(h) + [1] * len(t) for h, t in zip(heads, tails, strict=True)]
    return rows, masks
