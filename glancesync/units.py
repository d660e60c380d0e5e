"""One way to write sizes, durations and rates in every line a person reads.

Sizes are IEC binary units with the unit written (``B``, ``KiB``, ``MiB``, ``GiB``,
``TiB``: powers of 1024), one decimal: ``190.7 MiB`` for 200,000,000 bytes. Machine
outputs (JSON, metrics) carry exact bytes and seconds instead.
"""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def format_size(size: int | float) -> str:
    """``0 B``, ``999 B``, ``1.0 KiB``, ``190.7 MiB``, ``1.0 GiB``."""
    if size < 1024:
        return f"{int(size)} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            # 1023.96 MiB would round to "1024.0 MiB": say 1.0 GiB instead.
            if round(value, 1) >= 1024 and unit != _UNITS[-1]:
                continue
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def format_rate(size: int | float, seconds: float) -> str:
    """``12.3 MiB/s``; ``-`` when no time elapsed to divide by."""
    if seconds <= 0:
        return "-"
    return f"{format_size(size / seconds)}/s"


def format_duration(seconds: float) -> str:
    """``0.4 s``, ``59.9 s``, ``2 min 05 s``, ``1 h 02 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
