"""Teacher throughput: 1,000 chat requests against a loopback OpenAI-compatible server that answers each
after a fixed 200 ms, at concurrency 64. The ideal is 64 / 0.2 s = 320 requests/s; target >= 0.9 of it.
A second run over the warm cache must send 0 requests to the server.

    .venv/bin/python benchmarks/teacher_concurrency.py [--requests 1000] [--concurrency 64] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from phi1.config import TeacherConfig
from phi1.teacher import Params, Request, make_teacher


def server_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as resp:
        return json.load(resp)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()

    # The server runs in a process of its own so that it does not share this one's interpreter lock.
    server = subprocess.Popen(
        [sys.executable, "-m", "phi1.teacher.fake_server", "--latency", str(args.latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "cache.sqlite"
            cfg = TeacherConfig(
                backend="openai", model="bench", base_url=f"http://127.0.0.1:{port}/v1", concurrency=args.concurrency
            )
            requests = [Request.chat(f"request {i}", params=Params(max_tokens=16)) for i in range(args.requests)]

            teacher = make_teacher(cfg, cache)
            start = time.perf_counter()
            done = sum(r.ok for r in teacher.generate(requests))
            cold = time.perf_counter() - start
            stats = server_stats(port)
            server_cpu = _cpu_seconds(server.pid)

            warm_teacher = make_teacher(cfg, cache)
            start = time.perf_counter()
            warm_done = sum(r.ok and r.cached for r in warm_teacher.generate(requests))
            warm = time.perf_counter() - start
            warm_calls = server_stats(port)["requests"] - stats["requests"]
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(10)

    ideal = args.concurrency / args.latency
    rate = done / cold
    ratio = rate / ideal
    print(f"requests: {args.requests}  concurrency: {args.concurrency}  server latency: {args.latency * 1000:.0f} ms")
    print(
        f"cold: {done} ok in {cold:.2f}s = {rate:.1f} req/s (ideal {ideal:.0f} req/s); "
        f"server saw {stats['requests']} requests, at most {stats['max_inflight']} at once"
    )
    print(f"server process CPU during the cold run: {server_cpu:.2f}s")
    print(f"warm cache: {warm_done} served from cache in {warm:.2f}s, {warm_calls} requests reached the server")
    status = "met" if ratio >= 0.9 and done == args.requests else "missed"
    print(
        f"RESULT teacher_req_per_s value={rate:.1f} baseline={ideal:.1f} ratio={ratio:.3f} target=0.9 status={status}"
    )
    status = "met" if warm_calls == 0 and warm_done == args.requests else "missed"
    print(f"RESULT teacher_warm_cache_calls value={warm_calls} baseline=0 ratio=1.000 target=0 status={status}")


if __name__ == "__main__":
    main()
