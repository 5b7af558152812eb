"""math-verify's LaTeX equivalence, in child processes that a deadline can stop.

`latex_equivalent(answer, gold, timeout)` asks math-verify whether two LaTeX answers are the
same value (`\\binom{5}{2}`, `\\log_2 8`, `|x|`, relations: what the closed grammar of
`envs.math.expressions` does not read). It is the slow path of `envs.math.answers`: a few
milliseconds per pair, against a fraction of one there.

Why child processes: sympy's work cannot be interrupted from another thread, and math-verify's
own time limit is `signal.alarm`, which works only in a process's main thread (envs run in
rollout threads and server workers). So checks run in checker processes forked from a zygote
(`envs/math/verify_worker.py`, started with `python -I`: math-verify imported once, a capped
address space, only its LaTeX path, an audit hook in each checker that refuses any `eval` of
text), one request at a time per checker over a socket. A check that outruns its deadline gets
its checker killed (the caller gets None, "unknown"); the next check forks a fresh one in a few
milliseconds. Every call, waiting for a busy checker or a fork included, returns within its
`timeout`, from any thread; only the zygote's first start in a process (math-verify's imports,
about half a second, at most `START_TIMEOUT`) is not counted. The zygote starts on `start()`
(in the background: `answers_match` calls it on the first LaTeX answer it sees), `warm_up()` or
the first check; a process that forks (the env server's workers) starts a zygote of its own.
At most `PROCESSES` checkers run at once; verdicts are cached (`CACHE_SIZE` pairs). Needs
`os.fork` and `socket.send_fds` (Linux, macOS); elsewhere every check is "unknown".
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger(__name__)

PROCESSES = 4  # checkers at most per process
CACHE_SIZE = 4096  # pairs whose verdict is remembered
START_TIMEOUT = 60.0  # seconds the zygote may take to import math-verify
COMMAND_TIMEOUT = 10.0  # seconds the zygote may take to fork or kill a checker
WORKER = Path(__file__).with_name("verify_worker.py")


class VerifierUnavailable(RuntimeError):
    """The zygote cannot start or answer (math-verify missing, no fork, or it died)."""


class _Checker:
    """One forked checker: its socket, its pid and the zygote that forked it (which kills it)."""

    def __init__(self, channel: socket.socket, pid: int, zygote: _Zygote) -> None:
        self.channel = channel
        self.pid = pid
        self.zygote = zygote

    def ask(self, answer: str, gold: str, deadline: float) -> tuple[bool | None, bool]:
        """(verdict, alive): the checker's verdict, or None and alive=False when it overran or died."""
        try:
            self.channel.sendall(json.dumps({"answer": answer, "gold": gold}).encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, False
                self.channel.settimeout(left)
                chunk = self.channel.recv(4096)
                if not chunk:
                    return None, False
                reply += chunk
            return json.loads(reply).get("equal"), True
        except (OSError, ValueError):  # a timeout is an OSError
            return None, False

    def close(self) -> None:
        self.channel.close()  # an idle checker exits when its socket closes


class _Zygote:
    """The process that holds math-verify imported and forks checkers on request."""

    def __init__(self) -> None:
        if not hasattr(socket, "send_fds") or not hasattr(os, "fork"):
            raise VerifierUnavailable("checkers need os.fork and socket.send_fds")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", str(WORKER), str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self.control = ours
        self.ready: bool | None = None
        self._lock = threading.Lock()  # one command at a time on the control socket

    def wait_ready(self, deadline: float) -> bool | None:
        """True once ready; None if still starting at the deadline; False if it cannot start."""
        with self._lock:
            if self.ready is not None:
                return self.ready
            try:
                self.control.settimeout(max(0.001, deadline - time.monotonic()))
                message = json.loads(self.control.recv(4096) or b"{}")
            except TimeoutError:
                return None
            except (OSError, ValueError):
                message = {}
            self.ready = bool(message.get("ready"))
            if not self.ready:
                log.warning("math-verify did not start: %s", message.get("error", "its process exited"))
            return self.ready

    def spawn(self, deadline: float) -> _Checker:
        """A fresh checker (a fork: milliseconds); a zygote that misses `deadline` is given up."""
        with self._lock:
            try:
                self.control.settimeout(max(0.001, min(COMMAND_TIMEOUT, deadline - time.monotonic())))
                self.control.send(b"spawn")
                message, fds, _, _ = socket.recv_fds(self.control, 64, 1)
                return _Checker(socket.socket(fileno=fds[0]), int(message), self)
            except (OSError, ValueError, IndexError) as error:
                raise VerifierUnavailable(f"the math-verify zygote did not fork: {error}") from None

    def kill(self, checker: _Checker) -> None:
        checker.close()
        with self._lock:
            try:
                self.control.settimeout(COMMAND_TIMEOUT)
                self.control.send(f"kill {checker.pid}".encode())
                self.control.recv(64)
                return
            except OSError:
                pass
        try:  # the zygote is gone: the checker (busy, so not reaped) still has its pid
            os.kill(checker.pid, signal.SIGKILL)
        except OSError:
            pass

    def close(self) -> None:
        self.control.close()  # the zygote exits at end of input and kills its checkers
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class LatexVerifier:
    """Checkers forked from one zygote, at most `processes` at once."""

    def __init__(self, processes: int = PROCESSES, cache_size: int = CACHE_SIZE) -> None:
        self.processes = processes
        self.cache_size = cache_size
        self.asked = 0  # checks that reached a checker (not answered from the cache)
        self.killed = 0  # checkers killed at a deadline (or found dead)
        self._lock = threading.Condition()
        self._cache: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._zygote: _Zygote | None = None
        self._idle: list[_Checker] = []
        self._running = 0  # checkers alive, idle or busy
        self._unavailable = False
        self._started = False  # whether this process's zygote was ever ready

    def start(self) -> None:
        """Start the zygote now, in the background (its imports take about half a second)."""
        with self._lock:
            self._zygote_or_none()

    def warm_up(self, timeout: float = START_TIMEOUT) -> bool:
        """Start the zygote and wait until it is ready (True when it is)."""
        with self._lock:
            zygote = self._zygote_or_none()
        ready = zygote is not None and bool(zygote.wait_ready(time.monotonic() + timeout))
        self._started = self._started or ready
        return ready

    def equivalent(self, answer: str, gold: str, timeout: float) -> bool | None:
        """math-verify's verdict on `answer` against `gold`, or None when it cannot tell (it read
        neither, it is unavailable, or the deadline passed)."""
        deadline = time.monotonic() + timeout
        key = (answer, gold)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            zygote = self._zygote_or_none()
        if zygote is None:
            return None
        if self._started:
            ready = zygote.wait_ready(deadline)
        else:  # the process's first start (math-verify's imports) is not counted in a check's time
            waited = time.monotonic()
            ready = zygote.wait_ready(waited + START_TIMEOUT)
            deadline += time.monotonic() - waited
            self._started = self._started or bool(ready)
        if ready is False:
            self._give_up(zygote)
        if not ready:
            return None
        checker = self._acquire(zygote, deadline)
        if checker is None:
            return None
        with self._lock:
            self.asked += 1
        verdict, alive = checker.ask(answer, gold, deadline)
        if not alive:
            log.warning(
                "math-verify overran %.1fs on a %d-character answer: its checker is killed",
                timeout,
                len(answer),
            )
            checker.zygote.kill(checker)
            with self._lock:
                self.killed += 1
                self._running -= 1
                self._lock.notify()
            return None
        with self._lock:
            self._idle.append(checker)
            self._lock.notify()
            if verdict is not None:
                self._cache[key] = bool(verdict)
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return verdict

    def _zygote_or_none(self) -> _Zygote | None:
        """This process's zygote, started if need be (the lock held)."""
        if self._pid != os.getpid():  # a forked copy: the zygote belongs to the parent
            self._reset()
        if self._zygote is None and not self._unavailable:
            try:
                self._zygote = _Zygote()
            except (OSError, VerifierUnavailable) as error:
                log.warning("math-verify is unavailable: %s", error)
                self._unavailable = True
        return self._zygote

    def _acquire(self, zygote: _Zygote, deadline: float) -> _Checker | None:
        with self._lock:
            while True:
                if self._idle:
                    return self._idle.pop()
                if self._running < self.processes:
                    self._running += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)
        try:
            return zygote.spawn(deadline)
        except VerifierUnavailable as error:
            log.warning("%s: the zygote is restarted", error)
            with self._lock:
                self._running -= 1
            self._give_up(zygote, restart=True)
            return None

    def _give_up(self, zygote: _Zygote, restart: bool = False) -> None:
        """Drop a zygote that failed: restarted when it died, never again when it cannot start."""
        with self._lock:
            if self._zygote is not zygote:
                return
            self._zygote, idle, self._idle = None, self._idle, []
            self._running -= len(idle)
            self._unavailable = not restart
        for checker in idle:
            checker.close()
        zygote.close()

    def close(self) -> None:
        """Stop the zygote and the idle checkers (a busy one is killed by its caller's deadline)."""
        with self._lock:
            if self._pid != os.getpid() or self._zygote is None:
                return
            zygote, idle, self._idle = self._zygote, self._idle, []
            self._zygote, self._running = None, self._running - len(idle)
        for checker in idle:
            checker.close()
        zygote.close()


VERIFIER = LatexVerifier()
atexit.register(VERIFIER.close)


def latex_equivalent(answer: str, gold: str, timeout: float) -> bool | None:
    """math-verify's verdict on two LaTeX answers within `timeout` seconds, or None (see the module)."""
    return VERIFIER.equivalent(answer, gold, timeout)


def start() -> None:
    """Start the verifier's zygote in the background (no-op once started)."""
    VERIFIER.start()


def warm_up(timeout: float = START_TIMEOUT) -> bool:
    """Start the verifier's zygote and wait until it is ready."""
    return VERIFIER.warm_up(timeout)
