"""`phi1 tokenize` and `phi1 train`: the phi-1 model, a tiny pretraining run, exact resume, DDP on CPU."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import ROOT, cleaned_run, phi1_cmd
from phi1.config import load_config
from phi1.errors import Phi1Error
from phi1.model import PRESETS, count_parameters, model_config
from phi1.train.loop import targets
from phi1.train.schedule import lr_factor

# microsoft/phi-1's config.json, as published on the Hugging Face Hub (architecture fields).
MICROSOFT_PHI_1 = {
    "architectures": ["PhiForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": None,
    "embd_pdrop": 0.0,
    "eos_token_id": None,
    "hidden_act": "gelu_new",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 2048,
    "model_type": "phi",
    "num_attention_heads": 32,
    "num_hidden_layers": 24,
    "num_key_value_heads": None,
    "partial_rotary_factor": 0.5,
    "qk_layernorm": False,
    "resid_pdrop": 0.0,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "use_cache": True,
    "vocab_size": 51200,
}


def test_phi1_preset_matches_microsoft_phi1_field_by_field() -> None:
    from transformers import PhiConfig

    # microsoft/phi-1's file as transformers reads it (None heads -> all heads, rope fields grouped, ...).
    reference = PhiConfig(**{k: v for k, v in MICROSOFT_PHI_1.items() if k != "model_type"}).to_dict()
    ours = model_config("phi-1").to_dict()
    ignore = {"architectures", "transformers_version", "dtype", "torch_dtype"}
    fields = sorted((set(reference) | set(ours)) - ignore)
    assert len(fields) > 20
    for key in fields:
        assert ours.get(key) == reference.get(key), (key, ours.get(key), reference.get(key))


def test_parameter_counts() -> None:
    assert count_parameters(model_config("phi-1"))["total"] == 1_418_270_720  # microsoft/phi-1: 1.418B
    small = count_parameters(model_config("phi-1-small"))["total"]
    assert 330e6 < small < 370e6  # the paper's ~350M
    assert 50e6 <= count_parameters(model_config("small"))["total"] <= 100e6
    assert count_parameters(model_config("tiny"))["total"] < 5e6
    c = model_config("phi-1-small")
    assert (c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads) == (20, 1024, 4096, 16)
    assert c.hidden_size // c.num_attention_heads * c.rope_parameters["partial_rotary_factor"] == 32  # rotary dim 32
    assert set(PRESETS) == {"tiny", "small", "phi-1-small", "phi-1"}


def test_schedule_is_linear_warmup_then_linear_decay() -> None:
    assert [round(lr_factor(s, 4, 10), 3) for s in range(10)] == [
        0.25,
        0.5,
        0.75,
        1.0,
        1.0,
        0.833,
        0.667,
        0.5,
        0.333,
        0.167,
    ]
    assert lr_factor(9, 4, 10, min_ratio=0.5) == pytest.approx(0.5833, abs=1e-3)


def test_solution_only_targets() -> None:
    ids = np.array([[5, 6, 7, 8, 9]])
    mask = np.array([[0, 0, 1, 1, 1]], dtype=bool)
    assert targets(ids, mask, True).tolist() == [[-100, 7, 8, 9]]
    assert targets(ids, mask, False).tolist() == [[6, 7, 8, 9]]


SETTINGS = [
    "tokenize.seq_len=64",
    "tokenize.vocab_size=1024",
    "synth.textbook_samples=60",
    "synth.exercise_samples=60",
    "model.overrides={num_hidden_layers: 2, hidden_size: 64, intermediate_size: 256, num_attention_heads: 4}",
    "pretrain.humaneval_loss=false",
    "finetune.humaneval_loss=false",
    # Training tests need clean, tokenized data, not the decontamination (tests/test_decontam.py): no sweep
    # of every exercise through the benchmarks' tests, no MiniLM.
    "clean.execution=false",
    "clean.encoder=hashing",
]


@pytest.fixture(scope="module")
def tokens_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with synthetic data, cleaned and tokenized (the offline teacher)."""
    from phi1.tokenize import tokenize

    run_dir = cleaned_run(tmp_path_factory.mktemp("train-run"), SETTINGS)
    tokenize(run_dir, load_config(None, SETTINGS))
    return run_dir


def _solution_loss(model_dir: Path, tokens_dir: Path) -> float:
    """Mean cross-entropy of a checkpoint on the solution tokens of the whole finetuning set."""
    import torch
    from transformers import AutoModelForCausalLM

    from phi1.tokenize import TokenShards

    data = TokenShards(tokens_dir, "finetune")
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids, mask = data.sequences(np.arange(data.n_sequences))
    with torch.no_grad():
        logits = model(torch.from_numpy(ids)).logits[:, :-1]
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), torch.from_numpy(ids[:, 1:]), reduction="none")
    return float(losses[torch.from_numpy(mask[:, 1:])].mean())


def _copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("clean", "tokenizer", "tokens", "textbook", "exercises"):
        shutil.copytree(src / name, dst / name)
    return dst


def _losses(run_dir: Path, phase: str = "pretrain") -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / phase / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_tokenize_packs_with_eos_and_masks(tokens_run: Path) -> None:
    index = json.loads((tokens_run / "tokens" / "index.json").read_text())
    assert index["dtype"] == "uint16" and index["seq_len"] == 64
    files = index["files"]
    assert files["pretrain"]["tokens"] > 0 and files["finetune"]["tokens"] > 0
    ids = np.fromfile(tokens_run / "tokens" / "finetune.bin", dtype=np.uint16)
    mask = np.fromfile(tokens_run / "tokens" / "finetune.mask.bin", dtype=np.uint8)
    assert len(ids) == len(mask) and 0 < mask.mean() < 1
    eos = index["eos_token_id"]
    assert (ids == eos).sum() == files["finetune"]["documents"]  # one separator per exercise
    assert mask[ids == eos].all()  # the end of a solution is part of it
    from phi1.tokenize import load_tokenizer

    tok = load_tokenizer(tokens_run / "tokenizer")
    text = "def f(x):\n        return x\n"
    assert tok.decode(tok(text)["input_ids"]) == text  # whitespace runs survive
    assert len(tok("        ")["input_ids"]) <= 2


def test_tiny_pretraining_loss_falls_and_checkpoint_generates(tokens_run: Path, tmp_path: Path) -> None:
    from phi1.train import train

    run_dir = _copy_run(tokens_run, tmp_path / "run")
    cfg = load_config(
        None,
        [
            *SETTINGS,
            "pretrain.max_steps=150",
            "pretrain.batch_size=16",
            "pretrain.micro_batch_size=8",
            "pretrain.lr=3e-3",
            "pretrain.warmup_steps=5",
            "pretrain.eval_every=50",
            "pretrain.checkpoint_every=25",
            "pretrain.log_every=1",
        ],
    )
    m = train(run_dir, cfg, "pretrain")
    losses = _losses(run_dir)
    assert len(losses) == 150 and m["final_loss"] < 0.6 * m["first_loss"], (m["first_loss"], m["final_loss"])
    assert m["final_val"]["val_loss"] < m["first_loss"] and m["grad_accumulation"] == 2
    assert (run_dir / "pretrain" / "tensorboard").exists()
    assert m["kernels"] == "torch" and m["peak_memory_gb"] > 0  # auto on a CPU: the plain loss

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = run_dir / "pretrain" / "final"
    model = AutoModelForCausalLM.from_pretrained(final)
    tok = AutoTokenizer.from_pretrained(final)
    enc = tok("def add(a, b):\n", return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_token_id)
    assert out.shape[1] > enc["input_ids"].shape[1]
    assert isinstance(tok.decode(out[0]), str)
    assert torch.isfinite(model(**enc).logits).all()

    ft = load_config(
        None,
        [
            *SETTINGS,
            "pretrain.max_steps=60",
            "pretrain.batch_size=16",
            "pretrain.micro_batch_size=8",
            "pretrain.lr=3e-3",
            "pretrain.warmup_steps=5",
            "finetune.max_steps=10",
            "finetune.batch_size=8",
            "finetune.micro_batch_size=8",
            "finetune.lr=2e-3",  # ten steps: enough to move the loss for sure, whatever the exercises are
            "finetune.warmup_steps=2",
            "finetune.log_every=1",
        ],
    )
    before = _solution_loss(run_dir / "pretrain" / "final", run_dir / "tokens")
    train(run_dir, ft, "finetune")
    # One step's loss (8 sequences, some nearly all prompt) is noise; the loss on every solution token of the
    # finetuning set, before and after, is not.
    assert len(_losses(run_dir, "finetune")) == 10
    after = _solution_loss(run_dir / "finetune" / "final", run_dir / "tokens")
    assert after < 0.95 * before, (before, after)
    assert (run_dir / "finetune" / "final" / "model.safetensors").exists()


RESUME = [
    *SETTINGS,
    "pretrain.max_steps=40",
    "pretrain.batch_size=8",
    "pretrain.micro_batch_size=4",
    "pretrain.checkpoint_every=4",
    "pretrain.log_every=1",
    "pretrain.eval_every=100",
    "pretrain.bf16=off",
    "pretrain.warmup_steps=2",
    "pretrain.keep_checkpoints=5",
]


def _cli(run_dir: Path, *extra: str, env: dict) -> list[str]:
    args = ["train", "pretrain", "--run-dir", str(run_dir)]
    for s in RESUME:
        args += ["--set", s]
    return phi1_cmd(*args, *extra)


def test_killed_run_resumes_exactly(tokens_run: Path, tmp_path: Path, cli_env: dict) -> None:
    ref = _copy_run(tokens_run, tmp_path / "ref")
    proc = subprocess.run(_cli(ref, env=cli_env), env=cli_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    expected = _losses(ref)

    run = _copy_run(tokens_run, tmp_path / "killed")
    proc = subprocess.Popen(_cli(run, env=cli_env), env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = run / "pretrain" / "checkpoints" / "step-0000004"
    deadline = time.monotonic() + 300
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists()
    assert not (run / "pretrain" / "final").exists(), "the kill must land before the end"

    again = subprocess.run(_cli(run, env=cli_env), env=cli_env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "--resume" in again.stderr  # no silent restart over a run's checkpoints
    resumed = subprocess.run(
        _cli(run, "--resume", env=cli_env), env=cli_env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    got = _losses(run)
    assert sorted(got) == list(range(1, 41))
    assert got == expected  # the same loss at every step, bit for bit (fp32 on CPU)
    m = json.loads((run / "pretrain" / "manifest.json").read_text())
    assert m["resumed_from"] in range(4, 40, 4)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_match_one_process(tokens_run: Path, tmp_path: Path, cli_env: dict, parallel: str) -> None:
    settings = [s for s in RESUME if "keep_checkpoints" not in s] + [
        "pretrain.dropout=0.0",
        "pretrain.max_steps=6",
        "pretrain.micro_batch_size=2",
        f"pretrain.parallel={parallel}",
    ]
    args = [a for s in settings for a in ("--set", s)]
    one = _copy_run(tokens_run, tmp_path / "one")
    two = _copy_run(tokens_run, tmp_path / "two")
    env = {**cli_env, "OMP_NUM_THREADS": "1"}
    p1 = subprocess.run(
        phi1_cmd("train", "pretrain", "--run-dir", str(one), *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p1.returncode == 0, p1.stderr
    p2 = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(29500 + os.getpid() % 1000 + (parallel == "fsdp") * 1000),
            "-m",
            "phi1.cli",
            "train",
            "pretrain",
            "--run-dir",
            str(two),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert p2.returncode == 0, (p2.stdout[-2000:], p2.stderr[-3000:])
    m2 = json.loads((two / "pretrain" / "manifest.json").read_text())
    assert m2["world_size"] == 2 and m2["grad_accumulation"] == 2
    a, b = _losses(one), _losses(two)
    assert sorted(a) == sorted(b) == list(range(1, 7))
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=1e-4, abs=1e-5), (step, a[step], b[step])


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def test_bad_input_gives_one_clear_error(tokens_run: Path, tmp_path: Path, cli_env: dict) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run(
        phi1_cmd("train", "pretrain", "--run-dir", str(empty)), env=cli_env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "tokens" in proc.stderr
    run = _copy_run(tokens_run, tmp_path / "run")
    proc = subprocess.run(
        phi1_cmd(
            "train",
            "pretrain",
            "--run-dir",
            str(run),
            "--set",
            "pretrain.batch_size=30",
            "--set",
            "pretrain.micro_batch_size=8",
        ),
        env=cli_env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "batch_size 30 is not divisible by micro_batch_size 8" in proc.stderr
    if not torch_cuda_available():
        proc = subprocess.run(
            phi1_cmd("train", "pretrain", "--run-dir", str(run), "--set", "pretrain.kernels=liger"),
            env=cli_env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "train.kernels: liger runs on a CUDA GPU only" in proc.stderr
        assert not (run / "pretrain" / "checkpoints").exists()
    with pytest.raises(Phi1Error, match="unknown preset"):
        model_config("gigantic")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill_after_checkpoint(cmd: list[str], env: dict, ckpt: Path) -> None:
    """Start a training command and SIGKILL it with every process under it (torchrun's workers run in
    sessions of their own) once `ckpt` exists."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 300
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    for pid in [proc.pid, *_descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # the workers' exit
    assert ckpt.exists()
    assert not (ckpt.parents[1] / "final").exists(), "the kill must land before the end"


def test_an_execution_setting_never_deletes_checkpoints(tokens_run: Path, tmp_path: Path, cli_env: dict) -> None:
    run = _copy_run(tokens_run, tmp_path / "run")
    ckpts = run / "pretrain" / "checkpoints"
    _kill_after_checkpoint(_cli(run, env=cli_env), cli_env, ckpts / "step-0000004")
    before = _losses(run)
    last = max(int(p.name.split("-")[1]) for p in ckpts.glob("step-*") if not p.name.endswith(".tmp"))

    # Another micro-batch (and torch.compile off/on is the same kind of field): the run resumes where it was.
    resumed = subprocess.run(_cli(run, "--resume", "--set", "pretrain.micro_batch_size=2", env=cli_env), env=cli_env,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    m = json.loads((run / "pretrain" / "manifest.json").read_text())
    assert m["resumed_from"] == last and m["grad_accumulation"] == 4
    after = _losses(run)
    assert sorted(after) == list(range(1, 41))
    assert all(after[s] == before[s] for s in range(1, last + 1))  # what was logged before the kill is kept
    assert after[last + 1] < after[1]  # and the loss continues from the checkpoint, not from scratch

    # A setting that changes the model stops with the field named; the checkpoints stay.
    kept = sorted(p.name for p in ckpts.iterdir())
    changed = subprocess.run(_cli(run, "--resume", "--set", "pretrain.lr=0.002", "--set", "pretrain.max_steps=50",
                                  env=cli_env), env=cli_env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert changed.returncode == 2 and changed.stderr.count("\n") == 1, changed.stderr
    assert "lr: 0.001 -> 0.002" in changed.stderr and "--force" in changed.stderr
    assert sorted(p.name for p in ckpts.iterdir()) == kept and (run / "pretrain" / "final").exists()


def test_two_process_run_killed_and_resumed_matches_uninterrupted(tokens_run: Path, tmp_path: Path,
                                                                  cli_env: dict) -> None:  # fmt: skip
    # Dropout on: each rank draws its own masks, and a resume must give each rank back its own stream.
    settings = [s for s in RESUME if "keep_checkpoints" not in s and "max_steps" not in s] + [
        "pretrain.max_steps=12",
        "pretrain.micro_batch_size=2",
        "pretrain.checkpoint_every=3",
        "pretrain.keep_checkpoints=10",
        "pretrain.dropout=0.3",
    ]
    env = {**cli_env, "OMP_NUM_THREADS": "1"}
    port = 31000 + os.getpid() % 1000

    def torchrun(run_dir: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
                "-m", "phi1.cli", "train", "pretrain", "--run-dir", str(run_dir),
                *[a for s in settings for a in ("--set", s)], *extra]  # fmt: skip

    ref = _copy_run(tokens_run, tmp_path / "ref")
    done = subprocess.run(torchrun(ref), env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    run = _copy_run(tokens_run, tmp_path / "killed")
    _kill_after_checkpoint(torchrun(run), env, run / "pretrain" / "checkpoints" / "step-0000003")
    resumed = subprocess.run(torchrun(run, "--resume"), env=env, capture_output=True, text=True, timeout=600,
                             cwd=ROOT)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run / "pretrain" / "manifest.json").read_text())["resumed_from"] in (3, 6, 9)
    expected, got = _losses(ref), _losses(run)
    assert sorted(got) == list(range(1, 13))
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-6), (step, got[step], expected[step])


def test_paper_exact_checkpoints_keep_steps_init_from_and_best(tokens_run: Path, tmp_path: Path) -> None:
    from phi1.train import train

    run = _copy_run(tokens_run, tmp_path / "run")
    sets = [*SETTINGS, "pretrain.max_steps=16", "pretrain.batch_size=8", "pretrain.micro_batch_size=8",
            "pretrain.checkpoint_every=4", "pretrain.keep_checkpoints=1", "pretrain.keep_steps=[6]",
            "finetune.max_steps=12", "finetune.batch_size=8", "finetune.micro_batch_size=8", "finetune.eval_every=3",
            "finetune.lr=0.02", "finetune.warmup_steps=0"]  # fmt: skip
    train(run, load_config(None, sets), "pretrain")
    kept = sorted(p.name for p in (run / "pretrain" / "checkpoints").iterdir())
    assert kept == ["step-0000006", "step-0000012"]  # the named step for good, then the last one only

    with pytest.raises(Phi1Error, match="kept checkpoints: step-0000006, step-0000012"):
        train(run, load_config(None, [*sets, "finetune.init_from=step-0000024"]), "finetune")
    m = train(run, load_config(None, [*sets, "finetune.init_from=step-0000006"]), "finetune")
    # A high learning rate makes later steps worse on validation: `final` holds the best step's weights.
    vals = {r["step"]: r["val_loss"] for r in map(json.loads, (run / "finetune" / "metrics.jsonl").read_text()
            .splitlines()) if "val_loss" in r and r["step"] > 0}  # fmt: skip
    best_step = min(vals, key=vals.get)
    assert m["best"] == {"step": best_step, "val_loss": vals[best_step]}
    final = (run / "finetune" / "final" / "model.safetensors").read_bytes()
    assert final == (run / "finetune" / "best" / "model.safetensors").read_bytes()


def test_a_given_tokenizer_keeps_the_presets_embedding_rows() -> None:
    from phi1.train.build import vocab_rows as _vocab_rows

    class Sized:  # only its length matters: codegen's tokenizer has 50,295 tokens
        def __init__(self, n: int) -> None:
            self.n = n

        def __len__(self) -> int:
            return self.n

    given = load_config(None, ["model.preset=phi-1", "tokenize.tokenizer=/models/codegen-350M-mono"])
    assert _vocab_rows(given, Sized(50295)) == 51200  # as microsoft/phi-1
    assert _vocab_rows(given, Sized(60000)) == 60032  # too large for the preset: rounded up to 64
    assert _vocab_rows(load_config(None, ["model.preset=phi-1"]), Sized(4000)) == 4032  # a trained BPE


def test_kernels_auto_is_torch_off_cuda_and_a_fused_choice_fails_clearly() -> None:
    import torch

    from phi1.train.kernels import resolve_kernels

    cpu = torch.device("cpu")
    assert resolve_kernels("auto", cpu) == "torch" and resolve_kernels("torch", cpu) == "torch"
    for choice in ("liger", "cce"):
        with pytest.raises(Phi1Error, match=f"train.kernels: {choice} runs on a CUDA GPU only"):
            resolve_kernels(choice, cpu)
    with pytest.raises(Phi1Error, match="not one of auto, torch, liger, cce"):
        resolve_kernels("triton", cpu)


@pytest.mark.parametrize("bf16", [False, True])
def test_the_torch_kernels_path_is_the_loss_and_gradient_phi1_always_took(bf16: bool) -> None:
    """CPU runs are unchanged bit for bit: the loss module's torch path against the loss as the loop took it
    before the module existed (the model's logits, then a summed cross-entropy in fp32)."""
    import copy

    import torch
    import torch.nn.functional as F
    from transformers import PhiForCausalLM

    from phi1.precision import resolve
    from phi1.train.kernels import CausalLMLoss

    precision = resolve("on" if bf16 else "off", "cpu")
    torch.manual_seed(0)
    lm = PhiForCausalLM(model_config("tiny", {"vocab_size": 512}))
    twin = copy.deepcopy(lm)
    x = torch.randint(0, 512, (3, 33))
    y = x[:, 1:].clone()
    y[0, :10] = -100  # a prompt, as in a solution-only finetune
    loss = CausalLMLoss(lm, "torch", precision.autocast)(x, y)
    loss.backward()
    with precision.autocast():
        logits = twin(input_ids=x).logits[:, :-1]
    plain = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100,
                            reduction="sum")  # fmt: skip
    plain.backward()
    assert torch.equal(loss, plain)
    for (name, p), q in zip(lm.named_parameters(), twin.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad), name


def test_the_fused_path_takes_the_same_loss_from_the_hidden_states_and_output_layer() -> None:
    """What phi1 hands a fused kernel (the final hidden states, the output layer's weight and bias, the
    targets with the prompt masked), checked on CPU with the kernel's reference, an unfused linear +
    cross-entropy: the loss and every gradient agree with the plain path; and cut-cross-entropy's bias fold
    gives the output layer's logits."""
    import copy

    import torch
    import torch.nn.functional as F
    from transformers import PhiForCausalLM

    from phi1.train.kernels import CausalLMLoss, fold_bias

    def reference(hidden, weight, bias, targets):  # the signature of a fused kernel
        return F.cross_entropy(F.linear(hidden, weight, bias).float(), targets, ignore_index=-100, reduction="sum")

    torch.manual_seed(0)
    lm = PhiForCausalLM(model_config("tiny", {"vocab_size": 512}))
    twin = copy.deepcopy(lm)
    x = torch.randint(0, 512, (3, 33))
    y = x[:, 1:].clone()
    y[1, :20] = -100
    plain = CausalLMLoss(lm, "torch", contextlib.nullcontext)(x, y)
    fused = CausalLMLoss(twin, "liger", contextlib.nullcontext, fused=reference)(x, y)
    plain.backward()
    fused.backward()
    assert torch.allclose(plain, fused, rtol=1e-5)
    for (name, p), q in zip(lm.named_parameters(), twin.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6), name
    head = lm.get_output_embeddings()
    hidden = torch.randn(7, head.in_features)
    h, w = fold_bias(hidden, head.weight, head.bias)
    assert h.shape == (7, head.in_features + 1) and torch.allclose(h @ w.T, head(hidden), atol=1e-5)


def _fused_ready(kernels: str) -> str | None:
    """Why the fused path cannot run here (None: it can)."""
    import torch

    from phi1.train.kernels import installed

    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine: the fused kernels (Triton) run on CUDA only; NOT RUN, not passed"
    if not installed(kernels):
        return f"{kernels} is not installed (pip install 'phi1[gpu]'); NOT RUN, not passed"
    return None


@pytest.mark.parametrize("kernels", ["liger", "cce"])
def test_fused_loss_matches_the_plain_loss_over_50_steps(kernels: str, tokens_run: Path, tmp_path: Path) -> None:
    """On a GPU: 50 pretraining steps and 20 solution-only finetuning steps of the tiny preset, plain torch
    against the fused kernel, loss curves within 1% at every step (bf16 tolerance)."""
    reason = _fused_ready(kernels)
    if reason:
        pytest.skip(reason)
    from phi1.train import train

    curves = {}
    for choice in ("torch", kernels):
        run_dir = _copy_run(tokens_run, tmp_path / choice)
        phases = ("pretrain", "finetune")
        cfg = load_config(None, [*SETTINGS, *(f"{p}.{k}={v}" for p in phases for k, v in (
            ("kernels", choice), ("device", "cuda"), ("log_every", 1), ("eval_every", 1000),
            ("checkpoint_every", 1000), ("warmup_steps", 5),
        )), "pretrain.max_steps=50", "finetune.max_steps=20", "finetune.loss_on=solution"])  # fmt: skip
        train(run_dir, cfg, "pretrain")
        train(run_dir, cfg, "finetune")
        curves[choice] = (_losses(run_dir, "pretrain"), _losses(run_dir, "finetune"))
    for plain, fused in zip(curves["torch"], curves[kernels], strict=True):
        assert plain.keys() == fused.keys()
        for step, value in plain.items():
            assert abs(fused[step] - value) <= 0.01 * abs(value), (step, value, fused[step])


def test_activation_checkpointing_of_the_first_k_layers_recomputes_those_alone_and_changes_no_gradient() -> None:
    """`activation_checkpointing: k` keeps the activations of all but the first k layers (where the memory is
    bought back only as far as it pays); the gradients are those of no checkpointing, bit for bit."""
    import copy

    import torch
    from transformers import PhiForCausalLM

    from phi1.train.build import checkpoint_layers

    torch.manual_seed(0)
    base = PhiForCausalLM(model_config("tiny", {"vocab_size": 512, "resid_pdrop": 0.1, "attention_dropout": 0.1}))
    depth = len(base.model.layers)
    assert depth >= 3
    x = torch.randint(0, 512, (2, 17))
    grads, forwards = {}, {}
    for setting in (False, 0, 1, depth - 1, True):
        lm = copy.deepcopy(base).train()
        assert checkpoint_layers(lm, setting) == (depth if setting is True else int(setting))
        calls = [0] * depth  # each layer's MLP runs, counted in its forward (hooks stay out of the recompute)
        for i, layer in enumerate(lm.model.layers):
            layer.mlp.forward = _counted(layer.mlp.forward, calls, i)
        torch.manual_seed(1)  # the same dropout masks
        lm(input_ids=x, labels=x).loss.backward()
        grads[repr(setting)] = [p.grad for p in lm.parameters()]  # repr: True == 1 as a key
        forwards[repr(setting)] = calls
    assert forwards["False"] == forwards["0"] == [1] * depth
    assert forwards["1"] == [2] + [1] * (depth - 1)  # the first layer ran again in the backward pass
    assert forwards[repr(depth - 1)] == [2] * (depth - 1) + [1]
    assert forwards["True"] == [2] * depth
    for setting in grads:
        assert all(torch.equal(a, b) for a, b in zip(grads[setting], grads["False"], strict=True)), setting


def _counted(forward: Any, calls: list[int], i: int) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        calls[i] += 1
        return forward(*args, **kwargs)

    return run


def test_activation_checkpointing_takes_a_layer_count_and_refuses_a_negative_one() -> None:
    from phi1.errors import Phi1Error

    assert load_config(None, ["pretrain.activation_checkpointing=12"]).pretrain.activation_checkpointing == 12
    assert load_config(None, ["pretrain.activation_checkpointing=true"]).pretrain.activation_checkpointing is True
    with pytest.raises(Phi1Error, match="activation_checkpointing"):
        load_config(None, ["pretrain.activation_checkpointing=-1"])
