"""A user's own base model (`model.base`) and the finetuning data built for it: the label mask token by token in
both formats, the end-of-text token learned where it is also the pad token, exercises packed whole with no
attention across them, and refusals in one line."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, cleaned_run, phi1_cmd, tiny_llama
from phi1.config import Config
from phi1.errors import Phi1Error
from phi1.prompt_format import RESPONSE, encode, user_message
from phi1.tokens import TokenShards, write_doc_starts, write_token_index
from phi1.train.collate import PackedDocuments, collate, targets

PROMPT = 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b.\n\n    >>> add(2, 3)\n    5\n    """\n'
SOLUTION = "    return a + b\n"


def _learned_and_masked(tok, ids: list[int], mask: list[int]) -> tuple[list[str], list[str], np.ndarray]:
    """Each target token's text, split by whether its label is -100: (learned, not learned, labels)."""
    labels = targets(np.array([ids]), np.array([mask], dtype=bool), True)[0]
    learned = [tok.decode([ids[i + 1]]) for i, label in enumerate(labels) if label != -100]
    masked = [tok.decode([ids[i + 1]]) for i, label in enumerate(labels) if label == -100]
    for i, label in enumerate(labels):
        assert label in (-100, ids[i + 1])  # a label is the next token or nothing
    return learned, masked, labels


def test_label_mask_token_by_token_in_a_llama_style_chat_template(smollm2_tokenizer: Path) -> None:
    from transformers import AutoTokenizer

    from phi1.evaluate.chat import model_prompt

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer)
    assert tok.pad_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")  # as TRL #1623
    ids, mask = encode(tok, PROMPT, SOLUTION, "chat")
    learned, masked, labels = _learned_and_masked(tok, ids, mask)
    # What the model learns to write: the whole function, the closing fence, the end of its turn; nothing else.
    assert "".join(learned) == PROMPT + SOLUTION + "```<|im_end|>\n"
    # What it is given: SmolLM2's own template around evalplus' request, the answer opened (the first token
    # has no label of its own).
    prefix = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        f"<|im_start|>user\n{user_message(PROMPT)}<|im_end|>\n<|im_start|>assistant\n{RESPONSE}"
    )
    assert tok.decode(ids[:1]) + "".join(masked) == prefix
    # Learned tokens are one run at the end, and the last label is the end of the turn: EOS is learned though
    # it is the pad token.
    first = int(np.flatnonzero(labels != -100)[0])
    assert (labels[first:] != -100).all() and labels[-2] == tok.eos_token_id
    # Exactly the token ids `phi1 eval --chat` gives the model to continue.
    assert tok(model_prompt(tok, PROMPT), add_special_tokens=False)["input_ids"] == ids[: first + 1]


def test_label_mask_token_by_token_in_completion_format(smollm2_tokenizer: Path) -> None:
    from transformers import AutoTokenizer

    from phi1.tokenize import train_bpe

    llama_style = AutoTokenizer.from_pretrained(smollm2_tokenizer)
    own_bpe = train_bpe([PROMPT + SOLUTION, "def f(x):\n    return x * 2\n" * 20], 300)
    for tok, eos_text in ((llama_style, "<|im_end|>"), (own_bpe, "<|endoftext|>")):
        ids, mask = encode(tok, PROMPT, SOLUTION, "completion")
        learned, masked, labels = _learned_and_masked(tok, ids, mask)
        assert "".join(learned) == SOLUTION + eos_text
        assert tok.decode(ids[:1]) + "".join(masked) == PROMPT
        assert labels[-1] == tok.eos_token_id and tok.pad_token_id == tok.eos_token_id
        # The prompt is tokenized alone, exactly as `phi1 eval` asks a model in completion mode.
        assert tok(PROMPT)["input_ids"] == ids[: len(ids) - int(sum(mask))]


def _token_set(tmp: Path, docs: list[tuple[list[int], list[int]]], seq_len: int) -> TokenShards:
    ids = np.array([t for d, _ in docs for t in d], dtype=np.uint16)
    ids.tofile(tmp / "finetune.bin")
    np.array([m for _, ms in docs for m in ms], dtype=np.uint8).tofile(tmp / "finetune.mask.bin")
    write_doc_starts(tmp / "finetune.bin", np.concatenate([[0], np.cumsum([len(d) for d, _ in docs])]))
    write_token_index(tmp, {"seq_len": seq_len, "dtype": "uint16", "vocab_size": 100, "eos_token_id": 0,
                            "files": {"finetune": {}}})  # fmt: skip
    return TokenShards(tmp, "finetune")


def test_documents_packing_keeps_exercises_whole_and_labels_none_across(tmp_path: Path) -> None:
    # Three exercises: prompt tokens (mask 0), solution tokens and EOS 0 (mask 1); the third is too long.
    docs = [([5, 6, 7, 0], [0, 0, 1, 1]), ([8, 9, 10, 11, 0], [0, 1, 1, 1, 1]), ([12] * 9 + [0], [0] * 5 + [1] * 5)]
    data = _token_set(tmp_path, docs, seq_len=10)
    packed = PackedDocuments(data, pad_id=0)
    assert packed.n_sequences == 2 and packed.truncated == 0
    batch = collate(packed, np.array([0, 1]), solution_only=True)
    assert batch.ids.tolist() == [[5, 6, 7, 0, 8, 9, 10, 11, 0, 0], [12] * 9 + [0]]
    assert batch.positions.tolist() == [[0, 1, 2, 3, 0, 1, 2, 3, 4, 0], list(range(10))]
    # Targets of the first row, position by position: 6 and 7 are prompt (-100 for 6), 7 and EOS are solution;
    # 8 starts the next exercise (no label across), 9 10 11 EOS are its solution; the padding has none.
    assert batch.labels.tolist()[0] == [-100, 7, 0, -100, 9, 10, 11, 0, -100]
    assert batch.labels.tolist()[1] == [-100] * 4 + [12, 12, 12, 12, 0]
    # Everything on: still nothing across a boundary and nothing on padding.
    assert collate(packed, np.array([0]), solution_only=False).labels.tolist()[0] == [6, 7, 0, -100, 9, 10, 11, 0, -100]
    # The paper's packing: one stream cut every seq_len tokens, attention and labels run across exercises.
    paper = collate(data, np.array([0]), solution_only=True)
    assert paper.positions is None and paper.ids.tolist() == [[5, 6, 7, 0, 8, 9, 10, 11, 0, 12]]
    assert paper.labels.tolist() == [[-100, 7, 0, -100, 9, 10, 11, 0, -100]]

    long = _token_set(tmp_path, [([1] * 12 + [0], [0] * 2 + [1] * 11)], seq_len=10)
    assert PackedDocuments(long, pad_id=0).truncated == 1


def test_packed_exercises_do_not_attend_to_each_other(smollm2_tokenizer: Path, tmp_path: Path) -> None:
    """The loss of two exercises packed in one row (positions restarting) is the sum of their losses alone; in the
    paper's packing the second exercise sees the first, and its loss differs."""
    import torch
    from transformers import AutoModelForCausalLM

    from phi1.train.kernels import CausalLMLoss
    from phi1.train.validate import check_document_attention

    lm = AutoModelForCausalLM.from_pretrained(tiny_llama(smollm2_tokenizer, tmp_path / "llama")).eval()
    loss = CausalLMLoss(lm, "torch", contextlib.nullcontext)
    check_document_attention(lm)  # passes: Llama masks at restarting positions
    g = torch.Generator().manual_seed(1)
    a, b = torch.randint(3, 49152, (1, 6), generator=g), torch.randint(3, 49152, (1, 9), generator=g)

    def alone(x: torch.Tensor) -> float:
        with torch.no_grad():
            return float(loss(x, x[:, 1:]))

    row = torch.cat([a, b], dim=1)
    labels = row[:, 1:].clone()
    labels[0, 5] = -100  # the first token of b is no target of a's last
    positions = torch.cat([torch.arange(6), torch.arange(9)])[None]
    with torch.no_grad():
        packed_loss = float(loss(row, labels, positions))
        crossing = float(loss(row, labels))
    assert packed_loss == pytest.approx(alone(a) + alone(b), rel=1e-5)
    assert abs(crossing - packed_loss) > 1e-3


def test_a_model_that_attends_across_documents_is_refused() -> None:
    import torch

    from phi1.train.validate import check_document_attention

    class Leaky(torch.nn.Module):
        """Position ids ignored: every token sees the whole row (a model transformers builds no mask for)."""

        def __init__(self) -> None:
            super().__init__()
            self.config = type("C", (), {"vocab_size": 11, "model_type": "leaky"})()
            self.emb = torch.nn.Embedding(11, 11)

        def forward(self, input_ids, position_ids=None, use_cache=False):
            e = self.emb(input_ids)
            return type("O", (), {"logits": e.cumsum(dim=1)})()

    with pytest.raises(Phi1Error, match="leaky attends across documents"):
        check_document_attention(Leaky())


def test_non_causal_and_missing_bases_are_refused_in_one_line(tmp_path: Path, cli_env: dict) -> None:
    from transformers import BertConfig

    bert = tmp_path / "bert"
    BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32).save_pretrained(bert)  # fmt: skip
    for base, expected in (
        (bert, "is a bert model, not a causal LM that AutoModelForCausalLM loads"),
        (tmp_path / "nowhere", "no such folder or GGUF file"),
    ):
        proc = subprocess.run(phi1_cmd("run", "--dry-run", "--set", f"model.base={base}"), env=cli_env, cwd=ROOT,
                              capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert f"model.base: {base}" in proc.stderr and expected in proc.stderr


def test_dry_run_counts_a_base_models_parameters(smollm2_tokenizer: Path, tmp_path: Path, cli_env: dict) -> None:
    base = tiny_llama(smollm2_tokenizer, tmp_path / "llama")
    proc = subprocess.run(phi1_cmd("run", "--dry-run", "--set", f"model.base={base}"), env=cli_env, cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # 49,152 x 32 tied embeddings (counted once) + 2 layers of 32-wide attention (kv 16), MLP and norms: 1.59M.
    assert "5 pretrain     llama base" in proc.stdout and "1.6M parameters" in proc.stdout
    assert "format auto, packing paper; full finetune" in proc.stdout
    frozen = subprocess.run(phi1_cmd("run", "--dry-run", "--set", f"model.base={base}", "--set",
                                     "finetune.freeze_layers=1"), env=cli_env, cwd=ROOT, capture_output=True,
                            text=True)  # fmt: skip
    assert "full finetune, its bottom 1 layer(s) frozen" in frozen.stdout

    def flops(out: str) -> float:
        return float(re.search(r"training: +(\S+) FLOPs", out).group(1))

    assert flops(frozen.stdout) < flops(proc.stdout)  # the finetune's backward pass skips the frozen layer


def test_run_continues_a_llama_base_and_a_phi_checkpoint_then_finetunes_and_evaluates(
    tokens_free_run: Path, smollm2_tokenizer: Path, tiny_checkpoint: Path, tmp_path: Path, cli_env: dict
) -> None:
    """`phi1 run --set model.base=...` from tokenize on: the base's tokenizer becomes the run's, pretraining
    continues from its weights (or, with pretrain.max_steps 0, hands them on as they are), finetuning starts
    from that, evaluation asks each model in its format."""
    import shutil

    import torch
    from safetensors.torch import load_file

    llama = tiny_llama(smollm2_tokenizer, tmp_path / "llama")
    for base, fmt, steps in ((llama, "chat", 4), (tiny_checkpoint, "completion", 0)):
        run = tmp_path / f"run-{base.name}"
        shutil.copytree(tokens_free_run, run)
        sets = [*BASE_RUN, f"model.base={base}", f"pretrain.max_steps={steps}"]
        proc = subprocess.run(phi1_cmd("run", "--from", "tokenize", "--run-dir", str(run),
                                       *[a for s in sets for a in ("--set", s)]),
                              env=cli_env, cwd=ROOT, capture_output=True, text=True, timeout=900)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        index = json.loads((run / "tokens" / "index.json").read_text())
        assert index["exercise_format"] == fmt
        assert (run / "tokenizer" / "tokenizer.json").read_text() == (base / "tokenizer.json").read_text()
        # Pretraining moved the base's weights, and finetuning moved pretraining's.
        start, pre, fin = (load_file(str(p / "model.safetensors")) for p in
                           (base, run / "pretrain" / "final", run / "finetune" / "final"))  # fmt: skip
        name = next(k for k in start if k.endswith(("layers.0.mlp.down_proj.weight", "layers.0.mlp.fc2.weight")))
        assert not torch.equal(pre[name], fin[name])
        if steps:
            assert not torch.equal(start[name], pre[name])
            assert (start[name] - pre[name]).abs().max() < 0.05  # continued, not re-initialised
        else:
            assert all(torch.equal(start[k], pre[k]) for k in start)
            # Handed on as it is: its files linked, nothing loaded, validated or saved again.
            assert (run / "pretrain" / "final" / "model.safetensors").stat().st_ino == (
                base / "model.safetensors").stat().st_ino  # fmt: skip
            assert not (run / "pretrain" / "metrics.jsonl").exists()
        ev = json.loads((run / "eval" / "manifest.json").read_text())["results"]
        assert ev["finetuned"]["humaneval"]["chat"] is (fmt == "chat")
        assert ev["base"]["humaneval"]["chat"] is (fmt == "chat")  # auto: an instruct model in its template
        assert sum(ev["base"]["humaneval"]["status_counts"].values()) == 164
        pre_m = json.loads((run / "pretrain" / "manifest.json").read_text())
        assert pre_m["parameters"]["total"] == sum(v.numel() for v in start.values())  # tied weights saved once
        assert pre_m["steps"] == steps
        # The paired comparison of the two models is written whatever it finds.
        comparison = json.loads((run / "eval" / "comparison.json").read_text())["humaneval"]
        assert comparison["problems"] == 164
        assert len(comparison["to_pass"]) - len(comparison["to_fail"]) == (
            comparison["finetuned_passed"] - comparison["base_passed"])  # fmt: skip
        report = (run / "report.md").read_text()
        assert "### Base vs finetuned: humaneval (greedy, 164 problems)" in report
        # The base row names the user's model, and says when the base evaluated is it continued here.
        assert pre_m["base"] == str(base)
        continued = f", its pretraining continued here for {steps} steps" if steps else ""
        assert f"| base ({base.name}{continued}) | {fmt} |" in report, report[report.find("### Base") :][:600]


BASE_RUN = [
    "tokenize.seq_len=64", "pretrain.max_steps=4", "pretrain.batch_size=4", "pretrain.micro_batch_size=4",
    "pretrain.lr=1e-3", "pretrain.warmup_steps=1", "pretrain.humaneval_loss=false", "finetune.max_steps=3",
    "finetune.batch_size=4", "finetune.micro_batch_size=4", "finetune.warmup_steps=1", "finetune.humaneval_loss=false",
    "finetune.lr=1e-3", "evaluate.max_new_tokens=8", "evaluate.batch_size=64", "clean.execution=false",
    "clean.encoder=hashing", "synth.textbook_samples=30", "synth.exercise_samples=30",
]  # fmt: skip


@pytest.fixture(scope="module")
def tokens_free_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with synthetic data cleaned (the offline teacher), ready to tokenize."""
    return cleaned_run(tmp_path_factory.mktemp("base-run"), BASE_RUN)


def _finetune_run(tokens_free_run: Path, base: Path, dest: Path, *extra: str) -> Config:
    """A run of `base` tokenized and 'pretrained' by handing the base on (pretrain.max_steps 0)."""
    import shutil

    from phi1.config import load_config
    from phi1.tokenize import tokenize
    from phi1.train import train

    shutil.copytree(tokens_free_run, dest)
    cfg = load_config(None, [*BASE_RUN, f"model.base={base}", "pretrain.max_steps=0", *extra])
    tokenize(dest, cfg)
    train(dest, cfg, "pretrain")
    return cfg


def test_lora_trains_adapters_only_and_saves_them_merged(
    tokens_free_run: Path, smollm2_tokenizer: Path, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from phi1.train import train

    base = tiny_llama(smollm2_tokenizer, tmp_path / "llama")
    run = tmp_path / "run"
    cfg = _finetune_run(tokens_free_run, base, run, "finetune.lora={r: 4, alpha: 8, targets: [q_proj, v_proj]}",
                        "finetune.max_steps=4", "finetune.lr=1e-2")  # fmt: skip
    m = train(run, cfg, "finetune")
    # Rank-4 adapters on q and v of 2 layers: (32x4 + 4x32) + (32x4 + 4x16) per layer.
    assert m["parameters"]["trained"] == 2 * ((32 * 4 + 4 * 32) + (32 * 4 + 4 * 16))
    assert m["lora"]["r"] == 4
    start = load_file(str(run / "pretrain" / "final" / "model.safetensors"))
    final = load_file(str(run / "finetune" / "final" / "model.safetensors"))
    assert set(final) == set(start)  # plain weights under the model's own names: no adapter left
    moved = {k for k in start if not torch.equal(start[k], final[k])}
    assert moved == {f"model.layers.{i}.self_attn.{m}_proj.weight" for i in (0, 1) for m in "qv"}
    AutoModelForCausalLM.from_pretrained(run / "finetune" / "final")  # loads as any checkpoint


def test_merge_base_saves_the_finetuned_weights_averaged_with_the_start(
    tokens_free_run: Path, smollm2_tokenizer: Path, tmp_path: Path
) -> None:
    """WiSE-FT: `finetune.merge_base: w` saves (1 - w) x the finetuned weights + w x the weights it started from,
    and records the held-out loss of that average (the finetune's own is of the weights before it); the same
    finetune without it gives the finetuned weights themselves."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from phi1.train import train

    base = tiny_llama(smollm2_tokenizer, tmp_path / "llama")
    weights = {}
    for merge in ("0.0", "0.25"):
        run = tmp_path / f"run-{merge}"
        cfg = _finetune_run(tokens_free_run, base, run, f"finetune.merge_base={merge}", "finetune.max_steps=3",
                            "finetune.lr=1e-2", "finetune.bf16=off")  # fmt: skip
        m = train(run, cfg, "finetune")
        weights[merge] = load_file(str(run / "finetune" / "final" / "model.safetensors"))
        assert (m["merge_base"] or {}).get("weight") == (0.25 if merge == "0.25" else None)
        if merge == "0.25":
            # The model that is evaluated is the average: its held-out loss is recorded beside the finetune's own.
            merged_val, tuned_val = m["merge_base"]["val_loss"], m["final_val"]["val_loss"]
            assert merged_val > 0 and abs(merged_val - tuned_val) > 1e-4, (merged_val, tuned_val)
            saved = json.loads((run / "finetune" / "manifest.json").read_text())
            assert saved["merge_base"]["val_loss"] == merged_val
    start = load_file(str(run / "pretrain" / "final" / "model.safetensors"))
    tuned, merged = weights["0.0"], weights["0.25"]
    assert set(merged) == set(tuned) == set(start)
    moved = [k for k in start if not torch.equal(start[k], tuned[k])]
    assert len(moved) > 10  # the finetune moved the weights
    for k in start:
        assert torch.allclose(merged[k], 0.75 * tuned[k] + 0.25 * start[k], atol=1e-6), k
    AutoModelForCausalLM.from_pretrained(run / "finetune" / "final")  # loads as any checkpoint


@pytest.mark.parametrize("checkpointing", [False, True])
def test_freeze_layers_trains_only_the_layers_above_them(
    tokens_free_run: Path, smollm2_tokenizer: Path, tmp_path: Path, checkpointing: bool
) -> None:
    """`finetune.freeze_layers: 1` of a two-layer Llama: the embedding (tied, so the output layer too) and layer 0
    keep their weights, every weight above them moves, with activation checkpointing too; the manifest counts the
    trained parameters, and the FLOPs per token behind MFU count the backward pass above the frozen layers only."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig

    from phi1.model import count_parameters, flops_per_token
    from phi1.train import train

    base = tiny_llama(smollm2_tokenizer, tmp_path / "llama")
    run = tmp_path / "run"
    sets = ["finetune.freeze_layers=1", "finetune.max_steps=3", "finetune.lr=1e-2",
            f"finetune.activation_checkpointing={str(checkpointing).lower()}"]  # fmt: skip
    cfg = _finetune_run(tokens_free_run, base, run, *sets)
    m = train(run, cfg, "finetune")
    start = load_file(str(run / "pretrain" / "final" / "model.safetensors"))
    final = load_file(str(run / "finetune" / "final" / "model.safetensors"))
    moved = {k for k in start if not torch.equal(start[k], final[k])}
    assert moved == {k for k in start if k.startswith("model.layers.1.")} | {"model.norm.weight"}
    assert m["parameters"]["trained"] == sum(start[k].numel() for k in moved)
    mcfg = AutoConfig.from_pretrained(base)
    non_embedding = count_parameters(mcfg)["non_embedding"]
    assert m["flops_per_token"] == flops_per_token(mcfg, 64, non_embedding, frozen_layers=1)
    assert m["flops_per_token"] < flops_per_token(mcfg, 64, non_embedding)


def test_flops_per_token_count_the_backward_pass_above_frozen_layers_only() -> None:
    from transformers import LlamaConfig

    from phi1.model import flops_per_token

    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4)
    n, t, d, depth = 1_000_000, 256, 64, 4
    assert flops_per_token(cfg, t, n) == 6 * n + 12 * depth * d * t
    assert isinstance(flops_per_token(cfg, t, n), int)  # as every manifest has held it
    # Half the layers frozen: the forward pass is whole (2N + 4LdT), the backward pass half (4N + 8LdT halved).
    assert flops_per_token(cfg, t, n, frozen_layers=2) == 2 * n + 4 * n / 2 + 4 * depth * d * t + 8 * depth * d * t / 2


def test_freezing_every_layer_or_with_lora_is_refused_in_one_line(
    tokens_free_run: Path, smollm2_tokenizer: Path, tmp_path: Path
) -> None:
    from phi1.config import load_config
    from phi1.train import train

    with pytest.raises(Phi1Error, match=r"finetune: freeze_layers and lora: .*one or the other") as err:
        load_config(None, ["finetune.freeze_layers=1", "finetune.lora={r: 4}"])
    assert "\n" not in str(err.value)
    base = tiny_llama(smollm2_tokenizer, tmp_path / "llama")
    run = tmp_path / "run"
    cfg = _finetune_run(tokens_free_run, base, run, "finetune.freeze_layers=2")
    with pytest.raises(Phi1Error, match=r"freeze_layers: 2 freezes all 2 decoder layers of this llama model") as err:
        train(run, cfg, "finetune")
    assert "\n" not in str(err.value)
    assert not (run / "finetune").exists()  # refused before the stage began


@pytest.mark.parametrize("checkpointing", [False, True])
def test_adding_adapters_asks_no_deprecated_transformers_name(
    smollm2_tokenizer: Path, tmp_path: Path, checkpointing: bool
) -> None:
    """transformers 5 warns on `is_gradient_checkpointing` (removed in v6): phi1 asked for it, and peft does while
    it wraps the model. A finetune's log must not carry a warning the user cannot act on; the adapters still
    let recomputed layers reach their weights (`enable_input_require_grads`) where checkpointing is on."""
    import warnings

    from transformers import AutoModelForCausalLM

    from phi1.config import load_config
    from phi1.train.build import checkpoint_layers
    from phi1.train.lora import add_adapters

    lm = AutoModelForCausalLM.from_pretrained(tiny_llama(smollm2_tokenizer, tmp_path / "llama"))
    checkpoint_layers(lm, checkpointing)  # as a finetune with train.activation_checkpointing does
    cfg = load_config(None, ["finetune.lora={r: 4}"]).finetune
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrapper = add_adapters(lm, cfg, world=1)
    assert wrapper is not None
    assert not [str(w.message) for w in caught if "is_gradient_checkpointing" in str(w.message)]
    hooked = lm.get_input_embeddings()._forward_hooks
    assert bool(hooked) == checkpointing  # the input-grad hook, only where layers are recomputed


@pytest.mark.parametrize("part", ["finetune.lora={r: 4}", "finetune.freeze_layers=1"])
def test_a_partial_finetune_resumed_from_a_checkpoint_ends_where_an_uninterrupted_one_does(
    tokens_free_run: Path, smollm2_tokenizer: Path, tmp_path: Path, part: str
) -> None:
    """LoRA's adapters or the layers above frozen ones: the optimizer holds the trained parameters only, and a
    resumed run restores it and ends on the same weights."""
    import shutil

    from safetensors.torch import load_file

    from phi1.train import train

    base = tiny_llama(smollm2_tokenizer, tmp_path / "llama")
    settings = (part, "finetune.max_steps=4", "finetune.checkpoint_every=2", "finetune.lr=1e-2",
                "finetune.keep_best=false", "finetune.dropout=0.1")  # fmt: skip
    whole = tmp_path / "whole"
    cfg = _finetune_run(tokens_free_run, base, whole, *settings)
    train(whole, cfg, "finetune")
    # As if killed after step 2: its checkpoint is the last thing written.
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    shutil.rmtree(cut / "finetune" / "final")
    manifest = json.loads((cut / "finetune" / "manifest.json").read_text())
    (cut / "finetune" / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    assert (cut / "finetune" / "checkpoints" / "step-0000002" / "adapters.safetensors").exists() is ("lora" in part)
    m = train(cut, cfg, "finetune", resume=True)
    assert m["resumed_from"] == 2
    a = load_file(str(whole / "finetune" / "final" / "model.safetensors"))
    b = load_file(str(cut / "finetune" / "final" / "model.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)


def test_a_gguf_tokenizer_is_rebuilt_as_llama_cpp_tokenizes(smollm2_tokenizer: Path) -> None:
    """SmolLM2's GGUF names llama.cpp's `smollm` pre-tokenizer (every digit alone), which transformers' reader
    does not rebuild; phi1 puts it back (benchmarks/gguf_tokenizer.py compares 66k tokens with llama.cpp)."""
    from transformers import AutoTokenizer

    from conftest import smollm2_gguf

    text = "x = 12 + 3\n    1"
    ours = AutoTokenizer.from_pretrained(smollm2_tokenizer)
    # llama.cpp (llama-cpp-python 0.3.36) on the same GGUF file gives these tokens.
    llama_cpp = ["x", "Ġ=", "Ġ", "1", "2", "Ġ+", "Ġ", "3", "ĊĠĠĠĠ", "1"]
    assert ours.convert_ids_to_tokens(ours(text)["input_ids"]) == llama_cpp
    gguf = smollm2_gguf()
    plain = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    assert plain.convert_ids_to_tokens(plain(text)["input_ids"])[-3:] == ["ĊĠĠĠ", "Ġ", "1"]  # what it fixes


def test_ablate_refuses_a_study_of_pretraining_data_when_nothing_is_pretrained(
    tokens_free_run: Path, smollm2_tokenizer: Path, tmp_path: Path
) -> None:
    """A base finetuned as it is (`pretrain.max_steps: 0`, as `make run`'s demo) has no pretraining to ablate:
    Figure 2.1's (a) and (b) would both be the base itself, and every pass of the epochs study too. Refused in one
    line naming the setting that gives the study its steps, before anything is written."""
    from phi1.ablate import ablate_epochs, ablate_figure

    base = tiny_llama(smollm2_tokenizer, tmp_path / "llama")
    run = tmp_path / "run"
    cfg = _finetune_run(tokens_free_run, base, run)
    for study, setting in ((ablate_figure, "ablate.pretrain_steps"), (ablate_epochs, "ablate.epochs_steps")):
        with pytest.raises(Phi1Error, match=rf"pretrain.max_steps 0.*set {setting}") as err:
            study(run, cfg)
        assert "\n" not in str(err.value)
    assert not (run / "ablate").exists() and not (run / "ablate_epochs").exists()


def test_ablate_contamination_asks_each_model_as_the_evaluate_stage_does(
    tokens_free_run: Path, smollm2_tokenizer: Path, tmp_path: Path
) -> None:
    """The contamination study's finetuned models are asked in the format they were trained in, as the evaluate
    stage asks them: exercises written as completions are evaluated as completions, though the base's tokenizer
    has a chat template."""
    from phi1.ablate import ablate_contamination

    base = tiny_llama(smollm2_tokenizer, tmp_path / "llama")
    run = tmp_path / "run"
    cfg = _finetune_run(tokens_free_run, base, run, "finetune.format=completion", "finetune.max_steps=2",
                        "ablate.finetune_steps=2", "evaluate.max_new_tokens=4")  # fmt: skip
    ablate_contamination(run, cfg)
    for variant in ("all", "pruned"):
        summary = run / "ablate_contamination" / variant / "eval" / "humaneval" / "summary.json"
        assert json.loads(summary.read_text())["chat"] is False, variant


def test_ablate_figure_and_epochs_with_a_base_continue_the_bases_pretraining_on_each_variant(
    tokens_free_run: Path, smollm2_tokenizer: Path, tmp_path: Path
) -> None:
    """Figure 2.1 with a base model and `ablate.pretrain_steps`: each variant continues the base's pretraining on
    its own data (the unfiltered corpus, or the curated code and textbook), in the base's architecture and
    tokenizer, and is asked as the evaluate stage asks a base; (c) finetunes (b). The epochs study continues it
    too."""
    import torch
    from safetensors.torch import load_file

    from phi1.ablate import ablate_epochs, ablate_figure
    from phi1.curate.corpus import build_corpus

    base = tiny_llama(smollm2_tokenizer, tmp_path / "llama")
    run = tmp_path / "run"
    cfg = _finetune_run(tokens_free_run, base, run, "corpus.max_files=30", "ablate.pretrain_steps=2",
                        "ablate.finetune_steps=2", "evaluate.max_new_tokens=4")  # fmt: skip
    build_corpus(run, cfg)
    manifest = ablate_figure(run, cfg)
    assert set(manifest["results"]) == {"unfiltered", "textbook", "exercises"} and manifest["pretrain_steps"] == 2
    start = load_file(base / "model.safetensors")["model.embed_tokens.weight"]
    trained = {}
    for variant, model in (("unfiltered", "pretrain"), ("textbook", "pretrain"), ("textbook", "finetune")):
        final = run / "ablate" / variant / model / "final"
        assert json.loads((final / "config.json").read_text())["model_type"] == "llama", (variant, model)
        weights = load_file(final / "model.safetensors")["model.embed_tokens.weight"].float()
        # Continued from the base: 2 steps away from its weights, where a fresh model would be as far as two
        # random initialisations are.
        moved = ((weights - start).norm() / start.norm()).item()
        assert 0 < moved < 0.2, (variant, model, moved)
        trained[variant, model] = weights
    assert not torch.equal(trained["unfiltered", "pretrain"], trained["textbook", "pretrain"])  # their own data
    for variant in ("unfiltered", "textbook"):
        summary = json.loads((run / "ablate" / variant / ("eval" if variant == "unfiltered" else "eval-base") /
                              "humaneval" / "summary.json").read_text())  # fmt: skip
        assert summary["problems"] == 164 and summary["chat"] is True  # a base with a chat template, as evaluate asks

    # The epochs study continues the base the same way, once per number of passes.
    epochs = ablate_epochs(run, cfg.model_copy(update={"ablate": cfg.ablate.model_copy(
        update={"epochs_steps": 2, "epochs_passes": [1, 2]})}))  # fmt: skip
    assert [row["passes"] for row in epochs["results"]] == [1, 2] and all(r["val_loss"] for r in epochs["results"])
    size = sum(t.numel() for name, t in load_file(base / "model.safetensors").items())
    for passes in ("passes-01", "passes-02"):
        trained_manifest = json.loads((run / "ablate_epochs" / passes / "pretrain" / "manifest.json").read_text())
        assert trained_manifest["parameters"]["total"] == size  # the base's architecture, keyed on its files
        assert trained_manifest["derived_from"]["config"]["model"]["base"] == str(base), passes
