"""orchard-flash's CUDA attention next to torch's SDPA backends (FlashAttention-2 and cuDNN), in one run.

Shapes, dtype and FLOP conventions are those of FlashAttention's own benchmarks: bfloat16,
model dim 2048 (H = 2048 / D heads), batch·L = 32k tokens (B = 2·max(1, 16384 / L)), D = 64
and 128, L = 512 to 16384, causal and not. Forward FLOPs are
4·B·H·L²·D (half for causal); the backward pass alone counts 2.5 times that.

Timing: CUDA events around each call (triton.testing.do_bench, median, when triton is
installed; otherwise an event loop of the same shape), the same single input set for all three
implementations (each tensor is 128 MiB, well above the 50 MB L2). torch is timed as the anchor
does: F.scaled_dot_product_attention inside torch.nn.attention.sdpa_kernel(backend) on inputs
that require grad, and the backward as torch.autograd.grad(o, (q, k, v), do, retain_graph=True),
autograd included. orchard-flash is called directly, orchard_flash.forward with preallocated
out/lse and orchard_flash.backward with preallocated dq/dk/dv, on torch's current stream: kernel
plus each library's Python overhead on both sides. Causal is top-left (torch's is_causal; the
same as bottom-right at Lq = Lk). Before timing, every shape checks orchard's out, dq, dk and dv
against torch's (relative error below 2e-2); a shape that fails is reported and not timed.

    python packages/orchard-flash/benchmarks/bench_flash_cuda.py --out docs/benchmarks/flash_cuda.md

Without a CUDA GPU, or with an orchard-flash built without CUDA kernels, it says so and exits 0
(1 with --strict) without writing anything, so `nox -s bench` still runs on CPU machines.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import shlex
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orchard_core as oc
import orchard_flash as of
import torch
import torch.nn.functional as F

SCRIPT = "python packages/orchard-flash/benchmarks/bench_flash_cuda.py"
DTYPE = torch.bfloat16
MODEL_DIM = 2048
TOKENS = 32768  # batch · length
DIMS = (64, 128)
LENGTHS = (512, 2048, 8192, 16384)
QUICK = {"dims": (128,), "lengths": (2048, 8192)}
TOLERANCE = 2e-2  # max |ours - torch| / max |torch|, per output
IMPLS = ("ours", "flash", "cudnn")


@dataclass
class Row:
    dim: int
    length: int
    batch: int
    heads: int
    causal: bool
    flops_fwd: float
    # Milliseconds per call (median), None where not measured; notes say why.
    ms: dict[str, dict[str, float | None]] = field(default_factory=dict)
    check: str = ""  # "ok (errors ...)", or what went wrong
    notes: list[str] = field(default_factory=list)
    dropout: float = 0.0  # dropout_p of the timed calls (the check runs without dropout)

    def tflops(self, impl: str, direction: str) -> float | None:
        ms = self.ms.get(impl, {}).get(direction)
        if ms is None:
            return None
        flops = self.flops_fwd * (2.5 if direction == "bwd" else 1.0)
        return flops / (ms * 1e-3) / 1e12

    def ratio(self, other: str, direction: str) -> float | None:
        mine, theirs = self.tflops("ours", direction), self.tflops(other, direction)
        return None if mine is None or theirs is None else mine / theirs

    def label(self) -> str:
        return f"D={self.dim} L={self.length}{' causal' if self.causal else ''}" + (
            f" dropout {self.dropout:g}" if self.dropout else ""
        )


# --- timing -----------------------------------------------------------------------------------------


def _event_bench(fn: Callable[[], object], warmup: float, rep: float) -> float:
    """Median milliseconds of fn, each call between its own pair of CUDA events (do_bench's shape)."""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        fn()
    end.record()
    torch.cuda.synchronize()
    estimate = max(start.elapsed_time(end) / 5, 1e-3)
    for _ in range(max(1, int(warmup / estimate))):
        fn()
    count = max(3, int(rep / estimate))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    for s, e in zip(starts, ends, strict=True):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends, strict=True))


def make_timer(warmup: float, rep: float) -> tuple[Callable[[Callable[[], object]], float], str]:
    """A function timing a callable in median milliseconds, and how it times."""
    try:
        from triton.testing import do_bench
    except ImportError:
        how = f"CUDA events (own loop: warm-up {warmup:g} ms, then calls for {rep:g} ms), median"
        return (lambda fn: _event_bench(fn, warmup, rep)), how
    how = f"triton.testing.do_bench(warmup={warmup:g}, rep={rep:g}, return_mode='median'), CUDA events"
    return (lambda fn: float(do_bench(fn, warmup=warmup, rep=rep, return_mode="median"))), how


# --- one shape --------------------------------------------------------------------------------------


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.float(), want.float()
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


def _backends() -> dict[str, object]:
    from torch.nn.attention import SDPBackend

    return {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


def run_shape(
    dim: int,
    length: int,
    causal: bool,
    *,
    device: torch.device,
    timer: Callable[[Callable[[], object]], float],
    only_ours: bool = False,
    seed: int = 0,
    dropout: float = 0.0,
) -> Row:
    """One shape: torch's backends checked and timed, then orchard checked against them and timed.

    With ``dropout`` > 0 the timed calls of every implementation drop with that probability; the
    check compares outputs without dropout (the libraries' masks differ), and the dropout masks
    themselves are the tests' business (test_dropout.py, mask equality with the CPU).
    """
    from torch.nn.attention import sdpa_kernel

    batch, heads = max(1, 16384 // length) * 2, MODEL_DIM // dim
    flops = 4.0 * batch * heads * length * length * dim / (2 if causal else 1)
    row = Row(dim, length, batch, heads, causal, flops, dropout=dropout)
    gen = torch.Generator(device).manual_seed(seed)
    shape = (batch, heads, length, dim)
    q, k, v = (
        torch.randn(shape, generator=gen, device=device, dtype=DTYPE).requires_grad_() for _ in range(3)
    )
    do = torch.randn(shape, generator=gen, device=device, dtype=DTYPE)
    scale = 1.0 / math.sqrt(dim)

    # orchard-flash: detached views (DLPack refuses tensors that require grad), preallocated outputs.
    qd, kd, vd = (t.detach() for t in (q, k, v))
    out = torch.empty_like(qd)
    lse = torch.empty(shape[:3], device=device, dtype=torch.float32)
    dq, dk, dv = (torch.empty_like(t) for t in (qd, kd, vd))
    options = {
        "causal": causal,
        "scale": scale,
        "causal_alignment": "top_left",
        "dropout_p": 0.0,
        "seed": 0,
    }
    if device.type == "cuda":  # torch's stream, passed once rather than looked up on every call
        options["stream"] = torch.cuda.current_stream(device).cuda_stream

    def ours_fwd() -> object:
        return of.forward(qd, kd, vd, out=out, lse=lse, **options)

    # Timed as torch's flash backend runs: dq summed with atomics (deterministic=False); the
    # deterministic kernels are timed too, in their own column.
    def ours_bwd(deterministic: bool = False) -> object:
        grads = {"dq": dq, "dk": dk, "dv": dv}
        return of.backward(do, qd, kd, vd, out, lse, **grads, deterministic=deterministic, **options)

    def torch_fwd(p: float = dropout) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=p)

    # torch: each backend's output and gradients once (the first that runs is the correctness
    # reference), then timed.
    reference: list[torch.Tensor] = []
    for name, backend in _backends().items():
        try:
            with sdpa_kernel(backend):
                o = torch_fwd(0.0)
                grads = torch.autograd.grad(o, (q, k, v), do, retain_graph=True)
                if not reference:
                    reference = [o.detach(), *grads]
                o = torch_fwd()  # the timed backward runs through the timed forward's graph
                if not only_ours:
                    row.ms[name] = {
                        "fwd": timer(torch_fwd),
                        "bwd": timer(lambda o=o: torch.autograd.grad(o, (q, k, v), do, retain_graph=True)),
                    }
                del o, grads
        except RuntimeError as error:  # the backend cannot run this shape on this GPU / build
            row.ms[name] = {"fwd": None, "bwd": None}
            row.notes.append(f"{name}: {type(error).__name__}: {str(error).splitlines()[0][:120]}")

    # orchard: checked once against the first torch backend that ran, timed only if right.
    try:
        ours_fwd()
        ours_bwd(deterministic=True)
        deterministic_dq = dq.clone()
        ours_bwd()
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # an asynchronous kernel error surfaces here
    except Exception as error:  # a kernel that refuses the shape is a result too
        row.check = f"error: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
    else:
        if not reference:
            row.check = "unchecked (no torch backend ran)"
            errors = {}
        else:
            errors = {
                name: _rel_err(got, want)
                for name, got, want in zip(
                    ("out", "dq", "dk", "dv"), (out, dq, dk, dv), reference, strict=True
                )
            }
        bad = {n: e for n, e in errors.items() if not e < TOLERANCE}  # NaN counts as bad
        if bad:
            row.check = "WRONG: " + ", ".join(f"{n} rel err {e:.2g}" for n, e in bad.items())
        else:
            if errors:
                row.check = "ok (" + ", ".join(f"{n} {e:.1e}" for n, e in errors.items()) + ")"
            # Before the timed calls overwrite dq: how far the atomic sums land from the others.
            row.notes.append(f"dq atomic vs deterministic: rel err {_rel_err(dq, deterministic_dq):.1e}")
            options.update(dropout_p=dropout, seed=12345)
            row.ms["ours"] = {"fwd": timer(ours_fwd), "bwd": timer(ours_bwd)}
            row.ms["ours-det"] = {"fwd": None, "bwd": timer(lambda: ours_bwd(deterministic=True))}
    row.ms.setdefault("ours", {"fwd": None, "bwd": None})
    return row  # the tensors go with this frame; the caller empties torch's cache


# --- reporting --------------------------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 0) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


HEADER = [
    "D", "L", "B", "H", "causal", "dropout",
    "ours fwd", "ours bwd", "flash fwd", "flash bwd", "cudnn fwd", "cudnn bwd",
    "ours/flash fwd", "ours/flash bwd", "ours/cudnn fwd", "ours/cudnn bwd", "ours bwd deterministic", "check",
]  # fmt: skip


def cells(row: Row) -> list[str]:
    out = [str(row.dim), str(row.length), str(row.batch), str(row.heads), "yes" if row.causal else "no"]
    out.append(f"{row.dropout:g}")
    out += [_fmt(row.tflops(impl, d)) for impl in IMPLS for d in ("fwd", "bwd")]
    out += [_fmt(row.ratio(other, d), 2) for other in ("flash", "cudnn") for d in ("fwd", "bwd")]
    return [*out, _fmt(row.tflops("ours-det", "bwd")), row.check]


def print_row(row: Row) -> None:
    c = cells(row)
    print(
        f"D={c[0]:>3} L={c[1]:>5} B={c[2]:>2} H={c[3]:>2} causal={c[4]:3} p={c[5]}"
        f" | ours {c[6]:>4}/{c[7]:>4}  flash {c[8]:>4}/{c[9]:>4}  cudnn {c[10]:>4}/{c[11]:>4} TFLOP/s fwd/bwd"
        f" | ours/flash {c[12]:>4}/{c[13]:>4}  ours/cudnn {c[14]:>4}/{c[15]:>4}"
        f" | det bwd {c[16]:>4} | {c[17]}",
        flush=True,
    )
    for note in row.notes:
        print(f"    {note}", flush=True)


def first_bar(rows: list[Row]) -> str:
    """The first bar: orchard at least as fast as torch's FlashAttention-2 on every shape, both passes."""
    missed, unmeasured = [], []
    for row in rows:
        for direction in ("fwd", "bwd"):
            ratio = row.ratio("flash", direction)
            if ratio is None:
                unmeasured.append(f"{row.label()} {direction}")
            elif ratio < 1.0:
                missed.append(f"{row.label()} {direction} ({ratio:.2f})")
    text = "**First bar** (orchard ≥ torch's FlashAttention-2, every shape, forward and backward): "
    if missed:
        text += f"missed on {len(missed)}: " + "; ".join(missed) + "."
    elif unmeasured and len(unmeasured) == 2 * len(rows):
        text += "not measured."
    else:
        text += "met."
    if unmeasured and len(unmeasured) < 2 * len(rows):
        text += " Not measured: " + "; ".join(unmeasured) + "."
    return text


def environment(how: str) -> dict[str, str]:
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {
        "gpu": f"{props.name} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs)",
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "cudnn": str(torch.backends.cudnn.version()),
        "orchard_core": getattr(oc, "__version__", "?"),
        "orchard_flash": getattr(of, "__version__", "?"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "timing": how,
        "command": " ".join([SCRIPT, shlex.join(sys.argv[1:])]).rstrip(),
    }


def markdown(rows: list[Row], env: dict[str, str]) -> str:
    lines = [
        "# orchard-flash CUDA attention vs torch SDPA (FlashAttention-2, cuDNN)",
        "",
        f"Command: `{env['command']}`  ",
        f"GPU: {env['gpu']}; torch {env['torch']} (CUDA {env['cuda']}, cuDNN {env['cudnn']}); "
        f"orchard-core {env['orchard_core']}, orchard-flash {env['orchard_flash']}; {env['date']}.  ",
        f"bfloat16, model dim {MODEL_DIM} (H = {MODEL_DIM}/D), B·L = {TOKENS}; the anchor's shapes "
        "(shared/anchors/gpu_sdpa.py). TFLOP/s: forward 4·B·H·L²·D (half for causal), backward alone "
        "2.5 times that. Ratio = ours / theirs in TFLOP/s (above 1: orchard is faster).  ",
        f"Timing: {env['timing']}; one input set per shape (each tensor {TOKENS * MODEL_DIM * 2 >> 20} MiB, "
        "beyond the 50 MB L2). "
        "torch: SDPA under sdpa_kernel(backend) on inputs that require grad, backward = "
        "torch.autograd.grad(o, (q, k, v), do, retain_graph=True). orchard: orchard_flash.forward / "
        "backward called directly with preallocated outputs. Causal = top-left (torch's is_causal). "
        f"check: orchard's out, dq, dk, dv against torch's (max relative error, must be < {TOLERANCE:g}).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    lines += ["", first_bar(rows)]
    notes = [f"- {row.label()}: {note}" for row in rows for note in row.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in rows if not row.dropout]  # the plot compares the kernels without dropout
    dims = sorted({row.dim for row in rows})
    fig, axes = plt.subplots(len(dims), 2, figsize=(11, 4 * len(dims)), squeeze=False, sharex=True)
    colors = {"ours": "tab:green", "ours-det": "tab:olive", "flash": "tab:blue", "cudnn": "tab:orange"}
    for i, dim in enumerate(dims):
        for j, direction in enumerate(("fwd", "bwd")):
            ax = axes[i][j]
            for impl in (*IMPLS, "ours-det") if direction == "bwd" else IMPLS:
                for causal, style in ((False, "-"), (True, "--")):
                    points = [
                        (row.length, row.tflops(impl, direction))
                        for row in rows
                        if row.dim == dim and row.causal == causal and row.tflops(impl, direction) is not None
                    ]
                    if points:
                        xs, ys = zip(*sorted(points), strict=True)
                        label = f"{impl}{' causal' if causal else ''}"
                        ax.plot(xs, ys, style, marker="o", color=colors[impl], label=label)
            ax.set_xscale("log", base=2)
            lengths = sorted({row.length for row in rows})
            ax.set_xticks(lengths, [str(n) for n in lengths])
            ax.minorticks_off()
            ax.set_title(f"D = {dim}, {'forward' if direction == 'fwd' else 'backward'}")
            ax.set_xlabel("sequence length L")
            ax.set_ylabel("TFLOP/s")
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(f"bf16 attention, model dim {MODEL_DIM}, B·L = {TOKENS} (solid: non-causal, dashed: causal)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- main -------------------------------------------------------------------------------------------


def cuda_ready() -> str:
    """Why this machine cannot run the benchmark, or "" when it can."""
    if not torch.cuda.is_available():
        return f"no CUDA GPU visible to torch {torch.__version__}"
    available = getattr(of, "available_devices", None)
    devices = list(available()) if available is not None else ["cpu"]
    wanted = f"cuda:{torch.cuda.current_device()}"
    if wanted not in devices:
        return (
            f"orchard-flash {getattr(of, '__version__', '?')} has no kernels for {wanted} in this build "
            f"(available_devices() = {devices}); build it with CUDA"
        )
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--shapes",
        choices=("full", "quick"),
        default="full",
        help="full: the anchor's 16 shapes; quick: D=128, L=2048 and 8192, causal and not",
    )
    parser.add_argument("--dims", type=int, nargs="+", help="head dims (overrides --shapes)")
    parser.add_argument("--lengths", type=int, nargs="+", help="sequence lengths (overrides --shapes)")
    parser.add_argument(
        "--only-ours",
        action="store_true",
        help="time orchard only (torch still runs once per shape as the correctness reference)",
    )
    parser.add_argument("--warmup", type=float, default=25.0, help="warm-up per measurement, ms")
    parser.add_argument("--rep", type=float, default=100.0, help="timed calls per measurement, ms")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dropout",
        type=float,
        nargs="+",
        default=[0.0],
        help="dropout_p of the timed calls, one row per value (e.g. 0 0.1)",
    )
    parser.add_argument("--out", type=Path, help="write a Markdown report here")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    parser.add_argument("--plot", type=Path, help="write a TFLOP/s vs L plot here (png, svg, pdf)")
    parser.add_argument(
        "--replot",
        type=Path,
        metavar="JSON",
        help="no GPU needed: draw --plot from the --json file of an earlier run, and exit",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 (not 0) when there is no GPU or no CUDA build of orchard-flash, or when a "
        "shape fails its check",
    )
    args = parser.parse_args()

    if args.replot:
        payload = json.loads(args.replot.read_text(encoding="utf-8"))
        fields = Row.__dataclass_fields__
        rows = [Row(**{k: v for k, v in saved.items() if k in fields}) for saved in payload["rows"]]
        if not args.plot:
            parser.error("--replot needs --plot")
        plot(rows, args.plot)
        print(f"wrote {args.plot}")
        return 0

    reason = cuda_ready()
    if reason:
        target = f"; {args.out} left as it is" if args.out else ""
        print(f"bench_flash_cuda: skipped: {reason}{target}", file=sys.stderr)
        return 1 if args.strict else 0

    preset = QUICK if args.shapes == "quick" else {"dims": DIMS, "lengths": LENGTHS}
    dims, lengths = args.dims or preset["dims"], args.lengths or preset["lengths"]
    device = torch.device("cuda", torch.cuda.current_device())
    timer, how = make_timer(args.warmup, args.rep)
    env = environment(how)
    print(
        f"{env['gpu']}; torch {env['torch']} (CUDA {env['cuda']}, cuDNN {env['cudnn']}); "
        f"orchard-flash {env['orchard_flash']}",
        flush=True,
    )
    print(f"timing: {how}; one input set per shape (tensors >= 32 MiB: L2 effects small)", flush=True)

    rows = []
    for dim in dims:
        for length in lengths:
            for causal in (False, True):
                for dropout in args.dropout:
                    row = run_shape(
                        dim,
                        length,
                        causal,
                        device=device,
                        timer=timer,
                        only_ours=args.only_ours,
                        seed=args.seed,
                        dropout=dropout,
                    )
                    torch.cuda.empty_cache()
                    rows.append(row)
                    print_row(row)
    print(first_bar(rows))

    if args.out:
        args.out.write_text(markdown(rows, env), encoding="utf-8")
        print(f"wrote {args.out}")
    if args.json:
        payload = {
            "environment": env,
            "rows": [
                {**asdict(row), "tflops": {i: {d: row.tflops(i, d) for d in ("fwd", "bwd")} for i in IMPLS}}
                for row in rows
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    if args.plot:
        plot(rows, args.plot)
        print(f"wrote {args.plot}")
    failed = [row for row in rows if not row.check.startswith(("ok", "unchecked"))]
    if failed:
        print(f"{len(failed)} shape(s) failed their check: " + "; ".join(r.label() for r in failed))
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
