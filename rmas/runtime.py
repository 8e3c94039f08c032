"""Running rmas's coroutines from a command: one event loop policy for every ``rmas`` command."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["run_async"]


def run_async(coro: Any) -> Any:
    """Run a coroutine on uvloop when available (about 15% faster for gRPC), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
