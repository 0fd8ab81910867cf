"""
The one doorway from the event loop to the ORM.

Django's ORM is synchronous and its connections are per thread, so every query
runs in a worker thread, with stale connections closed around it as Django
does around a request.
"""

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import close_old_connections

__all__ = ["run_orm"]

P = ParamSpec("P")
T = TypeVar("T")


async def run_orm(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func`` in a worker thread and return its result."""
    return await asyncio.to_thread(_call, func, *args, **kwargs)


def _call(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    close_old_connections()
    try:
        return func(*args, **kwargs)
    finally:
        close_old_connections()
