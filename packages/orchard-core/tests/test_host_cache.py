"""The CPU's cache of large host blocks (src/backend/cpu/host_block_cache.h): freed blocks of a
MiB and more are kept and handed to the next tensor of their size class, already faulted in;
memory_stats("cpu") counts them; ORCHARD_HOST_CACHE_MB bounds them."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap

import orchard_core as oc
import pytest

MIB = 1 << 20

# The sanitizer runs turn the cache off (noxfile.py), so that ASan sees every free.
needs_the_cache = pytest.mark.skipif(
    "ORCHARD_HOST_CACHE_MB" in os.environ, reason="ORCHARD_HOST_CACHE_MB sets this process's cache"
)


def _size_class(nbytes: int) -> int:
    """The bytes a request gets: from 1 MiB up, rounded up to an eighth of its power of two."""
    if nbytes < MIB:
        return nbytes
    step = (1 << (nbytes.bit_length() - 1)) // 8
    return -(-nbytes // step) * step


@needs_the_cache
def test_a_freed_block_serves_the_next_tensor_of_its_size_class():
    a = oc.empty((4 * MIB + 1,), dtype=oc.bool)  # class 4.5 MiB
    address = a.data_ptr()
    del a
    b = oc.empty((4 * MIB + 400_000,), dtype=oc.bool)  # the same class
    assert b.data_ptr() == address
    c = oc.empty((4 * MIB + 600_000,), dtype=oc.bool)  # the next class: a block of its own
    assert c.data_ptr() != address


@needs_the_cache
def test_memory_stats_count_live_and_kept_bytes():
    before = oc.memory_stats("cpu")
    t = oc.empty((3 * MIB + 5,), dtype=oc.bool)
    held = _size_class(3 * MIB + 5)
    live = oc.memory_stats("cpu")
    assert live["in_use"] == before["in_use"] + held
    assert live["in_use_peak"] >= live["in_use"]
    del t
    after = oc.memory_stats("cpu")
    assert after["in_use"] == before["in_use"]
    assert after["reserved"] - after["in_use"] >= held  # kept, not given back
    assert after["reserved_peak"] >= after["reserved"]
    small = oc.empty((1000,), dtype=oc.float32)  # small blocks are counted, never kept
    assert oc.memory_stats("cpu")["in_use"] == after["in_use"] + 4000
    del small


@needs_the_cache
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts page faults through getrusage")
def test_a_reused_block_is_written_without_page_faults():
    # 32 MiB written once, freed, then a new tensor of the same size written: kept pages are
    # already mapped (glibc's fresh mapping would fault once per 4 KiB page: 8,192 times).
    first = oc.full((8 * MIB,), 1.0, dtype=oc.float32)
    del first
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    second = oc.full((8 * MIB,), 2.0, dtype=oc.float32)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    assert float(second[12345].item()) == 2.0
    assert faults < 256, f"{faults} page faults writing a reused 32 MiB block"


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_capacity_of_zero_keeps_nothing():
    done = _run(
        """
        import orchard_core as oc
        t = oc.empty((4 << 20,), dtype=oc.bool)
        del t
        s = oc.memory_stats("cpu")
        print(s["reserved"] - s["in_use"])
        """,
        ORCHARD_HOST_CACHE_MB="0",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0"]


def test_the_cache_frees_its_largest_blocks_to_stay_within_capacity():
    done = _run(
        """
        import orchard_core as oc
        a, b, c = (oc.empty((n << 20,), dtype=oc.bool) for n in (4, 3, 2))
        del a, b  # 7 MiB into a cache of 6: the 4 MiB block makes room for the 3
        del c  # 5 MiB kept
        s = oc.memory_stats("cpu")
        print(s["reserved"] - s["in_use"])
        """,
        ORCHARD_HOST_CACHE_MB="6",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(5 * MIB)]


def test_a_bad_capacity_raises_naming_it():
    done = _run(
        """
        import orchard_core as oc
        try:
            oc.empty((10,))
        except ValueError as e:
            print(e)
        """,
        ORCHARD_HOST_CACHE_MB="lots",
    )
    assert done.returncode == 0, done.stderr
    assert "ORCHARD_HOST_CACHE_MB must be a whole number of MiB" in done.stdout
    assert "'lots'" in done.stdout
