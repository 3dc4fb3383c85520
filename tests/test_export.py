"""`phi1 export`: a checkpoint as GGUF for llama.cpp's phi2, read back with the gguf package's own reader.
(llama.cpp itself loading and generating: benchmarks/gguf_export.py.)"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import phi1_cmd
from phi1.export import rope_parameters

gguf = pytest.importorskip("gguf")  # a dev dependency: make setup installs it


def _state(checkpoint: Path) -> dict[str, np.ndarray]:
    from safetensors.torch import load_file

    return {k: v.float().numpy() for k, v in load_file(checkpoint / "model.safetensors").items()}


def _field(reader: object, key: str) -> object:
    f = reader.fields[key]  # type: ignore[attr-defined]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode()
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        return len(f.data)
    return f.parts[f.data[0]].tolist()[0]


def _export(tmp_path: Path, checkpoint: Path, dtype: str, cli_env: dict) -> Path:
    out = tmp_path / f"model-{dtype}.gguf"
    proc = subprocess.run(phi1_cmd("export", "--checkpoint", str(checkpoint), "--format", "gguf", "--dtype", dtype,
                                   "--out", str(out)), env=cli_env, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout and "ollama create" in proc.stdout
    return out


def test_f16_and_q8_0_read_back_as_the_checkpoint(tmp_path: Path, tiny_checkpoint: Path, cli_env: dict) -> None:
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    state = _state(tiny_checkpoint)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.PHI2, config["num_hidden_layers"])
    for dtype in ("f16", "q8_0"):
        reader = gguf.GGUFReader(_export(tmp_path, tiny_checkpoint, dtype, cli_env))
        tensors = {t.name: t for t in reader.tensors}
        assert set(tensors) == {names.get_name(k, try_suffixes=(".weight", ".bias")) for k in state}
        for key, want in state.items():
            t = tensors[names.get_name(key, try_suffixes=(".weight", ".bias"))]
            got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(want.shape)
            if want.ndim == 1:  # norms and biases: float32, exactly
                assert t.tensor_type == gguf.GGMLQuantizationType.F32 and np.array_equal(got, want), key
            elif dtype == "f16":
                assert t.tensor_type == gguf.GGMLQuantizationType.F16, key
                assert np.array_equal(got, want.astype(np.float16).astype(np.float32)), key
            else:
                # q8_0: per block of 32, int8s q = round(x / d) with d = max|x| / 127, and d stored as f16
                # (relative error <= 2^-11): |q * d16 - x| <= d / 2 + 127 * d * 2^-11.
                assert t.tensor_type == gguf.GGMLQuantizationType.Q8_0, key
                blocks = want.reshape(-1, 32)
                d = np.abs(blocks).max(axis=1, keepdims=True) / 127
                err = np.abs(got.reshape(-1, 32) - blocks)
                assert np.all(err <= d * (0.5 + 127 * 2.0**-11) + 1e-9), key
                assert err.max() > 0  # it did quantize
        # What llama.cpp's phi2 loader reads (llama-model.cpp, LLM_ARCH_PHI2), and the tokenizer it builds.
        head_dim = config["hidden_size"] // config["num_attention_heads"]
        expect = {
            "general.architecture": "phi2",
            "phi2.context_length": config["max_position_embeddings"],
            "phi2.embedding_length": config["hidden_size"],
            "phi2.feed_forward_length": config["intermediate_size"],
            "phi2.block_count": config["num_hidden_layers"],
            "phi2.attention.head_count": config["num_attention_heads"],
            "phi2.attention.head_count_kv": config["num_attention_heads"],
            "phi2.rope.dimension_count": int(rope_parameters(config)["partial_rotary_factor"] * head_dim),
            "general.file_type": 1 if dtype == "f16" else 7,
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.pre": "gpt-2",
            "tokenizer.ggml.tokens": config["vocab_size"],
            "tokenizer.ggml.eos_token_id": config["eos_token_id"],
            "tokenizer.ggml.add_bos_token": False,
        }
        assert {k: _field(reader, k) for k in expect} == expect
        eps = _field(reader, "phi2.attention.layer_norm_epsilon")
        assert eps == pytest.approx(config["layer_norm_eps"])
        tok = json.loads((tiny_checkpoint / "tokenizer.json").read_text())
        assert _field(reader, "tokenizer.ggml.merges") == len(tok["model"]["merges"]) > 0
        tokens = reader.fields["tokenizer.ggml.tokens"]
        assert bytes(tokens.parts[tokens.data[0]]).decode() == "<|endoftext|>"
        modelfile = (tmp_path / f"model-{dtype}.Modelfile").read_text()
        assert f"FROM ./model-{dtype}.gguf" in modelfile and 'PARAMETER stop "<|endoftext|>"' in modelfile


def test_what_llama_cpp_cannot_load_is_refused_in_one_line(tmp_path: Path, tiny_checkpoint: Path, cli_env) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    def refused(folder: Path, message: str) -> None:
        out = tmp_path / "x.gguf"
        proc = subprocess.run(phi1_cmd("export", "--checkpoint", str(folder), "--out", str(out)), env=cli_env,
                              capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()

    wordlevel = tmp_path / "wordlevel"
    shutil.copytree(tiny_checkpoint, wordlevel)
    tok = Tokenizer(models.WordLevel({"<|endoftext|>": 0, "a": 1}, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(wordlevel / "tokenizer.json"))
    refused(wordlevel, "a WordLevel tokenizer: llama.cpp's gpt2 tokenizer is byte-level BPE")

    metaspace = tmp_path / "metaspace"
    shutil.copytree(tiny_checkpoint, metaspace)
    spec = json.loads((metaspace / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
    (metaspace / "tokenizer.json").write_text(json.dumps(spec))
    refused(metaspace, "pre_tokenizer is not GPT-2's byte-level one")

    qk = tmp_path / "qk"
    shutil.copytree(tiny_checkpoint, qk)
    config = json.loads((qk / "config.json").read_text())
    (qk / "config.json").write_text(json.dumps({**config, "qk_layernorm": True}))
    refused(qk, "qk_layernorm: llama.cpp's phi2 has no q/k layer norms")

    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", "not a checkpoint folder (no config.json)")


def test_a_llama_base_exports_to_llama_cpps_llama_with_q_and_k_interleaved(
    tmp_path: Path, smollm2_tokenizer: Path, cli_env: dict
) -> None:
    """A Llama-architecture model (SmolLM2's tokenizer, tied embeddings, grouped-query attention) read back: every
    tensor where llama.cpp's llama graph looks for it, q and k rows reordered from transformers' rotate-halves to
    llama.cpp's adjacent pairs, the tokenizer with SmolLM's digit-splitting pre-tokenizer and the chat template."""
    from conftest import tiny_llama

    checkpoint = tiny_llama(smollm2_tokenizer, tmp_path / "llama")
    config = json.loads((checkpoint / "config.json").read_text())
    state = _state(checkpoint)
    reader = gguf.GGUFReader(_export(tmp_path, checkpoint, "f16", cli_env))
    tensors = {t.name: t for t in reader.tensors}
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    assert set(tensors) == {names.get_name(k, try_suffixes=(".weight", ".bias")) for k in state}
    assert "output.weight" not in tensors  # tied: llama.cpp reads the token embedding instead
    d = config["hidden_size"] // config["num_attention_heads"]
    for key, want in state.items():
        t = tensors[names.get_name(key, try_suffixes=(".weight", ".bias"))]
        got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(want.shape)
        want16 = want if want.ndim == 1 else want.astype(np.float16).astype(np.float32)
        if key.endswith(("q_proj.weight", "k_proj.weight")):
            # Row 2i of each head is transformers' row i, row 2i + 1 its row d/2 + i.
            for h in range(want.shape[0] // d):
                for i in range(d // 2):
                    assert np.array_equal(got[h * d + 2 * i], want16[h * d + i]), key
                    assert np.array_equal(got[h * d + 2 * i + 1], want16[h * d + d // 2 + i]), key
        else:
            assert np.array_equal(got, want16), key
    expect = {
        "general.architecture": "llama",
        "llama.block_count": 2,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2,
        "llama.rope.dimension_count": d,
        "llama.vocab_size": 49152,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "smollm",
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.add_bos_token": False,
    }
    assert {k: _field(reader, k) for k in expect} == expect
    assert _field(reader, "llama.attention.layer_norm_rms_epsilon") == pytest.approx(config["rms_norm_eps"])
    assert "<|im_start|>" in _field(reader, "tokenizer.chat_template")


def test_an_architecture_llama_cpp_is_not_given_is_refused(tmp_path: Path, cli_env: dict) -> None:
    from transformers import GPTBigCodeConfig

    folder = tmp_path / "bigcode"
    GPTBigCodeConfig(n_embd=16, n_layer=1, n_head=2, vocab_size=64).save_pretrained(folder)
    out = tmp_path / "x.gguf"
    proc = subprocess.run(phi1_cmd("export", "--checkpoint", str(folder), "--out", str(out)), env=cli_env,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and not out.exists()
    assert "phi1 export writes phi, llama, mistral, qwen2 models for llama.cpp; gpt_bigcode is not one" in proc.stderr
