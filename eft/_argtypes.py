"""argparse ``type`` callables shared by the command modules (no heavy imports: the
CLI's start-up stays light, tests/test_cli_startup.py)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["integer_at_least", "finite_at_least_zero"]


def integer_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum`` (argparse names the option in
    its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def finite_at_least_zero(text: str) -> float:
    """An argparse ``type`` of a threshold: a finite number >= 0 (NaN or a negative
    value would silently drop everything; infinity is no threshold, and JSON cannot
    record it)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value
