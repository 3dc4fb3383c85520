"""Decoding that drops finished rows and fills their places (`phi1.evaluate.decode`), the paired comparison of
base and finetuned (`phi1.evaluate.flips`), and the loss computed at labelled positions only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import tiny_llama
from phi1.evaluate.decode import decode, prefill_parts
from phi1.evaluate.flips import compare, mcnemar_p, nearest_exercises


@pytest.fixture(scope="module")
def llama(smollm2_tokenizer: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_llama(smollm2_tokenizer, tmp_path_factory.mktemp("decode") / "llama", seed=3)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)


PROMPTS = ["def add(a, b):\n", "x = 1", "import os\nprint(os.sep)\n# and then the rest of it,", "for i in range(3):",
           "class A:\n    pass\n", "y"]  # fmt: skip


def _alone(model, ids: list[int], n: int, eos: int) -> list[int]:
    """generate's greedy answer to one prompt alone (no padding), up to n tokens or EOS."""
    out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=n, do_sample=False, eos_token_id=eos, pad_token_id=eos)  # fmt: skip
    return out[0, len(ids) :].tolist()


def test_rows_dropped_and_refilled_decode_as_each_prompt_alone_with_generate(llama: tuple) -> None:
    model, tok = llama
    prompts = [tok(p)["input_ids"] for p in PROMPTS]
    stop_after = {0: 3, 3: 5}  # rows told they are finished early, so their places are refilled mid-way

    def finished(row: int, tokens: list[int]) -> bool:
        return len(tokens) >= stop_after.get(row, 10**9)

    with torch.inference_mode():
        got = dict(decode(model, prompts, tok.pad_token_id, 3, 12, finished, {tok.eos_token_id}))
        assert sorted(got) == list(range(len(prompts)))
        for i, ids in enumerate(prompts):
            want = _alone(model, ids, stop_after.get(i, 12), tok.eos_token_id)
            assert got[i] == want[: len(got[i])] and len(got[i]) == min(len(want), stop_after.get(i, 12))


def test_a_row_ends_at_its_end_of_sequence_token(llama: tuple) -> None:
    model, tok = llama
    ids = tok(PROMPTS[0])["input_ids"]
    with torch.inference_mode():
        free = dict(decode(model, [ids], tok.pad_token_id, 1, 6, lambda r, t: False, set()))[0]
        eos = {free[2]}  # the third token it would produce, named end of sequence
        ended = dict(decode(model, [ids], tok.pad_token_id, 1, 6, lambda r, t: False, eos))[0]
    assert ended == free[: free.index(free[2]) + 1]


def test_nucleus_sampling_with_a_tiny_top_p_is_greedy(llama: tuple) -> None:
    model, tok = llama
    prompts = [tok(p)["input_ids"] for p in PROMPTS[:3]]
    with torch.inference_mode():
        greedy = dict(decode(model, prompts, tok.pad_token_id, 2, 5, lambda r, t: False, set()))
        g = torch.Generator().manual_seed(0)
        nucleus = dict(decode(model, prompts, tok.pad_token_id, 2, 5, lambda r, t: False, set(), 0.8, 1e-6, g))
        g = torch.Generator().manual_seed(0)
        free = dict(decode(model, prompts, tok.pad_token_id, 2, 5, lambda r, t: False, set(), 5.0, 1.0, g))
    assert nucleus == greedy
    assert free != greedy  # a hot, untruncated distribution over 49k tokens does not pick the argmax 15 times


def test_mcnemar_exact_p_and_the_flips() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(7, 4) == pytest.approx(0.548828125)  # 2 * P(X <= 4), X ~ Bin(11, 1/2)
    assert mcnemar_p(10, 0) == pytest.approx(2 / 1024)
    assert mcnemar_p(3, 9) == mcnemar_p(9, 3)
    base = {"a": True, "b": False, "c": False, "d": True, "e": False}
    tuned = {"a": True, "b": True, "c": True, "d": False, "extra": True}
    c = compare(base, tuned)
    assert c["problems"] == 4 and c["to_pass"] == ["b", "c"] and c["to_fail"] == ["d"]
    assert c["base_passed"] == 2 and c["finetuned_passed"] == 3
    assert c["mcnemar_p"] == pytest.approx(1.0)


def test_a_gain_is_shown_beside_its_nearest_exercise_with_the_pairs_scores() -> None:
    from phi1.clean.problems import load_benchmark_problems

    problem = next(p for p in load_benchmark_problems(mbpp=False) if p.task_id == "HumanEval/0")
    exercises = [
        {"id": "far", "text": "def shout(s: str) -> str:\n    return s.upper() + '!'\n", "prompt": "def shout(s)"},
        {"id": "copy", "text": problem.solution, "prompt": problem.prompt},
        {"id": "other", "text": "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n",
         "prompt": "def total(xs)"},
    ]  # fmt: skip
    near = nearest_exercises(["HumanEval/0"], "humaneval", exercises, "minilm", 13, 12, {"HumanEval/0": 2})
    pair = near["HumanEval/0"]
    assert pair["exercise_id"] == "copy"
    assert pair["cosine"] > 0.99 and pair["ast_tau"] == 1.0 and pair["shared_13grams"] > 10
    assert pair["execution_twins"] == 2
    exercises.pop(1)
    pair = nearest_exercises(["HumanEval/0"], "humaneval", exercises, "minilm", 13, 12, {})["HumanEval/0"]
    assert pair["exercise_id"] != "copy" and pair["shared_13grams"] == 0 and pair["ast_tau"] < 0.9


def test_the_loss_at_labelled_positions_only_equals_the_full_loss_and_its_gradients(llama: tuple) -> None:
    from contextlib import nullcontext

    from phi1.train.kernels import CausalLMLoss

    model, _ = llama
    torch.manual_seed(0)
    ids = torch.randint(0, 49152, (2, 10))
    tgt = ids[:, 1:].clone()
    tgt[0, :4] = -100
    tgt[1, :7] = -100  # a prompt masked, as a solution-only finetune masks it
    losses, grads = [], []
    for labelled_only in (False, True):
        model.zero_grad()
        loss = CausalLMLoss(model, "torch", nullcontext, labelled_only=labelled_only)(ids, tgt)
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    assert torch.allclose(losses[0], losses[1], rtol=1e-5)
    for a, b in zip(*grads, strict=True):  # equal up to float summation order
        assert (a - b).abs().max() <= 1e-4 * a.abs().max() + 1e-12
    model.zero_grad()


def test_the_report_leads_with_the_jump_and_escapes_the_exercise_it_shows() -> None:
    from phi1.report.evaluation import jump_lines

    hostile = "<script>alert(1)</script> [x](javascript:alert(1)) | `y` <img src=x onerror=alert(1)>\nnext"
    near = {"exercise_id": "ex<1>", "exercise_prompt": hostile, "cosine": 0.61, "ast_tau": 0.42,
            "shared_13grams": 0, "execution_twins": 0}  # fmt: skip
    comparison = {"problems": 164, "base_passed": 6, "finetuned_passed": 9, "to_pass": ["HumanEval/1", "HumanEval/2"],
                  "to_fail": ["HumanEval/3"], "mcnemar_p": 0.625,
                  "nearest_exercise": {"HumanEval/1": near, "HumanEval/2": near}}  # fmt: skip
    m = {"pretrain": {"base": "/models/SmolLM2.gguf", "steps": 0},
         "eval": {"comparison": {"humaneval": comparison},
                  "results": {label: {"humaneval": {"chat": True}} for label in ("base", "finetuned")}}}  # fmt: skip
    text = "\n".join(jump_lines(m))
    assert "| base (SmolLM2.gguf) | chat | 3.7% | 6/164 |" in text
    assert "| finetuned on the run's clean exercises | chat | 5.5% | 9/164 |" in text
    assert "to fail: 1 (HumanEval/3)" in text and "p = 0.625 (not below 0.05)" in text
    rows = [line for line in text.splitlines() if line.startswith("| HumanEval/")]
    assert len(rows) == 2 and all(line.count(" | ") == 5 for line in rows)  # the pipe did not add a cell
    for bad in ("<script", "<img", "](javascript:", "`y`", "ex<1>"):
        assert bad not in text
    assert "&lt;script&gt;" in text and "ex&lt;1&gt;" in text
    assert "decoded in" not in text  # no precision recorded: nothing said about it
    m["finetune"] = {"merge_base": {"weight": 0.5, "start": "runs/demo/pretrain/final"}}
    assert (
        "| finetuned on the run's clean exercises, averaged with its start (0.5 of it: `finetune.merge_base`) |"
        in "\n".join(jump_lines(m))
    )


def test_the_jump_says_how_both_models_decoded_and_what_bf16_changes() -> None:
    from phi1.report.evaluation import jump_lines

    comparison = {"problems": 2, "base_passed": 1, "finetuned_passed": 1, "to_pass": [], "to_fail": [],
                  "mcnemar_p": 1.0}  # fmt: skip
    for dtype, warned in (("bf16", True), ("fp32", False)):
        m = {"eval": {"comparison": {"humaneval": comparison}, "config": {"batch_size": 64},
                      "precision": {"dtype": dtype}}}  # fmt: skip
        text = "\n".join(jump_lines(m))
        assert f"Both models decoded in {dtype}, 64 rows at once." in text
        assert "averaged with its start" not in text
        assert ("evaluate.bf16: off" in text) is warned


def test_one_row_at_a_time_decodes_every_prompt(llama: tuple) -> None:
    model, tok = llama
    prompts = [tok(p)["input_ids"] for p in PROMPTS[:3]]
    with torch.inference_mode():
        one = dict(decode(model, prompts, tok.pad_token_id, 1, 4, lambda r, t: False, set()))
        many = dict(decode(model, prompts, tok.pad_token_id, 3, 4, lambda r, t: False, set()))
    assert one == many and sorted(one) == [0, 1, 2]


def test_prompt_parts_are_consecutive_and_within_the_token_budget() -> None:
    lengths = [3, 4, 4, 9, 2, 30, 5]
    parts = prefill_parts(lengths, 12)
    assert [k for part in parts for k in part] == list(range(len(lengths)))
    for part in parts:  # within the budget, or a single row longer than it
        assert len(part) == 1 or len(part) * max(lengths[k] for k in part) <= 12
    assert parts == [[0, 1, 2], [3], [4], [5], [6]]
    assert prefill_parts(lengths, 0) == [list(range(len(lengths)))]


def test_prompts_prefilled_in_parts_decode_as_each_prompt_alone_with_generate(llama: tuple) -> None:
    model, tok = llama
    prompts = [tok(p)["input_ids"] for p in PROMPTS]
    assert len(prefill_parts([len(p) for p in prompts[:4]], 16)) > 1  # the first batch is prefilled in parts
    with torch.inference_mode():
        got = dict(decode(model, prompts, tok.pad_token_id, 4, 8, lambda r, t: False, set(), prefill_tokens=16))
        whole = dict(decode(model, prompts, tok.pad_token_id, 4, 8, lambda r, t: False, set(), prefill_tokens=0))
    assert got == whole
    for i, ids in enumerate(prompts):
        assert got[i] == _alone(model, ids, 8, -1)


def test_a_cache_that_cannot_be_joined_decodes_every_prompt_as_alone(smollm2_tokenizer: Path, tmp_path: Path) -> None:
    """A sliding-window cache cannot be padded and joined: the first part decodes alone, the rest come after."""
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(5)
    config = MistralConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, sliding_window=4, eos_token_id=2,
                           pad_token_id=2)  # fmt: skip
    model = MistralForCausalLM(config).eval()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer)
    prompts = [tok(p)["input_ids"] for p in PROMPTS]
    with torch.inference_mode():
        got = dict(decode(model, prompts, tok.pad_token_id, 4, 6, lambda r, t: False, set(), prefill_tokens=16))
        assert sorted(got) == list(range(len(prompts)))
        for i, ids in enumerate(prompts):
            assert got[i] == _alone(model, ids, 6, -1)


def test_the_training_table_gives_the_held_out_loss_of_the_averaged_model_that_is_evaluated(tmp_path: Path) -> None:
    """With `finetune.merge_base` the evaluated model is the average with the start: its held-out loss is shown
    beside the finetune's own, never the finetune's alone as if it were the evaluated model's."""
    from phi1.report.training import training_section

    finetune = {"steps": 11, "parameters": {"total": 134_515_008}, "first_loss": 0.527, "final_loss": 0.149,
                "final_val": {"step": 11, "val_loss": 0.030163}, "tokens_per_s": 267.9, "mfu": None}  # fmt: skip
    m = {"pretrain": None, "finetune": finetune}
    row = next(line for line in training_section(m, tmp_path / "figures", tmp_path) if line.startswith("| finetune"))
    assert "| 0.030163 |" in row and "averaged" not in row
    finetune["merge_base"] = {"weight": 0.5, "start": "runs/demo/pretrain/final", "val_loss": 0.071234}
    row = next(line for line in training_section(m, tmp_path / "figures", tmp_path) if line.startswith("| finetune"))
    assert "| 0.030163; averaged with its start (0.5 of it): 0.071234 |" in row
    assert "| 134.5M |" in row  # every weight trained: the size alone


def test_the_training_table_says_how_much_of_the_model_was_trained(tmp_path: Path) -> None:
    """Frozen layers (`finetune.freeze_layers`) or LoRA's adapters: the parameters column says how many trained."""
    from phi1.report.training import training_section

    finetune = {"steps": 11, "parameters": {"total": 134_515_008, "trained": 53_102_016}, "first_loss": 0.527,
                "final_loss": 0.193, "final_val": {"step": 11, "val_loss": 0.064}, "tokens_per_s": 380.1}  # fmt: skip
    m = {"pretrain": None, "finetune": finetune}
    row = next(line for line in training_section(m, tmp_path / "figures", tmp_path) if line.startswith("| finetune"))
    assert "| 134.5M (53.1M trained) |" in row
