"""Rendering charts in worker subprocesses: `ChartRenderer(processes, timeout)`.

A worker receives the chart's *data*, writes the plotting code itself with
`envs.charts.plotting.plotting_code` and runs it (`envs.charts.render.render_png`) in a
namespace that can import only matplotlib and numpy, under a time limit (a signal alarm
in the worker, a deadline in the caller that kills a stuck worker). The platform
therefore runs only code that its own generator wrote; pyplot's global state never meets
the threads of an env server.
"""

from __future__ import annotations

import atexit
import os
import pickle
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from typing import Any

from envs.charts.chart import Chart
from envs.charts.render import RenderError, render_png

_HEADER = struct.Struct("!I")
CHART_WORKER = "from envs.charts.render_workers import serve_renders; serve_renders()"


def _write_message(stream: Any, payload: Any) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def serve_renders() -> None:
    """A render worker's loop: charts in on stdin, `("ok", png)` or `("error", text)` out."""
    os.environ["MPLBACKEND"] = "Agg"
    source, sink = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints must not corrupt the protocol
    import matplotlib.pyplot  # noqa: F401 (loaded once, before the first chart)

    _write_message(sink, ("ready", None))
    while True:
        header = source.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return  # the parent closed the pipe or died
        (size,) = _HEADER.unpack(header)
        chart, timeout = pickle.loads(source.read(size))
        try:
            answer = ("ok", render_png(chart, timeout))
        except Exception as error:
            answer = ("error", f"{type(error).__name__}: {error}")
        _write_message(sink, answer)


class _Worker:
    def __init__(self, start_timeout: float, entry: str = CHART_WORKER):
        self.process = subprocess.Popen(
            [sys.executable, "-c", entry],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        status, _ = self.receive(time.monotonic() + start_timeout)
        if status != "ready":
            raise RenderError("render worker failed to start")

    def _read(self, n: int, deadline: float) -> bytes:
        fd = self.process.stdout.fileno()
        chunks = []
        while n:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(fd, n)
            if not chunk:
                raise RenderError(f"render worker exited with code {self.process.poll()}")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def receive(self, deadline: float) -> tuple[str, Any]:
        (size,) = _HEADER.unpack(self._read(_HEADER.size, deadline))
        return pickle.loads(self._read(size, deadline))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()


class ChartRenderer:
    """Renders charts to PNG in up to `processes` worker subprocesses, each call under `timeout`.

    `worker_entry` is the Python line a worker runs (`envs.charts.code_check.CodeRenderer`
    starts workers that take model-written code instead, under OS limits). Thread-safe:
    each call takes an idle worker (starting one while fewer than `processes` run). The worker's alarm stops code that runs past `timeout`; a worker
    still silent `grace` seconds later is killed (and replaced on demand).
    """

    worker_entry = CHART_WORKER

    def __init__(
        self, processes: int = 1, timeout: float = 10.0, grace: float = 5.0, start_timeout: float = 60.0
    ):
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self.processes = processes
        self.timeout = timeout
        self.grace = grace  # beyond the worker's own alarm, before the worker is killed
        self.start_timeout = start_timeout
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()

    def _take(self) -> _Worker:
        while True:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                start = len(self._all) < self.processes
                if start:
                    self._all.append(None)  # reserve the slot while the worker starts
            if start:
                break
            try:  # all busy: wait, and look again in case a killed worker freed a slot
                return self._idle.get(timeout=0.2)
            except queue.Empty:
                continue
        try:
            worker = _Worker(self.start_timeout, self.worker_entry)
        except BaseException:
            with self._lock:
                self._all.remove(None)
            raise
        with self._lock:
            self._all[self._all.index(None)] = worker
        return worker

    def _drop(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.remove(worker)

    def render(self, chart: Chart) -> bytes:
        """The PNG of `chart` (raises `RenderError` on failure or timeout)."""
        worker = self._take()
        try:
            _write_message(worker.process.stdin, (chart, self.timeout))
            status, payload = worker.receive(time.monotonic() + self.timeout + self.grace)
        except TimeoutError:
            self._drop(worker)
            raise RenderError(
                f"rendering chart {chart.index} ({chart.minor}) ran past {self.timeout} s"
            ) from None
        except (OSError, RenderError) as error:
            self._drop(worker)
            raise RenderError(f"render worker failed: {error}") from None
        self._idle.put(worker)
        if status != "ok":
            raise RenderError(f"chart {chart.index} ({chart.minor}): {payload}")
        return payload

    def close(self) -> None:
        with self._lock:
            workers, self._all = [w for w in self._all if w is not None], []
        for worker in workers:
            worker.kill()
        self._idle = queue.LifoQueue()


_shared: ChartRenderer | None = None
_shared_lock = threading.Lock()


def shared_renderer() -> ChartRenderer:
    """The process's renderer (`EVOL_CHART_RENDERERS` worker processes, default 2)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ChartRenderer(processes=int(os.environ.get("EVOL_CHART_RENDERERS", "2")))
            atexit.register(_shared.close)
        return _shared
