"""`teacher.mode: batch`: the OpenAI Batch API against a loopback server that speaks it (files, batches,
in-progress polls, a failed line, an expired batch, a batch-size limit), and a run killed while polling."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fake_batch_server import FakeBatchAPI
from phi1.config import TeacherConfig
from phi1.errors import Phi1Error
from phi1.teacher import Request, make_teacher


def answer(body: dict) -> str:
    return "echo: " + body["messages"][-1]["content"]


def batch_config(url: str, **kw: object) -> TeacherConfig:
    return TeacherConfig(backend="openai", model="fake", base_url=url, mode="batch", batch_poll_s=0.05,
                         max_retries=2, **kw)  # type: ignore[arg-type]  # fmt: skip


def requests(n: int) -> list[Request]:
    return [Request.chat(f"question {i}", sample=0) for i in range(n)]


def test_batches_answer_every_request_once_through_faults_and_limits(tmp_path: Path) -> None:
    server = FakeBatchAPI(respond=answer, polls=2, fail_once={"question 3"}, expire=1, max_lines=8)
    with server:
        cfg = batch_config(server.url, batch_max_requests=8, price_prompt_per_m=2.0, price_completion_per_m=4.0)
        teacher = make_teacher(cfg, tmp_path / "c.sqlite")
        out = {r.request.messages[-1][1]: r for r in teacher.generate(requests(20))}
        assert {q: r.text for q, r in out.items()} == {f"question {i}": f"echo: question {i}" for i in range(20)}
        assert not any(r.error for r in out.values())
        # 20 lines in batches of at most 8; the first expired half done, its rest and the failed line went again.
        assert len(server.created) >= 4 and all(n <= 2 for n in server.lines_sent.values())
        resent = {k for k, n in server.lines_sent.items() if n == 2}
        assert len(resent) == 4 + 1  # 4 unfinished of the expired 8, and the line that failed once
        # Batch prices: half the online price of the tokens the server counted.
        u = teacher.usage
        assert u.cost_usd == pytest.approx((u.prompt_tokens * 2.0 + u.completion_tokens * 4.0) / 1e6 * 0.5)
        assert teacher.describe()["mode"] == "batch" and teacher.describe()["batches"] == len(server.created)
        again = make_teacher(cfg, tmp_path / "c.sqlite")
        assert all(r.cached for r in again.generate(requests(20)))  # the same cache as online answers
        assert len(server.created) == teacher.describe()["batches"]
    online = make_teacher(TeacherConfig(backend="openai", model="fake", base_url=server.url), tmp_path / "c.sqlite")
    assert all(r.cached for r in online.generate(requests(20)))  # batch and online share keys


def test_a_run_killed_while_polling_resumes_the_same_batches(tmp_path: Path, cli_env: dict) -> None:
    cache = tmp_path / "c.sqlite"
    with FakeBatchAPI(respond=answer, hold=True) as server:
        script = textwrap.dedent(f"""
            from phi1.config import TeacherConfig
            from phi1.teacher import Request, make_teacher
            cfg = TeacherConfig(backend="openai", model="fake", base_url="{server.url}", mode="batch",
                                batch_poll_s=0.05, batch_max_requests=5)
            reqs = [Request.chat(f"question {{i}}") for i in range(12)]
            for r in make_teacher(cfg, "{cache}").generate(reqs):
                pass
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], env=cli_env)
        deadline = time.monotonic() + 60
        while server.retrieves < 6 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        assert len(server.created) == 3 and sum(server.lines_sent.values()) == 12, "killed while polling"
        server.hold = False
        teacher = make_teacher(batch_config(server.url, batch_max_requests=5), cache)
        got = {r.request.messages[-1][1]: r.text for r in teacher.generate(requests(12))}
    assert got == {f"question {i}": f"echo: question {i}" for i in range(12)}
    assert len(server.created) == 3 and set(server.lines_sent.values()) == {1}  # nothing submitted twice
    assert teacher.describe()["batches"] == 3


@pytest.mark.parametrize("when", ["after", "before"])
def test_a_run_killed_while_creating_a_batch_adopts_it_or_creates_it_once(
    tmp_path: Path, cli_env: dict, when: str
) -> None:
    """The run died in `batches.create`, after the provider made the batch (the next run finds it by its
    uploaded input file and polls it) or before (the next run creates it from that file): once either way."""
    cache = tmp_path / "c.sqlite"
    with FakeBatchAPI(respond=answer, mute_create=when) as server:
        script = textwrap.dedent(f"""
            from phi1.config import TeacherConfig
            from phi1.teacher import Request, make_teacher
            cfg = TeacherConfig(backend="openai", model="fake", base_url="{server.url}", mode="batch",
                                batch_poll_s=0.05, timeout_s=600)
            for r in make_teacher(cfg, "{cache}").generate([Request.chat(f"question {{i}}") for i in range(4)]):
                pass
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], env=cli_env)
        deadline = time.monotonic() + 60
        while not (server.created or server.creating) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the batch is made (or not) and recorded by the server before the kill
        proc.kill()
        proc.wait()
        assert len(server.created) == (when == "after"), "killed while the batch was being created"
        server.mute_create = ""
        teacher = make_teacher(batch_config(server.url), cache)
        got = {r.request.messages[-1][1]: r.text for r in teacher.generate(requests(4))}
    assert got == {f"question {i}": f"echo: question {i}" for i in range(4)}
    assert len(server.created) == 1 and set(server.lines_sent.values()) == {1}  # nothing submitted twice


def test_batch_mode_is_for_the_openai_backend_and_needs_a_cache(tmp_path: Path) -> None:
    with pytest.raises(Phi1Error, match="only the openai backend has a Batch API"):
        make_teacher(TeacherConfig(backend="offline", mode="batch"), tmp_path / "c.sqlite")
    with pytest.raises(Phi1Error, match="needs a teacher cache"):
        make_teacher(batch_config("http://127.0.0.1:9/v1"))
