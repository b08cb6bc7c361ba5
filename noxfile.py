"""Orchard's sessions. The test command is `nox -s tests` (see README.md).

Packages build in dependency order; orchard-flash compiles against the
orchard-core wheel built just before it, found through --find-links, exactly as
a user's `pip install --find-links dist orchard-flash` would.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PACKAGES = ["orchard-core", "orchard-flash", "orchard-torch-bridge"]  # each builds against those before it
DIST = ROOT / "dist"
LINT_TOOLS = ["ruff==0.17.6", "clang-format==23.1.5"]
# What the bridge's GPT-2 switch, demo and parity suite need beyond torch.
BRIDGE_EXTRAS = ["transformers>=5.0", "matplotlib", "tqdm"]
CPP_SUFFIXES = {".h", ".cpp", ".mm", ".cu", ".cuh"}
# The compiled packages: each has a `cuda` meson option (off by default) and builds with the
# sanitizers; how a wheel build turns on each.
NATIVE_PACKAGES = {"orchard-core", "orchard-flash"}
CUDA_SETUP_ARGS = ["-Csetup-args=-Dcuda=enabled"]
# AddressSanitizer and UndefinedBehaviorSanitizer (docs/sanitize.md). -O1 (ASan's advice) and
# -g1 (line tables, enough for file:line in reports) compile in half the time of -O2 -g; assert()
# and libstdc++'s bounds checks (_GLIBCXX_ASSERTIONS) are on; frame pointers let ASan's fast
# unwinder give whole allocation and free stacks; float-cast-overflow (a float converted to an
# integer type that cannot hold it) is a UBSan check GCC leaves out of `undefined`.
SANITIZE_SETUP_ARGS = [
    "-Csetup-args=-Db_sanitize=address,undefined",
    "-Csetup-args=-Doptimization=1",
    "-Csetup-args=-Ddebug=false",
    "-Csetup-args=-Db_ndebug=false",
    "-Csetup-args=-Dcpp_args=-g1 -fno-omit-frame-pointer -fsanitize=float-cast-overflow",
]

nox.options.sessions = ["lint", "tests", "devbuild"]


def torch_constraints() -> list[str]:
    """Pins the CPU build of torch on Linux (an unpinned torch pulls CUDA wheels).

    ORCHARD_TORCH_CONSTRAINT overrides it: `none` pins nothing (a GPU machine, where pip's
    default torch is a CUDA build), any other value is a constraints file to use instead.
    """
    choice = os.environ.get("ORCHARD_TORCH_CONSTRAINT", "")
    if choice == "none":
        return []
    if choice:
        return ["--constraint", str(Path(choice).resolve())]
    if sys.platform.startswith("linux"):
        return ["--constraint", str(ROOT / "ci" / "constraints-linux-cpu.txt")]
    return []


def build_wheels(
    session: nox.Session,
    wheel_dir: Path,
    *,
    cuda: bool = False,
    sanitize_env: Mapping[str, str] | None = None,
) -> list[Path]:
    """One wheel per package into `wheel_dir`, each built in an isolated environment.

    With `cuda`, orchard-core and orchard-flash are built with their CUDA backends; with
    `sanitize_env` (sanitizer_env's), with the sanitizers.
    """
    wheel_dir.mkdir(parents=True, exist_ok=True)
    for stale in wheel_dir.glob("orchard_*.whl"):
        stale.unlink()
    sanitize = sanitize_env is not None
    native_args = [*(CUDA_SETUP_ARGS if cuda else []), *(SANITIZE_SETUP_ARGS if sanitize else [])]
    features = " and ".join(name for name, on in (("CUDA", cuda), ("the sanitizers", sanitize)) if on)
    for package in PACKAGES:
        native = package in NATIVE_PACKAGES
        session.log(f"building {package}{f' with {features}' if native and features else ''}")
        session.run(
            "python", "-m", "pip", "wheel", "--no-deps", "--find-links", str(wheel_dir),
            "--wheel-dir", str(wheel_dir), *(native_args if native else []), str(ROOT / "packages" / package),
            # orchard-flash's meson imports the orchard-core just built; an instrumented one loads
            # only with the sanitizers' runtime preloaded.
            env=sanitize_env if package == "orchard-flash" else None,
        )  # fmt: skip
    return sorted(wheel_dir.glob("orchard_*.whl"))


@nox.session
def build(session: nox.Session) -> None:
    """Write a wheel per package to dist/."""
    session.install("pip>=23")
    for wheel in build_wheels(session, DIST):
        session.log(f"wrote {wheel.relative_to(ROOT)}")


def install_packages(
    session: nox.Session, *extras: str, cuda: bool = False, sanitize_env: Mapping[str, str] | None = None
) -> None:
    """Build the three packages and install them, torch and `extras` into the session's venv."""
    wheels = build_wheels(
        session, Path(session.create_tmp()) / "wheels", cuda=cuda, sanitize_env=sanitize_env
    )
    # scipy-openblas32: orchard-core's BLAS on Linux, a run requirement the --no-deps install skips.
    session.install(*torch_constraints(), "numpy", "scipy-openblas32", "torch", *extras)
    session.install("--no-deps", "--force-reinstall", *map(str, wheels))
    session.run("python", "-m", "pip", "check")


TEST_TOOLS = ["pytest", "hypothesis", "mypy", "safetensors>=0.8"]


def run_tests(
    session: nox.Session, env: Mapping[str, str] | None = None, pytest_args: Sequence[str] = ()
) -> None:
    """Every package's tests (pytest arguments: `pytest_args`, then posargs), then the native
    module's stub, both in `env`.

    Both checks run even when the first fails; the session then fails, naming each that failed.
    """
    from nox.command import CommandFailed

    failed = []
    test_dirs = [str(ROOT / "packages" / package / "tests") for package in PACKAGES] + [
        str(ROOT / "demo" / "tests")
    ]
    try:
        session.run("python", "-m", "pytest", *test_dirs, *pytest_args, *session.posargs, env=env)
    except CommandFailed as error:
        failed.append(f"pytest ({error.reason})")
        session.warn("pytest failed; running the type-stub check anyway")
    # The type stub of the native module must match what it really exports.
    allowlist = ROOT / "packages" / "orchard-core" / "stubtest-allowlist.txt"
    try:
        session.run(
            "python", "-m", "mypy.stubtest", "orchard_core._core", "--allowlist", str(allowlist), env=env
        )
    except CommandFailed as error:
        failed.append(f"the type-stub check, mypy.stubtest orchard_core._core ({error.reason})")
    if failed:
        session.error("failed: " + "; ".join(failed))


@nox.session
def tests(session: nox.Session) -> None:
    """Build the three packages, install them into a fresh venv and run every package's tests."""
    install_packages(session, *TEST_TOOLS, *BRIDGE_EXTRAS)
    run_tests(session)


@nox.session
def cuda(session: nox.Session) -> None:
    """`tests` with orchard-core and orchard-flash built with CUDA (`-Dcuda=enabled`).

    Needs nvcc and the CUDA 13 toolkit (docs/cuda.md). The GPU tests run where torch and
    orchard see a GPU and skip elsewhere, so without one this is a compile check plus the CPU
    tests. torch is pinned to the CPU build like every session; on a GPU machine run
    `ORCHARD_TORCH_CONSTRAINT=none nox -s cuda` for pip's default (CUDA) torch, or point the
    variable at a constraints file of your own. Arguments after `--` go to pytest.
    """
    install_packages(session, *TEST_TOOLS, *BRIDGE_EXTRAS, cuda=True)
    run_tests(session)


# Under ASan, freed CPU blocks go back to the allocator, which poisons them: a use after free of a
# large tensor is then caught, where the host block cache would keep the memory valid.
NO_HOST_CACHE = {"ORCHARD_HOST_CACHE_MB": "0"}


def sanitizer_env(session: nox.Session) -> dict[str, str]:
    """The environment a process needs to load orchard built with the sanitizers.

    Python is not instrumented, so GCC's ASan runtime is preloaded (it must come first), and
    libstdc++ with it: ASan wraps __cxa_throw by looking up the real one when it starts, before
    Python would load libstdc++, and a C++ exception would then crash it. A caller's own
    ASAN_OPTIONS and UBSAN_OPTIONS come after these and override them (docs/sanitize.md).
    """

    def runtime(name: str) -> str:
        path = str(session.run("gcc", f"-print-file-name={name}", silent=True, external=True)).strip()
        if not os.path.isabs(path):  # gcc echoes the bare name of a library it does not have
            session.error(f"gcc has no {name}: the sanitize session needs GCC's sanitizer runtime")
        return path

    def options(ours: list[str], variable: str) -> str:
        theirs = os.environ.get(variable)
        return ":".join([*ours, theirs] if theirs else ours)

    # SIGABRT rather than exit(1) after a report: pytest's faulthandler then prints the Python
    # stack, which names the test.
    abort = "abort_on_error=1"
    asan = [
        abort,
        # CPython, numpy and torch keep memory until exit by design; leak reports would be noise.
        "detect_leaks=0",
        # The out-of-memory tests ask for 2**62 bytes: posix_memalign must fail with ENOMEM for
        # orchard to raise OutOfMemoryError, rather than ASan stopping the process.
        "allocator_may_return_null=1",
    ]
    # halt_on_error: undefined behaviour stops the run as an ASan error does (the code is built to
    # let UBSan go on, for halt_on_error=0); print_stacktrace: where it happened.
    ubsan = [abort, "halt_on_error=1", "print_stacktrace=1"]
    return {
        "LD_PRELOAD": f"{runtime('libasan.so')} {runtime('libstdc++.so')}",
        "ASAN_OPTIONS": options(asan, "ASAN_OPTIONS"),
        "UBSAN_OPTIONS": options(ubsan, "UBSAN_OPTIONS"),
        **NO_HOST_CACHE,
    }


@nox.session
def sanitize(session: nox.Session) -> None:
    """`tests` with orchard-core and orchard-flash built with AddressSanitizer and UBSan (GCC).

    docs/sanitize.md says what it checks and how to read a report. Arguments after `--` go to
    pytest.
    """
    env = sanitizer_env(session)
    install_packages(session, *TEST_TOOLS, *BRIDGE_EXTRAS, sanitize_env=env)
    # The sanitizers write to file descriptor 2, which pytest's default capture keeps until the
    # test has failed, and loses when the process aborts: capture sys.stdout and sys.stderr only.
    # The bridge's 80-step GPT-2 convergence check (stock vs orchard loss within a margin) missed
    # its margin once here in a whole run (2.35 vs 1.93) and passed alone and with the bridge
    # suite, at the same commit; under investigation (docs/sanitize.md). Its memory and UB checks
    # are the kernels', which the other GPT-2 tests exercise; `tests` and `cuda` still run it.
    flaky_here = "packages/orchard-torch-bridge/tests/test_gpt2.py::test_training_converges_like_stock"
    run_tests(session, env, pytest_args=["--capture=sys", "--deselect", flaky_here])


# The Metal harness (docs/metal.md): orchard-core with its Metal backend emulated on Linux,
# compiled by clang (the .metal files are compiled as C++ with clang's vector extensions).
METAL_SETUP_ARGS = ["-Csetup-args=-Dmetal=emulated"]
CLANG = "clang-16"
# Where lane order can hide a race, a few seeds of the random order show it (docs/metal.md).
METAL_LANE_SEEDS = (1, 2)


def clang_env(session: nox.Session) -> dict[str, str]:
    if shutil.which(f"{CLANG}") is None:
        session.error(f"{CLANG} is not installed: apt-get install clang-16 libclang-rt-16-dev (Debian 12)")
    return {"CC": CLANG, "CXX": CLANG.replace("clang", "clang++")}


def install_metal_packages(session: nox.Session, setup_args: Sequence[str], env: Mapping[str, str]) -> None:
    """Build orchard-core with the emulated Metal backend and orchard-flash against it (which then
    compiles its Metal kernels for orchard-core's harness), and install both with the test tools."""
    wheel_dir = Path(session.create_tmp()) / "metal-wheels"
    shutil.rmtree(wheel_dir, ignore_errors=True)
    for package in ("orchard-core", "orchard-flash"):
        session.run(
            "python", "-m", "pip", "wheel", "--no-deps", "--find-links", str(wheel_dir), "--wheel-dir",
            str(wheel_dir), *(METAL_SETUP_ARGS if package == "orchard-core" else []), *setup_args,
            str(ROOT / "packages" / package),
            # orchard-flash's meson imports the orchard-core just built (under ASan, with its runtime).
            env={**clang_env(session), **(env if package == "orchard-flash" else {})},
        )  # fmt: skip
    session.install(
        *torch_constraints(), "numpy", "scipy-openblas32", "torch", "pytest", "hypothesis", "safetensors>=0.8"
    )
    session.install("--no-deps", "--force-reinstall", *map(str, wheel_dir.glob("orchard_*.whl")))


@nox.session
def metal(session: nox.Session) -> None:
    """orchard-core's and orchard-flash's suites on the "metal" device, the kernels run by the Linux
    harness.

    Three modes (docs/metal.md): both suites whole in the default lane order; their Metal cases in
    random lane orders (METAL_LANE_SEEDS); their Metal cases with both packages built with clang's
    AddressSanitizer. Arguments after `--` go to pytest.
    """
    suites = [str(ROOT / "packages" / package / "tests") for package in ("orchard-core", "orchard-flash")]
    # The random orders and ASan look for races and overflows, which the small shapes show as well
    # as the flash suite's longest sequences (about 2.5 of its 4.5 minutes here, in each mode).
    metal_cases = ["-k", "metal and not 1000x1000 and not 2048x2048"]
    # A flash Metal case that skips (no "metal" device listed) fails instead.
    require = {"ORCHARD_TEST_REQUIRE_METAL": "1"}
    # clang links LLVM's OpenMP runtime, torch GCC's: this build holds two in one process, which
    # the threading policy's test forbids for the shipped (GCC) build that `tests` checks.
    one_openmp = "packages/orchard-core/tests/test_threads.py::test_the_policy_holds_in_either_import_order"
    install_metal_packages(session, [], {})
    session.run("python", "-m", "pytest", *suites, "--deselect", one_openmp, *session.posargs, env=require)
    for seed in METAL_LANE_SEEDS:
        order = {**require, "ORCHARD_METAL_LANE_ORDER": "random", "ORCHARD_METAL_LANE_SEED": str(seed)}
        session.run("python", "-m", "pytest", *suites, *metal_cases, *session.posargs, env=order)
    asan_runtime = str(
        session.run(CLANG, "-print-file-name=libclang_rt.asan-x86_64.so", silent=True, external=True)
    ).strip()
    asan = {
        "LD_PRELOAD": asan_runtime,
        "ASAN_OPTIONS": "abort_on_error=1:detect_leaks=0:allocator_may_return_null=1",
        "ORCHARD_METAL_HARNESS_ASAN": "1",
        **NO_HOST_CACHE,
    }
    install_metal_packages(
        session, ["-Csetup-args=-Db_sanitize=address", "-Csetup-args=-Db_lundef=false"], asan
    )
    session.run(
        "python", "-m", "pytest", *suites, *metal_cases, "--capture=sys", *session.posargs,
        env={**require, **asan},
    )  # fmt: skip


@nox.session
def cuda_build(session: nox.Session) -> None:
    """CI's CUDA check without a GPU: build orchard-core and orchard-flash with CUDA, import both."""
    wheels = build_wheels(session, Path(session.create_tmp()) / "wheels", cuda=True)
    session.install("numpy", "scipy-openblas32")
    native = [str(wheel) for wheel in wheels if not wheel.name.startswith("orchard_torch_bridge")]
    session.install("--no-deps", "--force-reinstall", *native)
    check = (
        "import orchard_core, orchard_flash; from orchard_flash import _flash; "
        "assert orchard_core._core._built_with_cuda and _flash._built_with_cuda(), 'built without CUDA'; "
        "print('CUDA build imports; devices', orchard_flash.available_devices())"
    )
    session.run("python", "-c", check)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against torch and numpy in the same run; tables go to docs/benchmarks/."""
    install_packages(session, *BRIDGE_EXTRAS)
    out = ROOT / "docs" / "benchmarks"
    # Every packages/*/benchmarks/bench_NAME.py writes docs/benchmarks/NAME.md.
    for script in sorted(ROOT.glob("packages/*/benchmarks/bench_*.py")):
        name = script.stem.removeprefix("bench_")
        session.run("python", str(script), "--out", str(out / f"{name}.md"))


@nox.session
def demo(session: nox.Session) -> None:
    """Train a small character-level GPT-2 twice and plot both runs: stock attention and Orchard's
    through the bridge (default), or with `-- --engine orchard` orchard-core alone beside stock torch
    (demo/train_native.py)."""
    install_packages(session, *BRIDGE_EXTRAS)
    if "--engine" in session.posargs:
        script, out = ROOT / "demo" / "train_native.py", ROOT / "demo-output-native"
    else:
        script, out = (
            ROOT / "packages" / "orchard-torch-bridge" / "demo" / "train_gpt2.py",
            ROOT / "demo-output",
        )
    session.run("python", str(script), "--out", str(out), *session.posargs)


@nox.session
def parity(session: nox.Session) -> None:
    """Every parity test (orchard vs torch), then docs/parity.md, the migration scoreboard."""
    install_packages(session, "pytest", "hypothesis", *BRIDGE_EXTRAS)
    session.run("python", str(ROOT / "packages" / "orchard-torch-bridge" / "parity" / "run_parity.py"),
                "--out", str(ROOT / "docs" / "parity.md"), *session.posargs)  # fmt: skip


@nox.session
def lint(session: nox.Session) -> None:
    """ruff for Python, clang-format for C++ (check only; `nox -s lint -- --fix` rewrites)."""
    fix = "--fix" in session.posargs
    session.install(*LINT_TOOLS)
    session.run("ruff", "check", *(["--fix"] if fix else []), ".")
    session.run("ruff", "format", *([] if fix else ["--check"]), ".")
    sources = [str(p) for p in sorted((ROOT / "packages").rglob("*")) if p.suffix in CPP_SUFFIXES]
    session.run("clang-format", *(["-i"] if fix else ["--dry-run", "--Werror"]), *sources)


@nox.session
def devbuild(session: nox.Session) -> None:
    """Configure and compile the top-level development build of all three packages."""
    session.install("meson>=1.3", "ninja", "pybind11>=2.12", "numpy", "scipy-openblas32")
    build_dir = Path(session.create_tmp()) / "devbuild"
    shutil.rmtree(build_dir, ignore_errors=True)
    session.run("meson", "setup", str(build_dir), str(ROOT))
    session.run("ninja", "-C", str(build_dir))


@nox.session(python=False)
def clean(session: nox.Session) -> None:
    """Remove build outputs (dist/, build/)."""
    for path in (DIST, ROOT / "build"):
        shutil.rmtree(path, ignore_errors=True)
