"""The mutation score of a test suite: run its tests against mutants of the reference solution, many mutants
in one sandbox program (`runner_program`), and count how many the tests kill.

`mutation_score` = killed / (killed + survived). Mutants that do not parse (`invalid`) or that run past their
alarm (`timeout`) are counted apart. When the reference itself does not pass its tests there is no score.
A mutant that takes its program down (os._exit, a limit) is counted as killed with what it broke, and the
mutants after it run in a program of their own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from phi1.mutation import mutants as mutants_module
from phi1.mutation.mutants import Mutant, mutants
from phi1.mutation.runner_program import REFERENCE_WALL
from phi1.sandbox import Limits, Sandbox, Verdict

RUNNER = (Path(__file__).parent / "runner_program.py").read_text(encoding="utf-8")
# Of a Score: bump with any change to how mutants are run or counted. 2: the reference is held to the dataset's
# own time limit, not the mutants' cap (a 5-10 s reference timed out and voided its score).
FORMAT = 2


@dataclass(frozen=True)
class Settings:
    """How mutants are made and run; every field changes a score (`identity`)."""

    max_mutants: int = 30  # per solution, chosen by `seed` over the kinds of change
    seed: int = 0
    factor: float = 10.0  # a mutant's alarm, on CPU time: this times the reference's ...
    floor_s: float = 0.005  # ... at least this ...
    cap_s: float = 5.0  # ... at most this
    max_survivors: int = 5  # survivors whose diffs are kept

    def identity(self) -> dict:
        return {**asdict(self), "mutants_format": mutants_module.FORMAT, "score_format": FORMAT}


@dataclass(frozen=True)
class Target:
    """A reference solution and its tests: `code` is run as the program, then each of `tests`; `setup` runs
    once before, trusted (its namespace is every program's start). Only lines from `first_line` on mutate."""

    id: str
    code: str
    tests: tuple[str, ...]
    setup: tuple[str, ...] = ()
    first_line: int = 1


@dataclass
class Score:
    id: str
    reference: str  # "passed", or how the reference failed its own tests (then nothing else is run)
    mutants: int = 0  # generated, valid or not
    killed: int = 0
    survived: int = 0
    timeout: int = 0
    invalid: int = 0
    killed_at: list[int] = field(default_factory=list)  # kills per test stage (HumanEval+: base, plus)
    survivors: list[dict] = field(default_factory=list)  # kind, line, diff of the first few survivors

    @property
    def run(self) -> int:
        return self.killed + self.survived

    @property
    def mutation_score(self) -> float | None:
        return self.killed / self.run if self.run else None

    def score_at(self, stage: int) -> float | None:
        """The score of the tests up to stage `stage` alone (a mutant killed later survived those)."""
        return sum(self.killed_at[: stage + 1]) / self.run if self.run else None

    def as_row(self) -> dict:
        return {**asdict(self), "run": self.run, "mutation_score": self.mutation_score}


def runner_stage(
    reference: str, sources: list[str], first: int, tests: Iterable[str], settings: Settings, limits: Limits
) -> str:
    """The sandbox stage that runs `tests` against `reference` (within `limits`' time) and then each of
    `sources` (mutants numbered from `first`, each within the settings' cap)."""
    return RUNNER + runner_call(reference, sources, first, tests, settings, limits)


def runner_call(
    reference: str, sources: list[str], first: int, tests: Iterable[str], settings: Settings, limits: Limits
) -> str:
    """`runner_stage` for a program whose earlier stage (`guard_stage`) already defined the runner."""
    args = [reference, sources, first, list(tests), settings.factor, settings.floor_s, settings.cap_s]
    return f"_phi1_mutation_run(*{[*args, reference_s(settings, limits)]!r})\n"


def reference_s(settings: Settings, limits: Limits) -> float:
    """The reference's CPU limit: the dataset's own time limit for a program, never under a mutant's cap."""
    return max(settings.cap_s, limits.timeout_s)


GUARD_TIMEOUT = "_Phi1VerifySlow"  # what the harness reports when a guard stage's alarm stops the program


def guard_stage(timeout_s: float) -> str:
    """A first stage that stops the stages after it at `timeout_s`, until a runner stage starts: one program
    can then verify a solution under its own time limit and go on to its mutants under theirs."""
    return RUNNER + f"\n_phi1_guard({float(timeout_s)!r})\n"


def program_limits(n_mutants: int, settings: Settings, base: Limits) -> Limits:
    # The reference and each mutant stop at their alarms (wall: `REFERENCE_WALL` times the reference's limit,
    # twice the cap for a mutant); the program as a whole is a backstop for code that ignores signals.
    return Limits(
        timeout_s=REFERENCE_WALL * reference_s(settings, base) + 2 * settings.cap_s * n_mutants + 5.0,
        memory_mb=base.memory_mb,
        output_bytes=max(base.output_bytes, 4 << 20),
    )


def score_target(sandbox: Sandbox, target: Target, settings: Settings, limits: Limits) -> Score:
    """Generate `target`'s mutants and run them, as many per program as finish."""
    chosen = mutants(target.code, target.first_line, settings.max_mutants, seed_of(target, settings))
    return finish_score(sandbox, target, chosen, settings, limits, None)


def finish_score(
    sandbox: Sandbox,
    target: Target,
    chosen: list[Mutant],
    settings: Settings,
    limits: Limits,
    first_run: Verdict | None,
) -> Score:
    """Score `target` on `chosen`, starting from `first_run` (the verdict of a program that already ran the
    runner stage after the tests, as `phi1 synth exercises` does) or from nothing."""
    # Mutants are compiled in the sandbox, which reports one that does not parse as invalid.
    valid = chosen
    score = Score(target.id, "passed", mutants=len(chosen))
    score.killed_at = [0] * len(target.tests)
    statuses: dict[int, str] = {}
    verdict = first_run
    while len(statuses) < len(valid):
        if verdict is None:
            first = len(statuses)
            sources = [m.source for m in valid[first:]]
            stage = runner_stage(target.code, sources, first, target.tests, settings, limits)
            verdict = sandbox.run([*target.setup, stage], program_limits(len(sources), settings, limits))
        reference, found = parse_output(verdict.stdout)
        if reference is None or reference[0] != "passed":
            score.reference = _reference_failure(reference, verdict)
            return score
        statuses.update(found)
        if len(statuses) < len(valid):
            # The program ended at the first mutant it did not report: that mutant took it down.
            statuses[len(statuses)] = "timeout" if verdict.status == "timeout" else "killed -1"
        verdict = None
    for m, i in zip(valid, range(len(valid)), strict=True):
        _count(score, m, statuses[i], target, settings)
    return score


def parse_output(stdout: str) -> tuple[tuple[str, float] | None, dict[int, str]]:
    """The reference's (status, seconds) and each reported mutant's status, from a runner's printout, up to
    the first gap (a mutant reported after a gap cannot be trusted to follow its predecessors)."""
    reference: tuple[str, float] | None = None
    found: dict[int, str] = {}
    for line in stdout.splitlines():
        if line.startswith("PHI1-REF ") and reference is None:
            _, status, took = [*line.split(), "", ""][:3]
            seconds = float(took) if took.replace(".", "", 1).isdigit() else 0.0
            reference = (status.replace(":", " ").replace("survived", "passed"), seconds)
        elif line.startswith("PHI1-MUTANT ") and reference is not None:
            _, index, *status = line.split()
            found[int(index)] = " ".join(status)
    contiguous, i = {}, min(found, default=0)
    while i in found:
        contiguous[i] = found[i]
        i += 1
    return reference, contiguous


def _reference_failure(reference: tuple[str, float] | None, verdict: Verdict) -> str:
    if reference is not None:
        return "timeout" if reference[0] == "timeout" else "failed"
    return verdict.status if verdict.status != "passed" else "failed"


def _count(score: Score, m: Mutant, status: str, target: Target, settings: Settings) -> None:
    if status == "survived":
        score.survived += 1
        if len(score.survivors) < settings.max_survivors:
            score.survivors.append({"kind": m.kind, "line": m.line, "diff": m.diff(target.code)})
    elif status == "timeout":
        score.timeout += 1
    elif status == "invalid":
        score.invalid += 1
    else:
        score.killed += 1
        stage = int(status.split()[1]) if len(status.split()) > 1 else -1
        # Killed while defining the function (stage -1: at import) counts for the first test stage.
        score.killed_at[max(stage, 0)] += 1


def seed_of(target: Target, settings: Settings) -> int:
    """A solution's own seed: the same solution gets the same mutants wherever it appears."""
    digest = hashlib.sha256(json.dumps([settings.seed, target.code]).encode()).hexdigest()
    return int(digest[:12], 16)


def score_all(
    sandbox: Sandbox,
    targets: list[Target],
    settings: Settings,
    limits: Limits,
    on_done: Callable[[Score], None] | None = None,
) -> Iterator[Score]:
    """Every target's score, in order, on the sandbox's workers."""
    with ThreadPoolExecutor(max_workers=sandbox.workers) as pool:
        futures = [pool.submit(score_target, sandbox, t, settings, limits) for t in targets]
        for fut in futures:
            score = fut.result()
            if on_done is not None:
                on_done(score)
            yield score
