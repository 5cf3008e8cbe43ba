"""Argument types shared by the command lines (torch-free, so any tool may use them)."""

from __future__ import annotations

import argparse


def parse_size(text: str) -> tuple[int, int]:
    """Parse an image size 'HxW' (e.g. '384x768') into (height, width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 384x768, got {text!r}") from None
    return h, w
