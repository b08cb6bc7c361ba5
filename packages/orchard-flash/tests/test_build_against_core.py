"""orchard-flash is compiled against an installed orchard-core and checks it at import."""

import os

import orchard_core
import orchard_flash
import pytest


def test_built_against_the_installed_core():
    assert orchard_flash.core_version_built_against() == orchard_core.__version__
    assert orchard_flash.core_version_linked() == orchard_core.__version__


def test_native_module_links_to_the_core_library_in_the_package():
    # The extension must resolve liborchard_core from orchard_core's own lib/, not a build tree.
    with open(f"/proc/{os.getpid()}/maps", encoding="utf-8") as maps:
        loaded = {line.split()[-1] for line in maps if "liborchard_core" in line}
    if not loaded:
        pytest.skip("no /proc maps on this platform")
    assert loaded == {os.path.join(orchard_core.get_lib(), "liborchard_core.so")}


def test_calls_into_core_through_the_cpp_api(monkeypatch):
    monkeypatch.delenv("ORCHARD_METAL_FALLBACK", raising=False)
    assert orchard_flash.core_devices() == [str(d) for d in orchard_core.devices()]
    gpus = [str(d) for d in orchard_core.devices() if str(d).startswith("cuda")]
    monkeypatch.setenv("ORCHARD_METAL_FALLBACK", "cpu")
    assert orchard_flash.core_devices() == ["cpu", "metal", *gpus]


def test_version_mismatch_is_a_clear_import_error():
    orchard_flash.check_core_version("0.1.0", "0.1.0")
    with pytest.raises(ImportError, match=r"built against orchard-core 0\.0\.9, but orchard-core 0\.1\.0"):
        orchard_flash.check_core_version("0.0.9", "0.1.0")
