"""Teacher throughput: 1,000 chat requests against a loopback OpenAI-compatible server that answers each
after a fixed 200 ms, at concurrency 64, through phi1's teacher (cache, retries, limits, usage) and, as the
measured baseline, through the raw `openai` async client (aiohttp transport, a semaphore, nothing else) at
the same concurrency against the same server. Targets: phi1 >= 0.9 of the raw client, and (computed)
>= 0.9 of the ideal 64 / 0.2 s = 320 requests/s. A second run over the warm cache must send 0 requests.

    .venv/bin/python benchmarks/teacher_concurrency.py [--requests 1000] [--concurrency 64] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
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


async def raw_client(url: str, n: int, concurrency: int) -> int:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0, http_client=openai.DefaultAioHttpClient())
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> bool:
        async with gate:
            r = await client.chat.completions.create(
                model="bench", messages=[{"role": "user", "content": f"raw {i}"}], max_tokens=16
            )
            return bool(r.choices)

    try:
        return sum(await asyncio.gather(*(one(i) for i in range(n))))
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()

    # The server runs in a process of its own so that it does not share this one's interpreter lock.
    fake_server = Path(__file__).resolve().parent.parent / "tests" / "fake_server.py"
    server = subprocess.Popen(
        [sys.executable, str(fake_server), "--latency", str(args.latency)],
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

            asyncio.run(raw_client(cfg.base_url or "", 64, args.concurrency))  # warm: connections, imports
            start = time.perf_counter()
            raw_done = asyncio.run(raw_client(cfg.base_url or "", args.requests, args.concurrency))
            raw_s = time.perf_counter() - start
            raw_rate = raw_done / raw_s
            before = server_stats(port)["requests"]

            teacher = make_teacher(cfg, cache)
            start = time.perf_counter()
            done = sum(r.ok for r in teacher.generate(requests))
            cold = time.perf_counter() - start
            stats = server_stats(port)
            stats["requests"] -= before
            server_cpu = _cpu_seconds(server.pid)

            warm_teacher = make_teacher(cfg, cache)
            start = time.perf_counter()
            warm_done = sum(r.ok and r.cached for r in warm_teacher.generate(requests))
            warm = time.perf_counter() - start
            warm_calls = server_stats(port)["requests"] - stats["requests"] - before
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
    print(f"raw openai client, same server and concurrency: {raw_done} ok in {raw_s:.2f}s = {raw_rate:.1f} req/s")
    print(f"server process CPU during both cold runs: {server_cpu:.2f}s")
    print(f"warm cache: {warm_done} served from cache in {warm:.2f}s, {warm_calls} requests reached the server")
    vs_raw = rate / raw_rate
    status = "met" if vs_raw >= 0.9 and done == args.requests else "missed"
    print(
        f"RESULT teacher_req_per_s value={rate:.1f} baseline={raw_rate:.1f} ratio={vs_raw:.3f} target=0.9 "
        f"status={status}"
    )
    status = "met" if ratio >= 0.9 and done == args.requests else "missed"
    print(f"RESULT teacher_vs_ideal value={rate:.1f} baseline={ideal:.1f} ratio={ratio:.3f} target=0.9 status={status}")
    status = "met" if warm_calls == 0 and warm_done == args.requests else "missed"
    print(f"RESULT teacher_warm_cache_calls value={warm_calls} baseline=0 ratio=1.000 target=0 status={status}")


if __name__ == "__main__":
    main()
