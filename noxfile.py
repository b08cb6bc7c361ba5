"""Orchard's sessions. The test command is `nox -s tests` (see README.md).

Packages build in dependency order; orchard-flash compiles against the
orchard-core wheel built just before it, found through --find-links, exactly as
a user's `pip install --find-links dist orchard-flash` would.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PACKAGES = ["orchard-core", "orchard-flash", "orchard-torch-bridge"]  # each builds against those before it
DIST = ROOT / "dist"
LINT_TOOLS = ["ruff==0.17.6", "clang-format==23.1.5"]
# What the bridge's GPT-2 switch, demo and parity suite need beyond torch.
BRIDGE_EXTRAS = ["transformers>=5.0", "matplotlib", "tqdm"]
CPP_SUFFIXES = {".h", ".cpp", ".mm", ".cu", ".cuh"}
# The packages with a `cuda` meson option (off by default), and how a wheel build turns it on.
CUDA_PACKAGES = {"orchard-core", "orchard-flash"}
CUDA_SETUP_ARGS = ["-Csetup-args=-Dcuda=enabled"]

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


def build_wheels(session: nox.Session, wheel_dir: Path, *, cuda: bool = False) -> list[Path]:
    """One wheel per package into `wheel_dir`, each built in an isolated environment.

    With `cuda`, orchard-core and orchard-flash are built with their CUDA backends.
    """
    wheel_dir.mkdir(parents=True, exist_ok=True)
    for stale in wheel_dir.glob("orchard_*.whl"):
        stale.unlink()
    for package in PACKAGES:
        setup_args = CUDA_SETUP_ARGS if cuda and package in CUDA_PACKAGES else []
        session.log(f"building {package}{' with CUDA' if setup_args else ''}")
        session.run(
            "python", "-m", "pip", "wheel", "--no-deps", "--find-links", str(wheel_dir),
            "--wheel-dir", str(wheel_dir), *setup_args, str(ROOT / "packages" / package),
        )  # fmt: skip
    return sorted(wheel_dir.glob("orchard_*.whl"))


@nox.session
def build(session: nox.Session) -> None:
    """Write a wheel per package to dist/."""
    session.install("pip>=23")
    for wheel in build_wheels(session, DIST):
        session.log(f"wrote {wheel.relative_to(ROOT)}")


def install_packages(session: nox.Session, *extras: str, cuda: bool = False) -> None:
    """Build the three packages and install them, torch and `extras` into the session's venv."""
    wheels = build_wheels(session, Path(session.create_tmp()) / "wheels", cuda=cuda)
    # scipy-openblas32: orchard-core's BLAS on Linux, a run requirement the --no-deps install skips.
    session.install(*torch_constraints(), "numpy", "scipy-openblas32", "torch", *extras)
    session.install("--no-deps", "--force-reinstall", *map(str, wheels))
    session.run("python", "-m", "pip", "check")


TEST_TOOLS = ["pytest", "hypothesis", "mypy"]


def run_tests(session: nox.Session) -> None:
    """Every package's tests (extra pytest arguments from posargs), then the native module's stub.

    Both checks run even when the first fails; the session then fails, naming each that failed.
    """
    from nox.command import CommandFailed

    failed = []
    test_dirs = [str(ROOT / "packages" / package / "tests") for package in PACKAGES]
    try:
        session.run("python", "-m", "pytest", *test_dirs, *session.posargs)
    except CommandFailed as error:
        failed.append(f"pytest ({error.reason})")
        session.warn("pytest failed; running the type-stub check anyway")
    # The type stub of the native module must match what it really exports.
    allowlist = ROOT / "packages" / "orchard-core" / "stubtest-allowlist.txt"
    try:
        session.run("python", "-m", "mypy.stubtest", "orchard_core._core", "--allowlist", str(allowlist))
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
    """Train a small character-level GPT-2 twice, stock attention and Orchard's, and plot both."""
    install_packages(session, *BRIDGE_EXTRAS)
    script = ROOT / "packages" / "orchard-torch-bridge" / "demo" / "train_gpt2.py"
    session.run("python", str(script), "--out", str(ROOT / "demo-output"), *session.posargs)


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
