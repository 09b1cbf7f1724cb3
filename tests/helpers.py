"""Test helpers shared by several test modules."""

from __future__ import annotations

from eft.review.background import live_server

__all__ = ["live_server"]
