"""The steps of the recipe, declared once: what each run-directory folder's content depends on.

A *step* is one folder of the run directory with a key of its own (`corpus`, `annotations`, ...): it
declares what its output depends on, and its key is derived from that declaration (`phi1.keys`). The stages
that write the steps (`phi1.stages`) and the run directory that keys them (`phi1.rundir`) both read this
module; it imports no stage, so the run directory can key a folder without importing the recipe.

Format versions: bump a step's `format` in the same commit as any code change that changes what it writes,
and say why beside it; a run directory made by the old code is then redone with one line saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

from phi1.config import Config


@dataclass(frozen=True)
class Step:
    """One run-directory folder and everything its content depends on."""

    folder: str
    reads: tuple[str, ...]  # sections (`clean`), single fields (`evaluate.sandbox`), top-level fields (`seed`)
    inputs: tuple[str, ...] = ()  # folders it reads; their keys are part of its key
    optional: tuple[str, ...] = ()  # folders it reads where they exist (clean takes whichever sources ran)
    templates: tuple[str, ...] = ()  # prompt templates it renders (phi1/prompts/*.md)
    format: int = 2  # 2: keys derived from this declaration (every step, phi1 0.2)
    # (a switch field, what the step also reads and renders while it is on): clean's LLM judge
    when: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = ()

    def declared(self, config: Config) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(reads, templates) under `config`: a switch that is off adds nothing, so the teacher is in clean's
        key only while the judge is on."""
        reads, templates = self.reads, self.templates
        for switch, more, more_templates in self.when:
            section, _, name = switch.partition(".")
            if getattr(getattr(config, section), name):
                reads, templates = reads + more, templates + more_templates
        return reads, templates


CURATE_ANNOTATE = ("annotate_samples", "annotate_max_chars", "annotate_temperature", "annotate_max_tokens")
CURATE_EMBED = ("encoder", "max_tokens", "chunking", "max_chunks", "bf16")
CURATE_CLASSIFY = ("classifier", "n_estimators", "test_fraction", "score_threshold", "decision_threshold")
CURATE_KEEP = ("keep", "keep_threshold", "keep_fraction", "token_budget", "score_threshold")
SYNTH_SEEDS = ("topics_file", "audiences", "styles", "words_per_prompt", "temperature", "max_tokens")


def _fields(section: str, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{section}.{n}" for n in names)


STEPS: dict[str, Step] = {
    s.folder: s
    for s in (
        Step("corpus", ("corpus",)),
        Step(
            "annotations",
            (*_fields("curate", CURATE_ANNOTATE), "seed", "teacher"),
            inputs=("corpus",),
            templates=("annotate",),
        ),
        Step("embeddings", _fields("curate", CURATE_EMBED), inputs=("corpus",)),
        Step("classifier", (*_fields("curate", CURATE_CLASSIFY), "seed"), inputs=("annotations", "embeddings")),
        Step("filtered", _fields("curate", CURATE_KEEP), inputs=("classifier", "corpus", "embeddings")),
        Step(
            "textbook",
            ("synth.textbook_samples", *_fields("synth", SYNTH_SEEDS), "seed", "teacher"),
            templates=("textbook",),
            format=3,  # 3: the offline teacher's docstrings wrap at 100 columns
        ),
        Step(
            "exercises",
            (
                "synth.exercise_samples",
                *_fields("synth", SYNTH_SEEDS),
                "synth.verify_timeout_s",
                "synth.max_mutants",
                "synth.min_mutation_score",
                "synth.repair_attempts",
                "evaluate.sandbox",
                "seed",
                "teacher",
            ),
            templates=("exercise", "repair"),
            # 3: tests' mutation score, weak_tests, repair (bump with phi1.mutation's FORMATs too)
            # 4: the teacher names the function; the offline teacher's composed families and wrapped docstrings
            # 5: a repaired exercise keeps its first answer and what was wrong with it (first_answer, first_problem)
            # 6: mutation score format 2 (a reference gets the verify timeout, not the mutants' cap)
            format=6,
        ),
        Step(
            "clean",
            ("clean", "curate.encoder", "curate.max_tokens", "curate.bf16", "evaluate.sandbox"),
            optional=("exercises", "textbook", "filtered", "embeddings"),
            when=(("clean.llm_judge", ("teacher",), ("judge",)),),
            # 3: a band match counts at clean.minhash_threshold; signatures saved beside the band keys
            # 4: corpus functions run with the imports they use, nearest problems by source and by docstring
            # 5: counts.near_kept_by_jaccard
            # 6: the AST detector matches a problem's entry point and the functions it calls (not helper classes);
            #    MBPP/769's and /927's entry points (a parenthesised call was named `assert`)
            format=6,
        ),
        Step(
            "tokenizer",
            ("tokenize.tokenizer", "tokenize.vocab_size", "tokenize.train_sample_bytes", "model.base", "seed"),
            inputs=("clean",),
        ),
        # 3: exercises in finetune.format (prompt with the tokenizer's own special tokens), document starts
        Step("tokens", ("tokenize", "finetune.format", "seed"), inputs=("clean", "tokenizer"), format=3),
        Step("pretrain", ("pretrain", "model", "tokenize.tokenizer", "seed"), inputs=("tokens",)),
        Step("finetune", ("finetune", "model", "tokenize.tokenizer", "seed"), inputs=("tokens", "pretrain")),
        # 2: comparison.json (flips, McNemar, each gain's nearest exercise)
        Step("eval", ("evaluate",), inputs=("pretrain", "finetune"), optional=("clean",), format=2),
        # phi1 ablate: studies on the run's own data, beside the recipe's folders
        Step(
            "ablate",
            ("ablate.pretrain_steps", "ablate.finetune_steps", "pretrain", "finetune", "model", "evaluate", "seed"),
            inputs=("tokens", "tokenizer", "corpus"),
        ),
        Step(
            "ablate_epochs",
            ("ablate.epochs_passes", "ablate.epochs_steps", "pretrain", "model", "seed"),
            inputs=("tokens", "tokenizer"),
        ),
        Step(
            "ablate_contamination",
            ("ablate.finetune_steps", "finetune", "evaluate", "model", "tokenize.val_fraction", "seed"),
            inputs=("exercises", "clean", "tokens", "tokenizer", "pretrain"),
        ),
    )
}


def dependents(folder: str) -> set[str]:
    """Every step whose key holds `folder`'s key, directly or through others."""
    out: set[str] = set()
    frontier = {folder}
    while frontier:
        frontier = {s.folder for s in STEPS.values() if set(s.inputs + s.optional) & frontier} - out
        out |= frontier
    return out


def derived_keys(config: Config) -> dict[str, str]:
    """Every step's key from the config alone, each input taken as made by this config (what a full run
    writes): the generated key test walks the config fields through this."""
    from phi1.keys import key_parts

    keys: dict[str, str] = {}

    def key(folder: str) -> str:
        if folder not in keys:
            s = STEPS[folder]
            inputs = {i: key(i) for i in s.inputs + s.optional}
            keys[folder] = key_parts(config, *s.declared(config), inputs, s.format).key(folder)
        return keys[folder]

    for folder in STEPS:
        key(folder)
    return keys
