"""Worker processes that own the env sessions of a server.

The Flask front does HTTP, auth, limits and routing; every env call (build, reset, step,
expert, close) runs in one of `size` worker processes, each session pinned to the worker
that built it. A worker runs one call at a time. A call past its time limit gets its
worker killed and replaced: the caller gets 504 `step_timeout`, the other sessions of that
worker end with 410 `session_lost`, and no other worker is touched. A worker that dies on
its own (out of memory, a crash in native code) is found by the next call or by the
monitor and replaced the same way. Workers whose memory grew past a limit stop taking new
sessions and are replaced once their last session closes, so a server's memory returns to
its base after load.
"""

from __future__ import annotations

import atexit
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from server.errors import ApiError

log = logging.getLogger(__name__)

MAX_QUEUED_CALLS = 4096  # calls waiting for one worker; more answer 503 worker_busy

Call = tuple[str, str, dict[str, Any]]  # (op, session id, arguments)
Reply = tuple  # ("ok", result) | ("json", JSON bytes of the result) | ("error", status, type, message)
CLIENT_OPS = frozenset({"reset", "step", "expert"})  # results that go to the client as they are


# ---- the worker's side -----------------------------------------------------------------
def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class _EnvCalls:
    """What a worker does with each call; every outcome is a reply, never an exception."""

    def __init__(self, env_overrides: dict[str, dict[str, Any]]):
        import envs
        from envs.errors import EpisodeOver, ResetNeeded, TaskOptionError
        from envs.wire import to_wire

        self.envs = envs
        self.overrides = env_overrides
        self.sessions: dict[str, Any] = {}
        self._episode_errors = {ResetNeeded: "reset_needed", EpisodeOver: "episode_over"}
        self._option_error = TaskOptionError
        self._to_wire = to_wire

    def __call__(self, call: Call) -> Reply:
        op, sid, args = call
        try:
            result = getattr(self, "op_" + op)(sid, **args)
            if op in CLIENT_OPS:  # encoded here, in parallel with the front and other workers
                return ("json", json.dumps(result, separators=(",", ":")).encode())
            return ("ok", result)
        except ApiError as error:
            return ("error", error.status, error.type, error.message)
        except Exception as error:  # env code failed on a request that passed validation
            for kind, name in self._episode_errors.items():
                if isinstance(error, kind):
                    return ("error", 409, name, str(error))
            log.exception("env call %s failed (session %s)", op, sid)
            return ("error", 500, "env_error", f"the env failed in {op}; the server log has the details")

    def _env(self, sid: str) -> Any:
        env = self.sessions.get(sid)
        if env is None:
            raise ApiError(410, "session_lost", f"session {sid!r} is no longer held by its worker")
        return env

    def op_create(self, sid: str, env_id: str, kwargs: dict[str, Any]) -> None:
        try:
            env = self.envs.make_local(env_id, **{**kwargs, **self.overrides.get(env_id, {})})
        except (TypeError, ValueError) as error:
            raise ApiError(400, "bad_env_kwargs", f"cannot build {env_id}: {error}") from None
        self.sessions[sid] = env

    def op_reset(self, sid: str, seed: int | None, options: dict[str, Any] | None) -> dict[str, Any]:
        env = self._env(sid)
        try:
            observation, info = env.reset(seed=seed, options=options)
        except (self._option_error, ValueError) as error:
            raise ApiError(400, "bad_options", str(error)) from None
        return {"observation": self._to_wire(observation), "info": self._to_wire(info)}

    def op_step(self, sid: str, action: str) -> dict[str, Any]:
        # The front checked the action's length; TextEnv.step raises ResetNeeded / EpisodeOver (409).
        observation, reward, terminated, truncated, info = self._env(sid).step(action)
        return {
            "observation": self._to_wire(observation),
            "reward": float(reward),
            "terminated": bool(terminated),
            "truncated": bool(truncated),
            "info": self._to_wire(info),
        }

    def op_expert(self, sid: str) -> dict[str, Any]:
        # TextEnv refuses the expert before reset and after the end (ResetNeeded / EpisodeOver: 409).
        return {"action": self._env(sid).expert_action()}

    def op_close(self, sid: str) -> dict[str, Any]:
        env = self.sessions.pop(sid, None)
        if env is not None:
            try:
                env.close()
            except Exception:
                log.exception("closing session %s failed", sid)
        return {"rss": _rss_bytes()}


def worker_main(conn: Connection, env_ids: list[str], env_overrides: dict[str, dict[str, Any]]) -> None:
    """A worker's loop: `("calls", [call, ...])` in, one reply per call out, in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the front's to handle
    logging.basicConfig(level=logging.WARNING, format=f"worker {os.getpid()}: %(levelname)s %(message)s")
    import envs

    for env_id in env_ids:
        envs.env_class(env_id)  # import every served env's module before the first call
    calls = _EnvCalls(env_overrides)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break  # the front is gone
        if message[0] == "stop":
            break
        for call in message[1]:
            conn.send(calls(call))
    for sid in list(calls.sessions):
        calls.op_close(sid)


# ---- the front's side ------------------------------------------------------------------
@dataclass(eq=False)
class _Waiting:
    """A call sent to a worker, waiting for its answer."""

    sid: str
    done: bool = False
    answer: Any = None


@dataclass(eq=False)
class Worker:
    """The front's handle on one worker process."""

    slot: int
    process: Any
    conn: Connection
    cv: threading.Condition = field(default_factory=threading.Condition)  # guards the fields below
    pending: deque = field(default_factory=deque)  # calls sent, in the order the worker answers them
    reading: bool = False  # a caller is reading replies
    pipe_closed: bool = False
    sessions: set[str] = field(default_factory=set)
    alive: bool = True
    draining: bool = False  # takes no new sessions; replaced once its last session closes
    served: int = 0
    busy_since: float | None = None  # when the call running now started
    deadline: float | None = None  # when the call running now is past its time limit
    timed_out: bool = False
    rss: int | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid


def _env_modules(env_ids: list[str]) -> list[str]:
    """The modules that define `env_ids`, read from the registry without importing them."""
    import gymnasium

    import envs

    envs.env_ids()  # plugins register their envs
    modules = []
    for env_id in env_ids:
        entry_point = gymnasium.spec(env_id).entry_point if env_id in gymnasium.registry else None
        if isinstance(entry_point, str):
            modules.append(entry_point.partition(":")[0])
    return modules


def _context() -> multiprocessing.context.BaseContext:
    # forkserver: workers fork from a clean server process with the env modules loaded,
    # so a replacement starts in milliseconds and never inherits the front's threads.
    if "forkserver" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


class WorkerPool:
    """`size` worker processes serving `env_ids`; calls are routed by session."""

    def __init__(
        self,
        env_ids: list[str],
        size: int,
        env_overrides: dict[str, dict[str, Any]] | None = None,
        call_timeout: float | None = 30.0,
        max_worker_rss: int | None = 1 << 30,
        max_worker_sessions: int | None = 10_000,
        start_timeout: float = 120.0,
        on_lost: Callable[[set[str], str], None] | None = None,
    ):
        if size < 1:
            raise ValueError("a server needs at least one worker")
        self.env_ids = list(env_ids)
        self.size = size
        self.overrides = env_overrides or {}
        self.call_timeout = call_timeout
        self.max_worker_rss = max_worker_rss
        self.max_worker_sessions = max_worker_sessions
        self.start_timeout = start_timeout
        self.on_lost = on_lost or (lambda sids, reason: None)
        self.replaced = 0
        self._ctx = _context()
        if self._ctx.get_start_method() == "forkserver":
            self._ctx.set_forkserver_preload(["envs", "envs.wire", *_env_modules(self.env_ids)])
        self._slots: list[Worker | None] = [None] * size
        self._lock = threading.Lock()
        self._closed = False
        self._starting: set[int] = set()
        # Workers start in the background: the caller may do its own imports meanwhile.
        self._starters = [self._restart(slot) for slot in range(size)]

    def wait_ready(self) -> None:
        """Block until the first workers have started (or failed to); then watch them."""
        for thread in self._starters:
            if thread is not None:
                thread.join()
        if not any(self._slots):
            raise RuntimeError("no env worker process could start; see the log above")
        self._monitor = threading.Thread(target=self._watch, name="worker-monitor", daemon=True)
        self._monitor.start()
        atexit.register(self._exiting)

    def _exiting(self) -> None:
        self._closed = True  # the interpreter is ending: workers going away is expected

    # ---- starting and replacing ---------------------------------------------------------
    def _spawn(self, slot: int) -> Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=worker_main,
            args=(child, self.env_ids, self.overrides),
            name=f"evol-env-worker-{slot}",
            daemon=True,
        )
        process.start()
        child.close()
        if not parent.poll(self.start_timeout):
            process.kill()
            raise RuntimeError(f"env worker {slot} did not start within {self.start_timeout:.0f} s")
        try:
            parent.recv()
        except EOFError:
            process.join(5)
            raise RuntimeError(f"env worker {slot} exited at start (code {process.exitcode})") from None
        return Worker(slot=slot, process=process, conn=parent)

    def _restart(self, slot: int) -> threading.Thread | None:
        """Start a worker for `slot` in the background unless one is already starting."""
        with self._lock:
            if slot in self._starting or self._closed:
                return None
            self._starting.add(slot)
        thread = threading.Thread(
            target=self._start_slot, args=(slot,), name=f"start-worker-{slot}", daemon=True
        )
        thread.start()
        return thread

    def _start_slot(self, slot: int) -> None:
        try:
            worker = self._spawn(slot)
        except Exception as error:
            log.error("env worker %d failed to start: %s", slot, error)
            worker = None
        with self._lock:
            self._starting.discard(slot)
            if worker is None:
                return
            if self._closed:
                worker.process.kill()
                return
            self._slots[slot] = worker

    def _retire(self, worker: Worker, reason: str, kill: bool = True) -> None:
        """Take `worker` out of service, end its sessions, and start its replacement."""
        with self._lock:
            if not worker.alive:
                return
            worker.alive = False
            if self._slots[worker.slot] is worker:
                self._slots[worker.slot] = None
            lost = set(worker.sessions)
            worker.sessions.clear()
            self.replaced += 1
        if kill:
            worker.process.kill()
        else:
            with worker.cv:
                try:
                    worker.conn.send(("stop",))
                except (OSError, ValueError):
                    worker.process.kill()
        threading.Thread(target=self._reap_process, args=(worker,), daemon=True).start()
        if lost:
            self.on_lost(lost, reason)
        self._restart(worker.slot)

    @staticmethod
    def _reap_process(worker: Worker) -> None:
        worker.process.join(10)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(5)

    def _watch(self) -> None:
        """One monitor: every tick, kill workers whose running call is past its time limit (its
        reader then gets EOF); every half second, replace dead workers and retry failed starts."""
        tick = 0.05 if self.call_timeout is None else min(0.05, self.call_timeout / 4)
        next_liveness = 0.0
        while not self._closed:
            time.sleep(tick)
            now = time.monotonic()
            for worker in self.workers():
                deadline = worker.deadline
                if deadline is not None and now > deadline:
                    worker.timed_out = True
                    log.warning(
                        "env worker %d ran a call past %s s; replacing it", worker.slot, self.call_timeout
                    )
                    self._retire(worker, f"another call on its worker ran past {self.call_timeout} s")
            if now < next_liveness:
                continue
            next_liveness = now + 0.5
            for worker in self.workers():
                if not worker.process.is_alive():
                    log.error("env worker %d (pid %s) died; replacing it", worker.slot, worker.pid)
                    self._retire(worker, f"its worker process (pid {worker.pid}) died")
            with self._lock:
                missing = [slot for slot, worker in enumerate(self._slots) if worker is None]
            for slot in missing:  # a slot whose start failed: try again
                self._restart(slot)

    # ---- placing sessions ---------------------------------------------------------------
    def workers(self) -> list[Worker]:
        with self._lock:
            return [worker for worker in self._slots if worker is not None and worker.alive]

    def assign(self, sid: str) -> Worker:
        """The worker a new session goes to: the least loaded one that is taking sessions."""
        deadline = time.monotonic() + (self.call_timeout or self.start_timeout)
        while True:
            with self._lock:
                live = [w for w in self._slots if w is not None and w.alive]
                taking = [w for w in live if not w.draining] or live
                if taking:
                    worker = min(taking, key=lambda w: (len(w.sessions), w.busy_since is not None))
                    worker.sessions.add(sid)
                    worker.served += 1
                    return worker
            if time.monotonic() > deadline or self._closed:
                raise ApiError(
                    503, "unavailable", "no env worker is running; retry later", headers={"Retry-After": "2"}
                )
            time.sleep(0.05)

    def release(self, worker: Worker, sid: str) -> None:
        with self._lock:
            worker.sessions.discard(sid)

    # ---- calls --------------------------------------------------------------------------
    def run(self, worker: Worker, calls: list[Call]) -> list[Reply | ApiError]:
        """Run `calls` in order on `worker`; each answer is a reply or the ApiError for it.

        Calls are pipelined: they queue in the worker's pipe, so it never waits for the
        front between calls. Replies come back in order; whichever waiting caller holds
        the reader role hands each one to its caller (no extra thread hop when one
        caller is alone)."""
        waiting = [_Waiting(call[1]) for call in calls]
        with worker.cv:
            if worker.pipe_closed or not worker.alive:
                return [self._lost(call[1]) for call in calls]
            if len(worker.pending) + len(calls) > MAX_QUEUED_CALLS:
                busy = ApiError(
                    503,
                    "worker_busy",
                    "the session's worker has too many calls queued; retry",
                    headers={"Retry-After": "1"},
                )
                return [busy] * len(calls)
            if not worker.pending:
                worker.busy_since, worker.deadline = time.monotonic(), self._deadline()
            worker.pending.extend(waiting)
            try:
                worker.conn.send(("calls", calls))
            except (OSError, ValueError):
                pass  # the reader finds the pipe closed and answers these calls
        self._await(worker, waiting[-1])
        return [item.answer for item in waiting]

    def _await(self, worker: Worker, last: _Waiting) -> None:
        """Wait until `last` (and so every call before it) is answered, reading replies
        while no other caller is."""
        while True:
            with worker.cv:
                while not last.done and worker.reading:
                    worker.cv.wait()
                if last.done:
                    return
                worker.reading = True
            try:
                self._read_until(worker, last)
            finally:
                with worker.cv:
                    worker.reading = False
                    worker.cv.notify_all()

    def _read_until(self, worker: Worker, last: _Waiting) -> None:
        while not last.done:
            try:
                reply = worker.conn.recv()
            except (EOFError, OSError):
                self._fail_pending(worker)
                return
            with worker.cv:
                item = worker.pending.popleft()
                if worker.pending:
                    worker.busy_since, worker.deadline = time.monotonic(), self._deadline()
                else:
                    worker.busy_since = worker.deadline = None
                item.answer, item.done = reply, True
                worker.cv.notify_all()

    def _fail_pending(self, worker: Worker) -> None:
        """The worker's pipe closed: the call that ran past its limit gets 504, the calls
        queued behind it (or all, if the worker died) get 410."""
        with worker.cv:
            worker.pipe_closed = True
            left = list(worker.pending)
            worker.pending.clear()
            worker.busy_since = worker.deadline = None
            for index, item in enumerate(left):
                if index == 0 and worker.timed_out:
                    item.answer = ApiError(
                        504,
                        "step_timeout",
                        f"the env call took longer than {self.call_timeout}s; session {item.sid} was closed",
                    )
                else:
                    item.answer = self._lost(item.sid)
                item.done = True
            worker.cv.notify_all()
        if not worker.timed_out:
            self._retire(worker, "its worker process died")
        worker.conn.close()

    def _deadline(self) -> float | None:
        return None if self.call_timeout is None else time.monotonic() + self.call_timeout

    @staticmethod
    def _lost(sid: str) -> ApiError:
        return ApiError(
            410, "session_lost", f"session {sid} was lost with its worker process; start a new one"
        )

    def call(self, worker: Worker, op: str, sid: str, **args: Any) -> Any:
        """One call; its result, or its error raised as an ApiError."""
        answer = self.run(worker, [(op, sid, args)])[0]
        if isinstance(answer, ApiError):
            raise answer
        if answer[0] == "error":
            raise ApiError(answer[1], answer[2], answer[3])
        return answer[1]  # a result, or JSON bytes for CLIENT_OPS

    def close_session(self, worker: Worker, sid: str) -> None:
        """Close `sid` in its worker; a worker past its memory or session budget is drained."""
        self.release(worker, sid)
        if not worker.alive:
            return
        try:
            result = self.call(worker, "close", sid)
        except ApiError:
            return
        worker.rss = result.get("rss")
        over_memory = self.max_worker_rss is not None and (worker.rss or 0) > self.max_worker_rss
        over_sessions = self.max_worker_sessions is not None and worker.served >= self.max_worker_sessions
        if over_memory or over_sessions:
            worker.draining = True
        with self._lock:
            empty = worker.draining and not worker.sessions
        if empty:
            log.info(
                "recycling env worker %d (rss %s bytes, %d sessions served)",
                worker.slot,
                worker.rss,
                worker.served,
            )
            self._retire(worker, "its worker was recycled", kill=False)

    # ---- status -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            slots = list(self._slots)
        rows = []
        for slot, worker in enumerate(slots):
            if worker is None or not worker.alive:
                rows.append({"slot": slot, "alive": False})
                continue
            since = worker.busy_since  # read once: the call may end meanwhile
            busy = since is not None
            rows.append(
                {
                    "slot": slot,
                    "alive": worker.process.is_alive(),
                    "pid": worker.pid,
                    "busy": busy,
                    "busy_s": round(max(0.0, now - since), 3) if since is not None else 0.0,
                    "sessions": len(worker.sessions),
                    "draining": worker.draining,
                }
            )
        alive = [r for r in rows if r["alive"]]
        stuck = self.call_timeout is not None and all(r["busy_s"] > self.call_timeout for r in alive)
        return {
            "workers": len(slots),
            "alive": len(alive),
            "busy": sum(r["busy"] for r in alive),
            "replaced": self.replaced,
            "degraded": not alive or stuck,
            "detail": rows,
        }

    def close(self) -> None:
        self._closed = True
        for worker in self.workers():
            worker.alive = False
            try:
                worker.conn.send(("stop",))
            except OSError:
                pass
        for worker in [w for w in self._slots if w is not None]:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
