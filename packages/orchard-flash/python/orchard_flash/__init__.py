"""orchard-flash: fused FlashAttention kernels for Orchard.

Built against orchard-core's installed headers and library; importing checks
that the orchard-core installed now is the one it was built against.
"""

from __future__ import annotations

import orchard_core

from ._build_info import CORE_VERSION as _BUILT_AGAINST
from ._build_info import VERSION

__version__: str = VERSION


def check_core_version(built_against: str, installed: str) -> None:
    """Raise ImportError when orchard-flash was built against another orchard-core."""
    if built_against != installed:
        raise ImportError(
            f"orchard-flash {__version__} was built against orchard-core {built_against}, "
            f"but orchard-core {installed} is installed. Reinstall a matching pair, e.g. "
            "`pip install --force-reinstall --find-links dist orchard-core orchard-flash`, "
            "or rebuild orchard-flash from source against this orchard-core."
        )


# Checked before the extension loads, so a mismatch is a clear error rather
# than an unresolved symbol.
check_core_version(_BUILT_AGAINST, orchard_core.__version__)

from ._attention import (  # noqa: E402
    available_devices,
    backward,
    dropout_mask,
    flash_attention,
    forward,
    supported_dtypes,
)
from ._flash import core_devices, core_version_built_against, core_version_linked  # noqa: E402

check_core_version(core_version_linked(), orchard_core.__version__)

__all__ = [
    "available_devices",
    "backward",
    "check_core_version",
    "core_devices",
    "core_version_built_against",
    "core_version_linked",
    "dropout_mask",
    "flash_attention",
    "forward",
    "supported_dtypes",
]
