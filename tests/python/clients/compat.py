"""Helpers the asyncio client scenarios share: waiting for a condition with a
deadline, and running the trailing kube-apiserver parity checks so that all
of them report before the script fails."""

import asyncio
import time


async def wait_until(cond, timeout: float, what: str):
    """Polls the coroutine function `cond` until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await cond()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


async def run_checks(checks, arg, errors) -> list:
    """Runs every `(name, check)` with `arg`, printing `name: ok` or
    `name: FAILED: ...`; returns the failures (exceptions of the types in
    `errors` count as failures, anything else propagates)."""
    failed = []
    for name, check in checks:
        try:
            await check(arg)
            print(f"{name}: ok")
        except errors as e:
            print(f"{name}: FAILED: {e}")
            failed.append(f"{name}: {e}")
    return failed
