"""Data stages at scale: sharded deduplication gives the in-memory decisions, the name index gives the
name similarity, and clean + tokenize give byte-identical outputs on every executor."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from phi1.clean.dedup import band_keys, doc_hashes, duplicate_of, exact_duplicates, minhash_duplicates
from phi1.clean.problems import load_benchmark_problems
from phi1.clean.shards import sign_jobs, sign_shard
from phi1.clean.twins import NameIndex, name_similarity
from phi1.config import CleanConfig, load_config
from phi1.minhash import near_duplicates
from phi1.rundir import Stage, write_shard

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def _stdlib_texts(n: int, max_bytes: int = 6000) -> list[str]:
    out = []
    for path in sorted(STDLIB.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if 200 < len(text) <= max_bytes:
            out.append(text)
        if len(out) == n:
            break
    return out


def _near_copy(text: str, rng: random.Random) -> str:
    """The text with one line in fifty changed: a near duplicate (Jaccard of 5-grams well above 0.72)."""
    lines = text.splitlines()
    for i in rng.sample(range(len(lines)), max(1, len(lines) // 50)):
        lines[i] = lines[i] + "  # edited"
    return "\n".join(lines) + "\n"


def test_name_index_scores_every_entry_point_as_name_similarity_does() -> None:
    entries = [p.entry_point for p in load_benchmark_problems(True, True) if p.entry_point]
    entries += ["f", "max_sum", "sum_of_sum"]  # no word of 3+ letters; a word twice
    index = NameIndex(entries)
    names = ["f", "F", "sum", "get_max_sum", "sumOfSums", "isPalindrome", "is_pal", "fib4", "x", "parseNested",
             "remove_dupes", "sorted_list_sum", "count_upper_vowels", "maximum", "HTTPServer", "_helper"]  # fmt: skip
    names += [e[::-1] for e in entries[:50]] + entries[::7]
    for name in names:
        want = {j: name_similarity(e, name) for j, e in enumerate(entries)}
        assert index.scores(name) == {j: s for j, s in want.items() if s > 0}, name


@pytest.mark.parametrize("shard_size", [1000, 37, 5])
def test_sharded_dedup_makes_the_in_memory_decisions(tmp_path: Path, shard_size: int) -> None:
    rng = random.Random(0)
    base = _stdlib_texts(120)
    texts = list(base)
    for _ in range(60):  # exact copies (with whitespace changes) and near copies, of earlier or later texts
        t = rng.choice(base)
        texts.insert(rng.randrange(len(texts) + 1), t + "\n\n" if rng.random() < 0.5 else _near_copy(t, rng))
    digests, key_files, sig_files = [], [], []
    for k, start in enumerate(range(0, len(texts), shard_size)):
        d, keys, sigs = doc_hashes(texts[start : start + shard_size], 5, 14, 8)
        digests.append(d)
        key_files.append(tmp_path / f"bands-{k}.npy")
        sig_files.append(tmp_path / f"sigs-{k}.npy")
        np.save(key_files[-1], keys)
        np.save(sig_files[-1], sigs)
    exact, dup, _ = duplicate_of(np.concatenate(digests), key_files, 14, sig_files, 0.65)

    want_exact = exact_duplicates(texts)
    alive = np.flatnonzero(~want_exact)
    near, of = minhash_duplicates([texts[i] for i in alive], 5, 14, 8, workers=1, threshold=0.65)
    want = np.full(len(texts), -1)
    want[alive[near]] = alive[of[near]]
    assert want_exact.sum() >= 20 and near.sum() >= 20  # both kinds were planted and found
    assert np.array_equal(exact, want_exact)
    assert np.array_equal(dup, want)


def test_a_shard_signed_in_batches_gets_the_hashes_of_all_its_texts_at_once(tmp_path: Path) -> None:
    rng = random.Random(2)
    base = _stdlib_texts(40, max_bytes=3000)
    texts = [rng.choice(base)[: rng.randrange(50, 3000)] for _ in range(1100)] + [""]  # 3 batches of 512
    write_shard(tmp_path / "data-00000.parquet", [{"id": str(i), "text": t} for i, t in enumerate(texts)])
    job = sign_jobs([tmp_path / "data-00000.parquet"], tmp_path, CleanConfig())[0]
    digests = sign_shard(job)
    want = doc_hashes(texts, 5, 14, 8)
    assert np.array_equal(digests, want[0])
    assert np.array_equal(np.load(job.keys_path), want[1]) and np.array_equal(np.load(job.sigs_path), want[2])


def _band_match_signatures() -> np.ndarray:
    """Four documents' signatures (14 bands x 8 rows): 1 shares band 0 with 0 and nothing else (an LSH false
    positive, estimated Jaccard 8/112); 2 is 0 with one value in nine changed (a near copy); 3 is 1 with one
    value of every band but band 0 changed, so the bucket of band 0 holds 0, 1 and 3, and 3 resembles 1."""
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 2**32, size=(4, 112), dtype=np.uint64).astype(np.uint32)
    sigs[1, :8] = sigs[0, :8]
    sigs[2] = sigs[0]
    sigs[2, ::9] += 1
    sigs[3] = sigs[1]
    sigs[3, 8::8] += 1
    return sigs


@pytest.mark.parametrize("threshold, want", [(0.0, [-1, 0, 0, 0]), (0.7, [-1, -1, 0, 1])])
def test_a_band_match_counts_only_at_the_estimated_jaccard_threshold(
    tmp_path: Path, threshold: float, want: list[int]
) -> None:
    sigs = _band_match_signatures()
    digests = np.arange(4, dtype=np.uint64)
    for k, rows in enumerate((slice(0, 2), slice(2, 4))):  # two shards: pairs across files are read too
        np.save(tmp_path / f"bands-{k}.npy", band_keys(sigs[rows], 14, 8))
        np.save(tmp_path / f"sigs-{k}.npy", sigs[rows])
    keys = [tmp_path / f"bands-{k}.npy" for k in range(2)]
    files = [tmp_path / f"sigs-{k}.npy" for k in range(2)]
    exact, dup, joined = duplicate_of(digests, keys, 14, files, threshold)
    assert not exact.any()
    assert dup.tolist() == want
    assert joined.tolist() == [False, True, True, True]  # 1 and 3 share 0's bucket of band 0, 2 shares many
    assert (joined & (dup < 0)).tolist() == [False, threshold > 0, False, False]  # the false positive, kept
    assert near_duplicates(sigs, 14, 8, threshold)[1].tolist() == want


def _scale_run(run_dir: Path) -> None:
    """A run directory with curated code in several shards (duplicates and one benchmark copy planted) and
    exercises, as curate and synth leave them."""
    rng = random.Random(1)
    texts = _stdlib_texts(150)
    texts += [texts[5], _near_copy(texts[9], rng), _near_copy(texts[30], rng)]
    he = {p.task_id: p for p in load_benchmark_problems(True, False)}["HumanEval/13"]
    texts.append(he.solution.replace("greatest_common_divisor", "gcd_of"))  # an execution and AST twin
    rng.shuffle(texts)
    stage = Stage(run_dir, "filtered", "k")
    stage.begin({}, {})
    for k, start in enumerate(range(0, len(texts), 40)):
        rows = [{"id": hashlib.sha1(t.encode()).hexdigest()[:16], "text": t, "source": "stdlib",
                 "n_bytes": len(t), "edu_score": 0.5} for t in texts[start : start + 40]]  # fmt: skip
        write_shard(stage.shard_path(k), rows)
    stage.finish()
    stage = Stage(run_dir, "exercises", "k")
    stage.begin({}, {})
    rows = []
    for i in range(30):
        prompt = f'def scale_{i}(values: list[int]) -> list[int]:\n    """Each value times {i} plus {i % 7}."""\n'
        solution = f"    return [v * {i} + {i % 7} for v in values]\n"
        rows.append({"id": f"ex{i}", "text": prompt + solution, "prompt": prompt, "solution": solution,
                     "tests": f"assert scale_{i}([1]) == [{i + i % 7}]"})  # fmt: skip
    write_shard(stage.shard_path(0), rows)
    stage.finish()


def _outputs(run_dir: Path) -> dict[str, str]:
    names = [*sorted((run_dir / "clean").glob("*.parquet")), *sorted((run_dir / "tokens").glob("*.bin"))]
    return {p.relative_to(run_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in names}


def test_clean_counts_the_band_matches_its_jaccard_check_kept(tmp_path: Path) -> None:
    from phi1.clean import run_clean

    settings = ["curate.encoder=hashing", "clean.mbpp=false", "executor.workers=1"]
    counts = {}
    for threshold in (0.0, 0.65, 0.99):
        run_dir = tmp_path / str(threshold)
        _scale_run(run_dir)
        cfg = load_config(None, [*settings, f"clean.minhash_threshold={threshold}"])
        counts[threshold] = run_clean(run_dir, cfg)["counts"]
    assert counts[0.0]["near_kept_by_jaccard"] == 0  # without the check every band match is a duplicate
    for threshold in (0.65, 0.99):  # what the check keeps is what banding alone would have removed
        c = counts[threshold]
        near = c["removed"].get("near_duplicate", 0)
        assert near + c["near_kept_by_jaccard"] == counts[0.0]["removed"]["near_duplicate"] >= 3, counts
    assert counts[0.99]["near_kept_by_jaccard"] >= 1  # the planted near copies are not 99% alike


@pytest.mark.slow
def test_clean_and_tokenize_are_byte_identical_on_every_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phi1.clean import run_clean
    from phi1.executor import ray_module
    from phi1.tokenize import tokenize

    settings = ["curate.encoder=hashing", "tokenize.vocab_size=512", "tokenize.seq_len=64", "clean.mbpp=false"]
    outputs = {}
    # Ray on one node, started by phi1 itself, is compared with the local executor by the `phi1 run` test below
    # (clean and tokens among its files); here Ray joins a cluster of two raylets.
    executors = [("one process", ["executor.workers=1"]), ("two processes", ["executor.workers=2"])]
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a throwaway cluster on loopback: no token to hand around
    with _two_raylets() as address:
        executors.append(("two raylets", ["executor.kind=ray", f"executor.address={address}"]))
        for name, executor in executors:
            ray_module().shutdown()  # the next executor connects afresh
            run_dir = tmp_path / name.replace(" ", "-")
            _scale_run(run_dir)
            cfg = load_config(None, [*settings, *executor])
            m = run_clean(run_dir, cfg)
            tokenize(run_dir, cfg)
            outputs[name] = _outputs(run_dir)
            assert m["executor"] == cfg.executor.kind
            # Planted: an exact copy, two near copies and HumanEval/13 renamed (its docstring's 13-grams fire
            # first). Found as well: sre_compile.py and sre_parse.py are near copies of each other, and
            # scale_1 (v * 1 + 1 for each v) is HumanEval/42's incr_list under another name.
            removed = {"exact_duplicate": 1, "near_duplicate": 3, "benchmark_ngram": 1, "benchmark_execution": 1}
            assert m["counts"]["removed"] == removed, m["counts"]
            kept = {
                i
                for p in sorted((run_dir / "clean").glob("data-*.parquet"))
                for i in pq.read_table(p).column("id").to_pylist()
            }
            for row in pq.read_table(run_dir / "clean" / "removed.parquet").to_pylist():
                if row["reason"].endswith("duplicate"):  # names the kept document it copies
                    assert row["of"] in kept, row
                else:
                    assert row["of"].startswith("HumanEval/"), row
        ray_module().shutdown()
    assert len(outputs["one process"]) >= 8  # clean shards, removed, similarity, four token sets and masks
    assert outputs["two processes"] == outputs["one process"]
    assert outputs["two raylets"] == outputs["one process"]


@contextlib.contextmanager
def _two_raylets() -> Iterator[str]:
    """A Ray cluster of two nodes on this machine, one CPU each: `ray start --head` and a second raylet joined
    with `ray start --address`. With one CPU a node, two tasks at once run on both nodes."""
    import subprocess
    import sys

    ray_cli = str(Path(sys.executable).parent / "ray")
    port = 6390 + os.getpid() % 500
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus=1", "--disable-usage-stats"]
    try:
        subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        subprocess.run(
            [ray_cli, "start", f"--address={address}", *common], check=True, capture_output=True, timeout=120
        )
        yield address
    finally:
        subprocess.run([ray_cli, "stop"], capture_output=True, timeout=120)


def _ray_workers_running(task: str) -> list[int]:
    """The pids of Ray workers now running `task` (a Ray worker titles itself ray::<task>)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().startswith(f"ray::{task}".encode()):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
def test_a_killed_ray_worker_is_redone_without_repeating_a_teacher_call(tmp_path: Path) -> None:
    import os
    import signal
    import sqlite3
    import threading
    import time

    from fake_server import FakeOpenAI
    from phi1.curate.annotate import annotate
    from phi1.executor import ray_module
    from phi1.teacher import make_teacher

    def respond(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        return f"Fine.\nEducational score: {int(hashlib.sha1(prompt.encode()).hexdigest(), 16) % 6}"

    texts = _stdlib_texts(90, max_bytes=30_000)
    assert len(texts) == 90
    for folder in ("local", "ray"):
        stage = Stage(tmp_path / folder, "corpus", "k")
        stage.begin({}, {})
        for k in range(3):
            rows = [{"id": f"{k}-{i}", "text": t} for i, t in enumerate(texts[30 * k : 30 * (k + 1)])]
            write_shard(stage.shard_path(k), rows)
        stage.finish()
    killed: list[tuple[int, int]] = []  # (pid, answers recorded in its shard's record when it was killed)

    def kill_one_worker_mid_shard(answers: Path, stop: threading.Event) -> None:
        while not stop.is_set() and not killed:
            for record in sorted(answers.glob("*.sqlite")):
                try:
                    with sqlite3.connect(record) as db:
                        done = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
                except sqlite3.Error:
                    continue
                pids = _ray_workers_running("annotate_shard")
                if 5 <= done < 30 and pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append((pids[0], done))
                    return
            time.sleep(0.02)

    with FakeOpenAI(respond=respond, latency_s=0.1) as server:
        overrides = ["curate.annotate_samples=75", "teacher.backend=openai", "teacher.model=fake",
                     f"teacher.base_url={server.url}", "teacher.concurrency=2"]  # fmt: skip
        cfg = load_config(None, [*overrides, "executor.kind=ray", "executor.workers=2"])
        teacher = make_teacher(cfg.teacher, tmp_path / "local" / "cache.sqlite")
        local = annotate(tmp_path / "local", cfg.curate, teacher, "k", seed=1)
        assert len(server.requests) == 75
        server.requests.clear()
        stop = threading.Event()
        killer = threading.Thread(
            target=kill_one_worker_mid_shard, args=(tmp_path / "ray" / "annotations" / "answers", stop)
        )
        killer.start()
        try:
            on_ray = annotate(
                tmp_path / "ray", cfg.curate, teacher, "k", seed=1, executor=cfg.executor, teacher_cfg=cfg.teacher
            )
        finally:
            stop.set()
            killer.join()
            ray_module().shutdown()
        prompts = [r["messages"][-1]["content"] for r in server.requests]
    assert killed, "no worker was killed mid-shard: the test did not test anything"
    assert on_ray["counts"] == local["counts"] and on_ray["score_histogram"] == local["score_histogram"]
    assert (tmp_path / "ray/annotations/data-00000.parquet").read_bytes() == (
        tmp_path / "local/annotations/data-00000.parquet"
    ).read_bytes()
    # Every answer recorded before the kill came back from the record: only the requests in flight at the
    # kill (at most teacher.concurrency of them, their answers lost with the worker) are sent again.
    repeated = len(prompts) - len(set(prompts))
    assert len(set(prompts)) == 75 and repeated <= cfg.teacher.concurrency, (repeated, killed)


@pytest.mark.slow
def test_phi1_run_on_ray_gives_the_local_kept_ids_dedup_decisions_and_token_shards(tmp_path: Path) -> None:
    import subprocess

    from conftest import phi1_cmd

    config = Path(__file__).parents[1] / "configs" / "tiny.yaml"
    smaller = ["corpus.max_files=300", "curate.annotate_samples=100", "synth.textbook_samples=20",
               "synth.exercise_samples=40", "clean.mbpp=false", "curate.encoder=hashing"]  # fmt: skip
    for executor in ("local", "ray"):
        sets = [a for s in [*smaller, f"executor.kind={executor}"] for a in ("--set", s)]
        args = ["run", "--config", str(config), "--run-dir", str(tmp_path / executor), "--until", "tokenize", *sets]
        proc = subprocess.run(phi1_cmd(*args), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert not (tmp_path / executor / "pretrain").exists()  # the data stages alone
    for stage in ("annotations", "embeddings", "exercises", "clean", "tokens"):
        assert json.loads((tmp_path / "ray" / stage / "manifest.json").read_text())["executor"] == "ray", stage
    files = [p.relative_to(tmp_path / "local") for p in sorted((tmp_path / "local").glob("*/*"))]
    compared = [
        f for f in files if f.suffix in (".parquet", ".bin", ".npy") or f.name in ("index.json", "tokenizer.json")
    ]
    assert {f.parts[0] for f in compared} >= {
        "annotations",
        "embeddings",
        "filtered",
        "exercises",
        "clean",
        "tokens",
        "tokenizer",
    }
    assert len(compared) >= 12
    for f in compared:
        assert (tmp_path / "ray" / f).read_bytes() == (tmp_path / "local" / f).read_bytes(), f
    removed = pq.read_table(tmp_path / "ray" / "clean" / "removed.parquet").column("reason").to_pylist()
    assert "near_duplicate" in removed  # dedup decided something, and decided it the same way


@pytest.mark.slow
def test_the_hf_teacher_on_ray_is_the_local_one_spread_over_replicas_and_a_killed_replica_repeats_nothing(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    import signal
    import sqlite3
    import threading
    import time

    from phi1.config import CurateConfig, ExecutorConfig, TeacherConfig
    from phi1.curate.annotate import annotate
    from phi1.executor import ray_module
    from phi1.teacher import Params, Request, make_teacher
    from phi1.teacher.hf_replicas import ReplicatedHFTeacher

    requests = [Request.chat(f"def f{i}(x):", params=Params(temperature=0.0, max_tokens=48)) for i in range(24)]
    cfg = TeacherConfig(backend="hf", model=str(tiny_checkpoint), batch_size=2, replicas=2)
    local = make_teacher(cfg, tmp_path / "local.sqlite")
    want = {r.request.messages: (r.text, r.finish_reason, r.completion_tokens) for r in local.generate(requests)}
    assert len({text for text, _, _ in want.values()}) > 1  # the prompts lead to different answers

    record = tmp_path / "ray.sqlite"
    killed: list[tuple[int, set[str]]] = []  # (pid, the keys answered when it was killed)

    def kill_one_replica_mid_stage(stop: threading.Event) -> None:
        while not stop.is_set() and not killed:
            try:
                with sqlite3.connect(record) as db:
                    done = {k for (k,) in db.execute("SELECT key FROM responses")}
            except sqlite3.Error:
                done = set()
            pids = _ray_workers_running("Replica.answer")
            if 4 <= len(done) <= 16 and pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append((pids[0], done))
                return
            time.sleep(0.01)

    try:
        teacher = make_teacher(cfg, record, ExecutorConfig(kind="ray", workers=2))
        assert isinstance(teacher, ReplicatedHFTeacher) and teacher.backend == "hf"
        ray = ray_module()
        pids = ray.get([a.__ray_call__.remote(lambda replica: os.getpid()) for a in teacher.actors()])
        stop = threading.Event()
        killer = threading.Thread(target=kill_one_replica_mid_stage, args=(stop,))
        killer.start()
        try:
            got = list(teacher.generate(requests))
        finally:
            stop.set()
            killer.join()
        assert killed, "no replica was killed mid-stage: the test did not test anything"
        assert {r.request.messages: (r.text, r.finish_reason, r.completion_tokens) for r in got} == want
        answered = [ray.get(a.answered_keys.remote()) for a in teacher.actors()]
        assert all(answered), answered  # both replicas worked
        every = [k for keys in answered for k in keys]
        assert len(every) == len(set(every)), "a live replica answered a request twice"
        # The restarted replica (a new process, its record empty at the start) redid what was in flight,
        # nothing answered before the kill.
        restarted = answered[pids.index(killed[0][0])]
        assert restarted and not set(restarted) & killed[0][1]
        assert teacher.usage.calls == 24
        again = list(teacher.generate(requests))
        assert all(r.cached for r in again) and teacher.usage.calls == 24
        assert teacher.describe()["replicas"] == 2
        teacher.release()  # frees the replicas; the next request starts new ones
        [fresh] = teacher.generate([Request.chat("def g():", params=Params(temperature=0.0, max_tokens=8))])
        assert fresh.ok and not fresh.cached

        # Annotation on Ray sends the replicas every request from the driver (no per-shard tasks, each
        # loading the model), and writes what the local teacher writes.
        curate = CurateConfig(annotate_samples=10, annotate_max_tokens=24)
        for folder in ("local", "ray"):
            stage = Stage(tmp_path / folder, "corpus", "k")
            stage.begin({}, {})
            write_shard(stage.shard_path(0), [{"id": f"d{i}", "text": t} for i, t in enumerate(_stdlib_texts(14))])
            stage.finish()
        annotate(tmp_path / "local", curate, local, "k", seed=1)
        on_ray = annotate(tmp_path / "ray", curate, teacher, "k", 1, executor=ExecutorConfig(kind="ray"))
        assert on_ray["executor"] == "ray" and on_ray["teacher"]["replicas"] == 2
        assert not (tmp_path / "ray" / "annotations" / "answers").exists()
        assert (tmp_path / "ray/annotations/data-00000.parquet").read_bytes() == (
            tmp_path / "local/annotations/data-00000.parquet"
        ).read_bytes()
    finally:
        ray_module().shutdown()


@pytest.mark.slow
def test_exercises_are_verified_on_ray_with_the_local_verdicts(tmp_path: Path) -> None:
    """On Ray, exercises are run in sandboxes of the tasks' own nodes, a chunk of programs a task; the verdicts
    and mutation scores come back in order and are the local sandbox's."""
    from phi1.config import ExecutorConfig
    from phi1.executor import ray_module
    from phi1.mutation.score import Settings
    from phi1.sandbox import Limits, Sandbox
    from phi1.synth import exercises

    bodies = {"passed": "return x + 1", "failed": "return x", "error": "return y", "timeout": "while True: pass"}
    kinds = [list(bodies)[i % 3] for i in range(2 * exercises.VERIFY_CHUNK + 5)]  # three chunks, one short
    for i in (7, exercises.VERIFY_CHUNK + 1, len(kinds) - 1):
        kinds[i] = "timeout"
    items = [(f"def f(x):\n    {bodies[kind]}\n", "assert f(1) == 2\n", 2) for kind in kinds]
    limits = Limits(timeout_s=0.5)
    job = exercises.VerifyJob((), limits, "bwrap", ExecutorConfig(kind="ray", workers=2), Settings())
    with Sandbox(2, "bwrap") as sandbox:
        local = exercises.checks(sandbox, items, job)
    assert [c.status for c in local] == kinds
    assert {c.score.mutation_score for c in local if c.status == "passed"} == {1.0}
    try:
        assert exercises.checks(None, items, job) == local
    finally:
        ray_module().shutdown()
