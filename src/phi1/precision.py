"""bf16 or fp32: decided once per device and process, by what the hardware does natively.

bf16 pays only where the hardware computes it natively: a CUDA GPU with bf16 (Ampere and later), or a CPU
with AMX or AVX512-BF16. Elsewhere torch still *runs* bf16 autocast, but emulated: on an AVX2-only EPYC one
`linear(512x384, 384->1536)` took 7.6x longer under bf16 autocast than in fp32. So `auto` means "bf16 where
it is native", decided from the CPU's capability and flags, and where those do not settle it (another
architecture, a capped oneDNN) by a short measured probe. Every stage that computes with a model (embedding,
training, the hf teacher, eval generation) asks here, and writes the answer into its manifest.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from phi1.errors import Phi1Error

Setting = Literal["auto", "on", "off"]

# x86 capabilities below AVX512: no CPU of these has AVX512-BF16 or AMX, so bf16 would be emulated.
_NO_NATIVE_BF16 = {"DEFAULT", "NO AVX", "AVX", "AVX2"}
_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# The probe's shape: one MiniLM feed-forward matmul over a 512-token batch (where the 7.6x was seen).
PROBE_SHAPE = (512, 384, 1536)


@dataclass(frozen=True)
class Precision:
    """What a device computes in, and why."""

    device: str
    bf16: bool
    setting: str
    reason: str
    probe: dict[str, float] | None = None  # fp32/bf16 milliseconds, when measured

    @property
    def name(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    def dtype(self) -> Any:
        """The dtype to load an inference model in."""
        import torch

        return torch.bfloat16 if self.bf16 else torch.float32

    def autocast(self) -> Any:
        """bf16 autocast around a forward pass, or nothing."""
        if not self.bf16:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16)

    def as_dict(self) -> dict[str, Any]:
        return {"dtype": self.name, **asdict(self)}


def resolve(setting: str = "auto", device: str | None = None) -> Precision:
    """The precision for `device` (default: cuda when present, else cpu) under `setting`: `auto` = bf16
    where native, `on` = bf16 (an error where the device cannot run it at all), `off` = fp32."""
    if setting not in ("auto", "on", "off"):
        raise Phi1Error(f"bf16 must be auto, on or off, got {setting!r}")
    return _resolve(setting, _device(device))


def _device(device: str | None) -> str:
    import torch

    if device:
        return str(device)
    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.cache
def _resolve(setting: str, device: str) -> Precision:
    kind = device.split(":")[0]
    if setting == "off":
        return Precision(device, False, setting, "bf16 turned off")
    if setting == "on":
        if not _can_run_bf16(kind):
            raise Phi1Error(f"bf16=on but {device} cannot run bf16 autocast")
        return Precision(device, True, setting, "bf16 forced on")
    if kind == "cuda":
        native, reason = _cuda_native(device)
        return Precision(device, native, setting, reason)
    if kind == "cpu":
        native, reason, probe = cpu_native_bf16()
        return Precision(device, native, setting, reason, probe)
    return Precision(device, False, setting, f"{kind}: phi1 uses fp32 on this device type")


def _cuda_native(device: str) -> tuple[bool, str]:
    import torch

    index = torch.device(device).index or 0
    major, minor = torch.cuda.get_device_capability(index)
    name = torch.cuda.get_device_name(index)
    if major >= 8:
        return True, f"{name} (compute capability {major}.{minor}) computes bf16 natively"
    return False, f"{name} (compute capability {major}.{minor}) has no native bf16 (needs 8.0+)"


def cpu_native_bf16() -> tuple[bool, str, dict[str, float] | None]:
    """(native, why, probe) for this process's CPU."""
    return decide_cpu(cpu_capability(), cpu_flags(), os.environ.get("ONEDNN_MAX_CPU_ISA"), measure_bf16_speed)


def decide_cpu(
    capability: str,
    flags: set[str] | None,
    onednn_cap: str | None,
    probe: Any,
) -> tuple[bool, str, dict[str, float] | None]:
    """The CPU rule, apart from the machine so that it can be tested: capability first, the probe where the
    capability does not settle it."""
    if capability in _NO_NATIVE_BF16:
        return False, f"CPU capability {capability}: no AVX512-BF16 or AMX, bf16 would be emulated", None
    if capability.startswith("AVX512") and flags is not None and not onednn_cap:
        native = [f for f in _BF16_FLAGS if f in flags]
        if native:
            return True, f"CPU capability {capability} with {'+'.join(native)}: native bf16", None
        return False, f"CPU capability {capability} without AVX512-BF16 or AMX: bf16 would be emulated", None
    measured = probe()
    faster = measured["bf16_ms"] < 0.9 * measured["fp32_ms"]
    verdict = "faster" if faster else "not faster"
    return (
        faster,
        f"CPU capability {capability}: measured bf16 {measured['bf16_ms']:.2f} ms vs fp32 "
        f"{measured['fp32_ms']:.2f} ms, bf16 {verdict}",
        measured,
    )


def cpu_capability() -> str:
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # torch builds without it
        return "unknown"


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (Linux x86), or None where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        return None
    return None


def measure_bf16_speed(shape: tuple[int, int, int] = PROBE_SHAPE, repeats: int = 5) -> dict[str, float]:
    """Best-of-`repeats` milliseconds of one linear layer at `shape` in fp32 and under bf16 autocast (CPU)."""
    fp32 = _linear_ms(shape, False, repeats)
    bf16 = _linear_ms(shape, True, repeats)
    return {"fp32_ms": round(fp32, 4), "bf16_ms": round(bf16, 4)}


def cpu_matmul_gflops(shape: tuple[int, int, int], bf16: bool, repeats: int = 3) -> float:
    """The CPU's measured rate, in GFLOP/s, on one linear layer of `shape` (rows, in, out): best of `repeats`."""
    rows, width, out = shape
    return 2 * rows * width * out / _linear_ms(shape, bf16, repeats) / 1e6


def _linear_ms(shape: tuple[int, int, int], bf16: bool, repeats: int) -> float:
    import torch

    rows, width, out = shape
    x = torch.randn(rows, width)
    w = torch.randn(out, width)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    with torch.inference_mode(), ctx:
        torch.nn.functional.linear(x, w)  # warm-up: kernel selection, packing
        for _ in range(repeats):
            start = time.perf_counter()
            torch.nn.functional.linear(x, w)
            times.append(time.perf_counter() - start)
    return min(times) * 1e3


def _can_run_bf16(kind: str) -> bool:
    import torch

    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        with torch.autocast(kind, dtype=torch.bfloat16):
            torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2))
        return True
    except RuntimeError:
        return False
