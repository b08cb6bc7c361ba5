"""``use_deterministic_algorithms``, as torch's: whether operators may trade bitwise
repeatability for speed. Off by default, as in torch; the one operator it changes today is
``nn.functional.scaled_dot_product_attention``'s backward on Hopper GPUs, which then sums dq
with float32 atomics (orchard-flash's ``deterministic=False``): faster, with dq's last bits
varying from run to run. Every other orchard-core kernel repeats its bits regardless.
"""

from __future__ import annotations

_enabled = False


def use_deterministic_algorithms(mode: bool) -> None:
    """Operators that have a faster path with run-to-run variation take it unless ``mode``."""
    global _enabled
    if not isinstance(mode, bool):
        raise TypeError(f"use_deterministic_algorithms: mode must be a bool, got {type(mode).__name__}")
    _enabled = mode


def are_deterministic_algorithms_enabled() -> bool:
    """Whether ``use_deterministic_algorithms(True)`` is in effect."""
    return _enabled
