"""The docs say what the code does: the README's stage table is the registry's, and every example of
docs/extending.md runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_is_a_page_whose_stage_table_is_the_registry() -> None:
    from phi1.stages import stage_table

    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert stage_table() in readme
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).exists(), link


def test_every_example_of_the_extending_guide_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import phi1.pipeline  # noqa: F401 - imported first, as in a real session: it must see the new stage
    from phi1.clean.detectors import TYPES
    from phi1.stages import STAGES
    from phi1.steps import STEPS

    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "extending.md").read_text(), re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    registries = (STEPS, STAGES, TYPES)
    saved = [dict(r) for r in registries]
    try:
        for block in blocks:
            exec(compile(block, "docs/extending.md", "exec"), namespace)
    finally:  # the examples register a stage and a detector: no other test sees them
        for registry, before in zip(registries, saved, strict=True):
            registry.clear()
            registry.update(before)
    assert (tmp_path / "runs" / "example" / "textbook_stats" / "manifest.json").exists()
