"""Orchard's sessions. The test command is `nox -s tests` (see README.md).

Packages build in dependency order; orchard-flash compiles against the
orchard-core wheel built just before it, found through --find-links, exactly as
a user's `pip install --find-links dist orchard-flash` would.
"""

from __future__ import annotations

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

nox.options.sessions = ["lint", "tests", "devbuild"]


def torch_constraints() -> list[str]:
    """Pins the CPU build of torch on Linux (an unpinned torch pulls CUDA wheels)."""
    if sys.platform.startswith("linux"):
        return ["--constraint", str(ROOT / "ci" / "constraints-linux-cpu.txt")]
    return []


def build_wheels(session: nox.Session, wheel_dir: Path) -> list[Path]:
    """One wheel per package into `wheel_dir`, each built in an isolated environment."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    for stale in wheel_dir.glob("orchard_*.whl"):
        stale.unlink()
    for package in PACKAGES:
        session.log(f"building {package}")
        session.run(
            "python", "-m", "pip", "wheel", "--no-deps", "--find-links", str(wheel_dir),
            "--wheel-dir", str(wheel_dir), str(ROOT / "packages" / package),
        )  # fmt: skip
    return sorted(wheel_dir.glob("orchard_*.whl"))


@nox.session
def build(session: nox.Session) -> None:
    """Write a wheel per package to dist/."""
    session.install("pip>=23")
    for wheel in build_wheels(session, DIST):
        session.log(f"wrote {wheel.relative_to(ROOT)}")


def install_packages(session: nox.Session, *extras: str) -> None:
    """Build the three packages and install them, torch and `extras` into the session's venv."""
    wheels = build_wheels(session, Path(session.create_tmp()) / "wheels")
    # scipy-openblas32: orchard-core's BLAS on Linux, a run requirement the --no-deps install skips.
    session.install(*torch_constraints(), "numpy", "scipy-openblas32", "torch", *extras)
    session.install("--no-deps", "--force-reinstall", *map(str, wheels))
    session.run("python", "-m", "pip", "check")


@nox.session
def tests(session: nox.Session) -> None:
    """Build the three packages, install them into a fresh venv and run every package's tests."""
    install_packages(session, "pytest", "hypothesis", "mypy", *BRIDGE_EXTRAS)
    test_dirs = [str(ROOT / "packages" / package / "tests") for package in PACKAGES]
    session.run("python", "-m", "pytest", *test_dirs, *session.posargs)
    # The type stub of the native module must match what it really exports.
    allowlist = ROOT / "packages" / "orchard-core" / "stubtest-allowlist.txt"
    session.run("python", "-m", "mypy.stubtest", "orchard_core._core", "--allowlist", str(allowlist))


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
