"""bf16 only where the hardware computes it natively: the rule, this machine's answer, and a capped CPU."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from phi1.errors import Phi1Error
from phi1.precision import cpu_capability, cpu_flags, decide_cpu, measure_bf16_speed, resolve


def _no_probe() -> dict[str, float]:
    raise AssertionError("the capability settles it: no probe may run")


def test_avx2_means_fp32_without_a_probe() -> None:
    native, reason, probe = decide_cpu("AVX2", {"avx2", "fma"}, None, _no_probe)
    assert not native and probe is None and "AVX2" in reason


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_avx512_with_native_bf16_means_bf16(flag: str) -> None:
    native, reason, _ = decide_cpu("AVX512", {"avx512f", flag}, None, _no_probe)
    assert native and flag in reason


def test_avx512_without_bf16_flags_means_fp32() -> None:
    native, reason, _ = decide_cpu("AVX512", {"avx512f", "avx512bw"}, None, _no_probe)
    assert not native and "emulated" in reason


@pytest.mark.parametrize(("fp32_ms", "bf16_ms", "expected"), [(4.0, 1.6, True), (4.0, 18.0, False), (4.0, 3.9, False)])
def test_unclear_capability_is_decided_by_the_probe(fp32_ms: float, bf16_ms: float, expected: bool) -> None:
    calls = []

    def probe() -> dict[str, float]:
        calls.append(1)
        return {"fp32_ms": fp32_ms, "bf16_ms": bf16_ms}

    # An Arm CPU (SVE), and an AVX512 CPU whose oneDNN is capped: flags do not say what oneDNN will run.
    for capability, flags, cap in (("SVE256", None, None), ("AVX512", {"avx512_bf16"}, "AVX2")):
        native, reason, measured = decide_cpu(capability, flags, cap, probe)
        assert native is expected and measured == {"fp32_ms": fp32_ms, "bf16_ms": bf16_ms} and "measured" in reason
    assert len(calls) == 2


def test_this_machine_follows_the_rule() -> None:
    p = resolve("auto", "cpu")
    flags = cpu_flags() or set()
    if cpu_capability() in ("AVX2", "AVX", "DEFAULT"):
        assert not p.bf16
    elif cpu_capability().startswith("AVX512") and ({"avx512_bf16", "amx_bf16"} & flags):
        assert p.bf16
    assert p.as_dict()["dtype"] == ("bf16" if p.bf16 else "fp32") and p.reason
    assert resolve("auto", "cpu") is p  # decided once per process


def test_off_and_on() -> None:
    assert not resolve("off", "cpu").bf16
    on = resolve("on", "cpu")  # forced, even where emulated: the user asked for it
    assert on.bf16 and on.reason == "bf16 forced on"
    with pytest.raises(Phi1Error, match="auto, on or off"):
        resolve("maybe", "cpu")


def test_probe_measures_both() -> None:
    m = measure_bf16_speed((64, 64, 64), repeats=2)
    assert m["fp32_ms"] > 0 and m["bf16_ms"] > 0


def test_a_capped_cpu_resolves_to_fp32_and_doctor_says_why(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    code = "import json; from phi1.precision import resolve; print(json.dumps(resolve('auto', 'cpu').as_dict()))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    p = json.loads(out.stdout)
    assert p["dtype"] == "fp32" and "AVX2" in p["reason"]
    doctor = subprocess.run(
        [sys.executable, "-m", "phi1.cli", "doctor"], env=env, capture_output=True, text=True, timeout=120
    )
    line = next(ln for ln in doctor.stdout.splitlines() if "precision cpu" in ln)
    assert "auto = fp32" in line and "AVX2" in line, doctor.stdout


def test_doctor_reports_every_line_and_fails_without_a_sandbox(cli_env: dict[str, str], tmp_path) -> None:
    ok = subprocess.run([sys.executable, "-m", "phi1.cli", "doctor"], env=cli_env, capture_output=True, text=True,
                        timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stdout
    names = [ln.split()[1] for ln in ok.stdout.splitlines()]
    for name in ("python", "torch", "cpu", "precision", "sandbox", "data", "encoder", "teachers", "disk"):
        assert name in names, ok.stdout
    assert "164 problems" in ok.stdout and "974 problems" in ok.stdout
    # No bubblewrap on PATH: the sandbox line fails with its fix, and the exit code says a default run cannot work.
    broken = subprocess.run([sys.executable, "-m", "phi1.cli", "doctor"], env={**cli_env, "PATH": str(tmp_path)},
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert broken.returncode == 1
    line = next(ln for ln in broken.stdout.splitlines() if " sandbox " in f" {ln} ")
    assert line.startswith("fail") and "apt-get install bubblewrap" in line
