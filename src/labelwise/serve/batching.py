"""Dynamic batching: concurrent requests share one model call, as TF Serving and Triton batch.

Each image a request sends is one queue item ``(x, future)``. One worker task takes the oldest
item and waits until either ``max_batch`` items are queued or ``max_delay`` seconds have passed
since that oldest item arrived, then runs ``run_model(items)`` on up to ``max_batch`` items in
a single worker thread (model calls never overlap; the event loop keeps accepting requests
meanwhile). Row ``i`` of the result resolves item ``i``'s future. While a call runs, new items
queue up and go together in the next call, so under load batches grow by themselves and the
delay is only paid by a lone request on an idle server.

When a call on several items fails, each item is run again on its own, so one bad input
fails only its own request; the worker then carries on. Only numpy and asyncio here: the model
is a callable.
"""

from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["Batcher", "BatchStats"]


@dataclass
class BatchStats:
    """What the batcher did: ``calls`` model calls, ``images`` images in them, and the size of
    every call in order (``sizes``, the last 10 000 kept)."""

    calls: int = 0
    images: int = 0
    sizes: collections.deque = field(default_factory=lambda: collections.deque(maxlen=10_000))

    def to_dict(self) -> dict:
        """JSON form: calls, images and mean batch size (images / calls)."""
        return {"calls": self.calls, "images": self.images,
                "mean_batch": round(self.images / self.calls, 3) if self.calls else None}


@dataclass
class _Item:
    x: Any
    future: asyncio.Future
    arrived: float


class Batcher:
    """Gather items into batches of at most ``max_batch`` within ``max_delay_ms`` of the oldest
    item's arrival; ``await batcher.submit(x)`` returns row ``x``'s model output.

    ``run_model(items: list) -> (len(items), ...) array`` runs in one dedicated thread (items
    are whatever was submitted: arrays, encoded images). The
    worker task starts on the first :meth:`submit` (so the batcher works under any ASGI
    server or test client, with or without lifespan events) and stops with :meth:`close`.
    """

    def __init__(self, run_model: Callable[[Sequence[Any]], np.ndarray], *, max_batch: int = 32,
                 max_delay_ms: float = 5.0):
        if int(max_batch) < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if float(max_delay_ms) < 0:
            raise ValueError(f"max_delay_ms must be 0 or more, got {max_delay_ms}")
        self.run_model = run_model
        self.max_batch = int(max_batch)
        self.max_delay = float(max_delay_ms) / 1000.0
        self.stats = BatchStats()
        self._pending: collections.deque[_Item] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labelwise-model")

    async def submit(self, x: Any) -> np.ndarray:
        """Queue one input (no batch axis) and wait for its output row."""
        loop = asyncio.get_running_loop()
        self._ensure_worker(loop)
        item = _Item(x, loop.create_future(), time.perf_counter())
        self._pending.append(item)
        assert self._wakeup is not None
        self._wakeup.set()
        return await item.future

    async def submit_many(self, xs) -> list[np.ndarray]:
        """Queue several inputs at once (they may land in one or several calls); outputs in order."""
        return list(await asyncio.gather(*(self.submit(x) for x in xs)))

    def _ensure_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._worker is not None and not self._worker.done() and self._loop is loop:
            return
        self._loop = loop
        self._wakeup = asyncio.Event()
        self._worker = loop.create_task(self._run(), name="labelwise-batcher")

    async def close(self) -> None:
        """Stop the worker (pending requests get an error) and the model thread."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except (asyncio.CancelledError, Exception):
                pass
            self._worker = None
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done():
                item.future.set_exception(RuntimeError("the server is shutting down"))
        self._executor.shutdown(wait=False)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            if not self._pending:
                wakeup.clear()
                await wakeup.wait()
                continue
            # wait for a full batch or the oldest item's deadline, whichever comes first
            deadline = self._pending[0].arrived + self.max_delay
            while len(self._pending) < self.max_batch:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                wakeup.clear()
                try:
                    await asyncio.wait_for(wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            items = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
            items = [it for it in items if not it.future.done()]  # a client that went away
            if not items:
                continue
            await self._call(loop, items, retry_alone=len(items) > 1)

    async def _call(self, loop: asyncio.AbstractEventLoop, items: list[_Item], *, retry_alone: bool) -> None:
        try:
            out = await loop.run_in_executor(self._executor, self._checked, [it.x for it in items])
        except Exception as e:
            if retry_alone:  # find the bad input(s): each alone, so only they fail
                for it in items:
                    await self._call(loop, [it], retry_alone=False)
                return
            for it in items:
                if not it.future.done():
                    it.future.set_exception(e)
            return
        self.stats.calls += 1
        self.stats.images += len(items)
        self.stats.sizes.append(len(items))
        for i, it in enumerate(items):
            if not it.future.done():
                it.future.set_result(out[i])

    def _checked(self, xs: list) -> np.ndarray:
        out = np.asarray(self.run_model(xs))
        if out.shape[:1] != (len(xs),):
            raise RuntimeError(f"the model returned shape {out.shape} for a batch of {len(xs)}")
        return out
