"""The event loop writ's processes run on."""

from __future__ import annotations

import asyncio
import importlib.util

from writ import loop


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_run_returns_the_coroutines_result_on_uvloop_when_installed() -> None:
    module = loop.run(_loop_module())
    if importlib.util.find_spec("uvloop") is not None:
        assert module.startswith("uvloop")
    else:
        assert module.startswith("asyncio")
