"""What every config section shares: the `Names` marker of a field that names a file, the `Section` base with
its execution-only fields, and the bf16 setting."""

from __future__ import annotations

from dataclasses import dataclass
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
