"""Host cost per call of Orchard attention, layer by layer, next to torch's SDPA.

    python packages/orchard-torch-bridge/benchmarks/bench_host_overhead.py \\
        --out docs/benchmarks/host_overhead_cuda.md
    python packages/orchard-torch-bridge/benchmarks/bench_host_overhead.py --device cpu \\
        --out docs/benchmarks/host_overhead_cpu.md

On the CPU (``--device cpu``) the kernels themselves take host time: part 1 runs at B1 H1 L8
D64, where they take microseconds, and part 2 (a GPU shape) is left out.

Part 1, the layers. At B1 H1 L128 D64 (bf16, causal) a kernel takes microseconds, so a loop of
calls runs at the host's pace: wall time per call over a long loop (synchronized once at the
end) is what the host spends per call. Each layer is timed on its own, from the outside in:

- forward + backward through autograd: torch's SDPA (flash backend) and the bridge's
  ``flash_attention`` (torch's custom-op machinery, the checks, DLPack, orchard-flash);
- the forward alone: the same two without grad, then ``orchard_flash.forward`` on torch tensors
  (preallocated outputs, the stream passed), then the binding alone on orchard tensors;
- one ``orchard_core.from_dlpack`` of a torch tensor.

Part 2, the issue's shape. B4 H12 L1024 D64, bf16, causal, forward + backward through autograd,
dropout 0 and 0.1: wall time per call next to the GPU time of the same calls (CUDA events), so
the host's share is visible (CUDA only).

Part 3: cProfile of the bridge's forward + backward at the small shape, the functions that
take the most time of their own.

Rounds interleave the implementations; the tables give the median over rounds and the spread
(lowest, highest).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import math
import os
import platform
import pstats
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch  # first, as users import it

DEVICE = "cuda"  # set by --device


def synchronize() -> None:
    """Waits for the device's queued work (CPU work is done when a call returns)."""
    if DEVICE == "cuda":
        torch.cuda.synchronize()


SCRIPT = "python packages/orchard-torch-bridge/benchmarks/bench_host_overhead.py"


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    """Wall microseconds per call over `calls` calls, the device drained before and after."""
    synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize()
    return (time.perf_counter() - start) / calls * 1e6


def gpu_us(fn: Callable[[], object], calls: int) -> float:
    """Device microseconds per call (CUDA events around the loop)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / calls * 1e3


def interleaved(cases: dict[str, Callable[[], object]], calls: int, rounds: int) -> dict[str, list[float]]:
    for fn in cases.values():  # warm-up: kernels loaded, allocator primed
        for _ in range(10):
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            times[name].append(per_call_us(fn, calls))
    return times


def inputs(shape: tuple[int, int, int, int], grad: bool) -> list[torch.Tensor]:
    gen = torch.Generator(DEVICE).manual_seed(0)
    return [
        torch.randn(shape, generator=gen, device=DEVICE, dtype=torch.bfloat16).requires_grad_(grad)
        for _ in range(3)
    ]


def layer_cases(shape: tuple[int, int, int, int]) -> dict[str, Callable[[], object]]:
    import orchard_core
    import orchard_flash
    import torch.nn.functional as F
    from orchard_flash import _flash
    from orchard_torch_bridge.attention import flash_attention
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = inputs(shape, grad=True)
    do = torch.randn_like(q)
    qd, kd, vd = (t.detach() for t in (q, k, v))
    out, lse = torch.empty_like(qd), torch.empty(shape[:3], device=DEVICE, dtype=torch.float32)
    stream = torch.cuda.current_stream().cuda_stream if DEVICE == "cuda" else 0
    scale = 1.0 / math.sqrt(shape[-1])
    oq, ok, ov, oout, olse = (orchard_core.from_dlpack(t) for t in (qd, kd, vd, out, lse))

    def torch_fb() -> object:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return torch.autograd.backward(F.scaled_dot_product_attention(q, k, v, is_causal=True), do)

    def orchard_fb() -> object:
        return torch.autograd.backward(flash_attention(q, k, v, is_causal=True), do)

    def torch_f() -> object:
        with torch.no_grad(), sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(qd, kd, vd, is_causal=True)

    def orchard_f() -> object:
        with torch.no_grad():
            return flash_attention(qd, kd, vd, is_causal=True)

    def flash_forward() -> object:
        return orchard_flash.forward(
            qd, kd, vd, causal=True, causal_alignment="top_left", scale=scale, out=out, lse=lse, stream=stream
        )

    def binding_forward() -> object:
        return _flash._forward(oq, ok, ov, True, scale, "top_left", 0.0, 0, oout, olse, stream)

    return {
        "torch SDPA (flash) forward+backward, autograd": torch_fb,
        "bridge flash_attention forward+backward, autograd": orchard_fb,
        "torch SDPA (flash) forward, no grad": torch_f,
        "bridge flash_attention forward, no grad": orchard_f,
        "orchard_flash.forward on torch tensors": flash_forward,
        "orchard_flash binding on orchard tensors": binding_forward,
        "orchard_core.from_dlpack(torch tensor)": lambda: orchard_core.from_dlpack(qd),
    }


def shape_cases(shape: tuple[int, int, int, int], p: float) -> dict[str, Callable[[], object]]:
    import torch.nn.functional as F
    from orchard_torch_bridge.attention import flash_attention
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = inputs(shape, grad=True)
    do = torch.randn_like(q)

    def torch_fb() -> object:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        return torch.autograd.backward(out, do)

    def orchard_fb() -> object:
        return torch.autograd.backward(flash_attention(q, k, v, is_causal=True, dropout_p=p), do)

    return {"torch SDPA (flash)": torch_fb, "bridge": orchard_fb}


def cpu_name() -> str:
    """The host CPU's model name (the layers are host-bound), from /proc/cpuinfo where it exists."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}, {max(values):.1f}]"


def profile_top(fn: Callable[[], object], calls: int, top: int) -> str:
    profiler = cProfile.Profile()
    synchronize()
    profiler.enable()
    for _ in range(calls):
        fn()
    synchronize()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return "\n".join(lines[start:])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, help="write a Markdown report here")
    parser.add_argument("--calls", type=int, default=200, help="calls per timed loop")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print(f"no CUDA GPU visible to torch {torch.__version__}: nothing measured")
        return 0
    import orchard_flash

    small = (1, 1, 128, 64) if DEVICE == "cuda" else (1, 1, 8, 64)
    issue_shape = (4, 12, 1024, 64)
    machine = f"GPU: {torch.cuda.get_device_name()}; host " if DEVICE == "cuda" else "CPU tensors; "
    lines = [
        f"# Host cost per call of Orchard attention on {DEVICE.upper()}",
        "",
        f"Command: `{' '.join([SCRIPT, shlex.join(sys.argv[1:])]).rstrip()}`  ",
        f"{machine}CPU: {cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
        f"torch {torch.__version__}; orchard-flash "
        f"{getattr(orchard_flash, '__version__', '?')}; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}.  ",
        f"Wall microseconds per call over loops of {args.calls} calls, median of {args.rounds} interleaved "
        "rounds [lowest, highest]. bf16, causal.",
        "",
        f"## The layers, at B{small[0]} H{small[1]} L{small[2]} D{small[3]} (host-bound)",
        "",
        "| what | µs per call |",
        "|---|---|",
    ]
    for name, values in interleaved(layer_cases(small), args.calls, args.rounds).items():
        lines.append(f"| {name} | {spread(values)} |")
        print(lines[-1], flush=True)

    if DEVICE == "cuda":
        b, h, n, d = issue_shape
        lines += [
            "",
            f"## B{b} H{h} L{n} D{d}, forward + backward through autograd",
            "",
            "| dropout | implementation | wall µs per call | GPU µs per call |",
            "|---|---|---|---|",
        ]
        for p in (0.0, 0.1):
            cases = shape_cases(issue_shape, p)
            calls = max(20, args.calls // 4)
            walls = interleaved(cases, calls, args.rounds)
            for name, fn in cases.items():
                lines.append(f"| {p:g} | {name} | {spread(walls[name])} | {gpu_us(fn, calls):.1f} |")
                print(lines[-1], flush=True)

    bridge = layer_cases(small)["bridge flash_attention forward+backward, autograd"]
    lines += [
        "",
        f"## cProfile: {args.calls} bridge forward+backward calls at the small shape, by own time",
        "",
        "```",
        profile_top(bridge, args.calls, 25),
        "```",
    ]
    print("\n".join(lines[-4:]), flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
