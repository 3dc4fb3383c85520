"""`execution`: one of the sample's functions, renamed to a problem's entry point, passes that problem's
tests in the sandbox: a twin, whatever its names, layout or algorithm (see `phi1.clean.twins`).

Teacher-written samples (exercises, textbook code: a few functions each) are swept against every problem of
each function's arity, shard by shard. Corpus files (many functions) propose candidates instead: in the
workers, each problem's best functions by name; in the driver, each problem's nearest file (by embedding)
with a function of its arity; once every shard is seen, those candidates run against the problem's tests.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from phi1.clean.detectors.base import Detector, ShardText
from phi1.clean.shards import read_texts, runnable
from phi1.clean.twins import Function, find_twins, functions_of, sweep_twins

SWEPT_KINDS = {"exercise", "textbook"}
MIN_NAME = 0.5  # name similarity for a candidate by name
MIN_COSINE = 0.75  # cosine for a problem's nearest file to be run
MIN_FUNCTION_COSINE = 0.5  # a corpus function's nearest problem below this is not run (measured: docs/cli.md)


@dataclass
class Candidates:
    """One shard's part: functions to sweep, each problem's best by name, each file's last function per arity."""

    swept: list[Function] = field(default_factory=list)  # teacher-written functions (sample = row)
    by_name: dict[int, list[tuple[float, int, Function]]] = field(default_factory=dict)  # problem -> top k
    last_of_arity: list[tuple[int, int, int]] = field(default_factory=list)  # (row, arity, function order)


class ExecutionDetector(Detector):
    name = "execution"

    def __init__(self) -> None:
        self.by_name: dict[int, list[tuple[float, int, int, Any]]] = {}  # problem -> [(score, shard, order, f)]
        self.by_cosine: dict[int, tuple[float, int, int, int]] = {}  # problem -> (cos, shard, order, doc)
        self.functions = 0  # corpus functions embedded on their own ...
        self.function_programs = 0  # ... and those run against their nearest problems (a program each)

    def scan(self, shard: ShardText) -> Candidates | None:
        if not shard.execution:
            return None
        index, arities = runnable(shard.source)
        out = Candidates()
        k_name = shard.thresholds.execution_k
        order = 0
        for row, text in zip(shard.rows.tolist(), shard.texts, strict=True):
            functions = functions_of(text, shard.kind, row)
            if shard.kind in SWEPT_KINDS:
                out.swept += functions
                continue
            last: dict[int, int] = {}
            for f in functions:
                for j, score in index.scores(f.name, MIN_NAME).items():
                    if arities[j] == f.arity:
                        _keep_top(out.by_name.setdefault(j, []), (score, order, f), k_name)
                last[f.arity] = order
                order += 1
            out.last_of_arity += [(row, a, o) for a, o in sorted(last.items())]
        for j in out.by_name:
            out.by_name[j].sort(key=lambda t: (t[0], t[1]), reverse=True)
        return out

    def fold(self, run: Any, k: int, rows: np.ndarray, scanned: Candidates | None, found: Any) -> None:
        if run.sandbox is None or scanned is None:
            return
        offset = run.shards[k].offset
        if scanned.swept:
            for twin in sweep_twins(scanned.swept, run.tests, run.arities, run.sandbox):
                found.add(offset + twin.sample, twin.problem, self.name, 1.0, True)
        for j, top in scanned.by_name.items():
            merged = self.by_name.setdefault(j, [])
            merged += [(score, k, order, f) for score, order, f in top]
            merged.sort(key=lambda t: (t[0], t[1], t[2]), reverse=True)
            del merged[run.thresholds.execution_k :]
        if run.cosine is not None:
            self._nearest_by_arity(scanned.last_of_arity, rows, run.cosine, run.arities, k, offset)
        if run.function_cosine is not None:
            choices = nearest_of_arity(run.function_cosine, run.functions, run.arities, run.thresholds.function_k)
            self.functions += len(choices)
            self.function_programs += sum(bool(c) for c in choices)
            for twin in sweep_twins(run.functions, run.tests, run.arities, run.sandbox, choices=choices):
                found.add(twin.sample, twin.problem, self.name, 1.0, True)

    def _nearest_by_arity(
        self,
        last_of_arity: list[tuple[int, int, int]],
        rows: np.ndarray,
        cos: np.ndarray,
        arities: list[int | None],
        shard: int,
        offset: int,
    ) -> None:
        """Per problem, the corpus file nearest to it among those with a function of the problem's arity."""
        if not last_of_arity or not cos.size:
            return
        position = {int(r): i for i, r in enumerate(rows.tolist())}
        by_arity: dict[int, list[tuple[int, int]]] = {}
        for row, arity, order in last_of_arity:
            by_arity.setdefault(arity, []).append((position[row], order))
        for arity, members in by_arity.items():
            problems = [j for j, a in enumerate(arities) if a == arity]
            if not problems:
                continue
            at = np.array([m[0] for m in members])
            sub = cos[np.ix_(at, problems)]
            top = sub.argmax(axis=0)
            for col, j in enumerate(problems):
                m = int(top[col])
                entry = (float(sub[m, col]), shard, members[m][1], offset + int(rows[at[m]]))
                if entry[0] > self.by_cosine.get(j, (-np.inf,))[0]:
                    self.by_cosine[j] = entry

    def finish(self, run: Any, found: Any) -> None:
        """Run each problem's candidate corpus functions (best names, nearest file) against its tests."""
        found.notes[self.name] = {
            "corpus_functions": self.functions,
            "corpus_function_programs": self.function_programs,
        }
        if run.sandbox is None:
            return
        functions: list[Any] = []
        pairs: list[tuple[int, int]] = []
        for j, top in sorted(self.by_name.items()):
            for _, k, _, f in top:
                pairs.append((len(functions), j))
                functions.append(replace(f, sample=run.shards[k].offset + f.sample))
        wanted: dict[int, list[tuple[int, int]]] = {}  # shard -> [(doc, problem)] for the nearest files
        for j, (score, k, order, doc) in sorted(self.by_cosine.items()):
            if score >= MIN_COSINE and not any(kk == k and o == order for _, kk, o, _ in self.by_name.get(j, [])):
                wanted.setdefault(k, []).append((doc, j))
        for k, docs in sorted(wanted.items()):
            shard = run.shards[k]
            rows = np.array([doc - shard.offset for doc, _ in docs])
            for (doc, j), text in zip(docs, read_texts(shard.path, rows), strict=True):
                last = [f for f in functions_of(text, shard.kind, doc) if f.arity == run.arities[j]]
                if last:
                    pairs.append((len(functions), j))
                    functions.append(last[-1])
        for twin in find_twins(functions, run.tests, pairs, run.sandbox):
            found.add(twin.sample, twin.problem, self.name, 1.0, True)


def nearest_of_arity(cos: np.ndarray, functions: list[Function], arities: list[int | None], k: int) -> list[list[int]]:
    """Each function's `k` nearest problems of its own arity in each view of `cos` ([views, functions,
    problems]; the first view's first), at a cosine of at least MIN_FUNCTION_COSINE."""
    by_arity: dict[int, np.ndarray] = {}
    for a in {f.arity for f in functions}:
        by_arity[a] = np.array([j for j, n in enumerate(arities) if n == a], dtype=np.int64)
    out = []
    for i, f in enumerate(functions):
        same = by_arity[f.arity]
        chosen: dict[int, None] = {}
        for view in cos:
            row = view[i, same]
            best = np.argsort(-row, kind="stable")[:k] if len(same) else []
            chosen.update((int(same[b]), None) for b in best if row[b] >= MIN_FUNCTION_COSINE)
        out.append(list(chosen))
    return out


def _keep_top(heap: list[tuple[float, int, Function]], item: tuple[float, int, Function], k: int) -> None:
    """A min-heap of the k largest (score, order); Function never takes part in the comparison."""
    if len(heap) < k:
        heapq.heappush(heap, item)  # type: ignore[misc]
    elif (item[0], item[1]) > (heap[0][0], heap[0][1]):
        heapq.heapreplace(heap, item)  # type: ignore[misc]
