"""The package version, where every layer may read it (``modelplane.__version__`` re-exports it;
importing ``modelplane`` itself from a lower layer would drag the whole package in)."""

from __future__ import annotations

__all__ = ["VERSION"]

VERSION = "0.1.0"
