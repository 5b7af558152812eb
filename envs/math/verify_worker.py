"""The processes behind `envs.math.verify`: math-verify's LaTeX reading, forked per checker.

`envs.math.verify` runs this file as `python -I verify_worker.py FD` (it imports nothing of the
project): the zygote. It imports and warms math-verify once, says `{"ready": true}` (or
`{"ready": false, "error": ...}` when math-verify cannot be imported) on the control socket FD
(a `SOCK_SEQPACKET` pair), then on `spawn` forks a checker (a few milliseconds, no imports) and
hands its socket back with its pid, and on `kill PID` kills that checker. A checker reads JSON
lines `{"answer": ..., "gold": ...}` (LaTeX, without `$`) and writes one line each,
`{"equal": true | false | null}` (null: math-verify could not read one of the two).

Only math-verify's LaTeX path is used (`LatexExtractionConfig`: latex2sympy2_extended parses
with an ANTLR grammar and builds sympy objects): its plain-expression path
(`ExprExtractionConfig`) hands text to sympy's `parse_expr`, which is `eval`. Also:
- the address space is capped (`MEMORY_LIMIT`): an exponent tower fails with `MemoryError`
  instead of taking the host's memory (the parent kills a checker at its deadline anyway);
- numbers are read without `sympify` (latex2sympy2_extended passes a number token's text to
  `sympy.Number`, which calls `sympify`, i.e. `parse_expr`);
- a checker installs, before its first request, an audit hook that refuses any compile, `eval`
  or `exec` of a string (bar a few library code generators that build code from their own
  source, `CODE_GENERATORS`) and any process start: no answer text can reach `eval`, even by a
  path not patched (sympy's `sympify`/`parse_expr` are refused whatever calls them). The zygote
  never sees answer text.
math-verify's own time limits (`signal.alarm`) are off: the parent bounds each request.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import sys

MEMORY_LIMIT = 1 << 30  # bytes of address space (the process needs about 70 MB)
_REFUSED_EVENTS = frozenset(
    {
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "subprocess.Popen",
        "pty.spawn",
    }
)
# Modules that generate code from their own source: dataclasses, typing's forward references,
# namedtuple, sympy's monomial arithmetic (built per number of variables).
CODE_GENERATORS = ("/dataclasses.py", "/typing.py", "/collections/__init__.py", "/sympy/polys/monomials.py")
# Pairs that take math-verify through its numeric, symbolic, set, interval, relation and matrix paths.
WARM_UP = [
    ("\\frac{2}{4}", "0.5"),
    ("0.5 \\cdot \\sqrt{2}", "\\frac{\\sqrt{2}}{2}"),
    ("x^2 + 2x + 1", "(x+1)^2"),
    ("\\sin^2 x + \\cos^2 x", "1"),
    ("\\log_2 8 + \\ln e", "4"),
    ("\\binom{5}{2} + \\lfloor 2.5 \\rfloor + |{-1}|", "13"),
    ("\\{1, 2\\}", "2, 1"),
    ("(-\\infty, 3] \\cup (5, \\infty)", "(5, \\infty) \\cup (-\\infty, 3]"),
    ("x \\ge 3", "[3, \\infty)"),
    ("x = 2", "2"),
    ("y = 2x + 1", "2x + 1 = y"),
    ("\\begin{pmatrix} 1 \\\\ x \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ x \\end{pmatrix}"),
    ("50\\%", "\\frac{1}{2}"),
    ("3 + 2i", "2i + 3"),
    ("30^\\circ", "\\frac{\\pi}{6}"),
]
REFUSED: list[str] = []  # events the hook refused (a library path that needs eval fails: "unknown")
_INTEGER = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _refuse_code_from_text(event: str, args: tuple) -> None:
    """Audit hook: no compile/eval/exec of a string, no process. Allowed: module imports (real
    files) and the library code generators in `CODE_GENERATORS`, whose code is made from
    their own source (dataclass fields, a number of polynomial variables), never from an answer."""
    if event in ("compile", "exec"):
        if event == "compile":
            filename = args[1] if len(args) > 1 else None
            real = isinstance(filename, (str, bytes, os.PathLike)) and not str(filename).startswith("<")
        else:
            real = not getattr(args[0], "co_filename", "<").startswith("<") if args else False
        if real or sys._getframe(1).f_code.co_filename.replace(os.sep, "/").endswith(CODE_GENERATORS):
            return
        REFUSED.append(event)
        raise RuntimeError("code from text is refused in the answer verifier")
    if event in _REFUSED_EVENTS:
        REFUSED.append(event)
        raise RuntimeError("processes are refused in the answer verifier")


def _number(text: str):
    """A number token's text as a sympy number, without `sympify` (digits, `.`, an exponent)."""
    import sympy

    text = text.replace(",", "").strip()
    if _INTEGER.fullmatch(text):
        return sympy.Integer(int(text))
    if _DECIMAL.fullmatch(text):
        return sympy.Float(text)
    raise ValueError("not a number")


def _patch_number_reading() -> None:
    from latex2sympy2_extended import latex2sympy2

    def parse_number(self, text: str):
        return _number(text)

    def convert_number(number: str):
        if "," in number and number.strip().lstrip("-").startswith("0"):  # 0,5 is a decimal comma
            number = number.replace(",", ".")
        return _number(number.replace(" ", ""))

    latex2sympy2._Latex2Sympy.parse_number = parse_number
    latex2sympy2.convert_number = convert_number


def _limit_memory() -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):  # no `resource` (Windows) or a lower hard limit
        pass


def _equal_function():
    """`equal(answer, gold)`: math-verify's verdict through its LaTeX path only, or None when it
    read neither side."""
    from math_verify import LatexExtractionConfig, parse, verify

    _patch_number_reading()
    config = [LatexExtractionConfig()]

    def read(latex: str) -> list:
        return parse(
            f"${latex}$", extraction_config=config, fallback_mode="no_fallback", parsing_timeout=None
        )

    def equal(answer: str, gold: str) -> bool | None:
        gold_read, answer_read = read(gold), read(answer)
        if not gold_read or not answer_read:
            return None
        return bool(verify(gold_read, answer_read, timeout_seconds=None))

    return equal


def _serve(channel: socket.socket, equal) -> None:
    """A checker's loop (in a forked child): one JSON request a line in, one verdict a line out."""
    sys.addaudithook(_refuse_code_from_text)
    for line in channel.makefile("rb"):
        try:
            request = json.loads(line)
            result = equal(str(request["answer"]), str(request["gold"]))
        except Exception:  # math-verify and sympy raise anything (MemoryError too): "unknown"
            result = None
        channel.sendall(json.dumps({"equal": result}).encode() + b"\n")


def _fork_checker(control: socket.socket, equal, children: set[int]) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # the checker
        code = 0
        try:
            control.close()
            ours.close()
            _serve(theirs, equal)
        except BaseException:  # noqa: B036 (whatever happens, the child must not return into the loop)
            code = 1
        finally:
            os._exit(code)
    theirs.close()
    children.add(pid)
    socket.send_fds(control, [str(pid).encode()], [ours.fileno()])
    ours.close()


def _reap(children: set[int]) -> None:
    for pid in list(children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            children.discard(pid)


def main() -> None:
    """The zygote: imports and warms math-verify once, then forks a checker per `spawn` and kills
    one on `kill PID`, on the control socket whose descriptor is its first argument."""
    control = socket.socket(fileno=int(sys.argv[1]))
    sys.stdout = sys.stderr
    logging.disable(logging.CRITICAL)
    _limit_memory()
    try:
        equal = _equal_function()
    except ImportError as error:
        control.send(json.dumps({"ready": False, "error": f"math-verify is not installed: {error}"}).encode())
        return
    import sympy.physics.units  # noqa: F401 (simplify imports it lazily, and it sympifies strings)

    for answer, gold in WARM_UP:  # what sympy imports lazily is imported before a checker's hook
        equal(answer, gold)
    control.send(json.dumps({"ready": True}).encode())
    children: set[int] = set()
    while True:
        command = control.recv(256).decode(errors="replace").split()
        _reap(children)
        if not command:  # the parent closed the socket
            break
        if command[0] == "spawn":
            _fork_checker(control, equal, children)
        elif command[0] == "kill" and len(command) == 2 and command[1].isdigit():
            pid = int(command[1])
            if pid in children:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                children.discard(pid)
            control.send(b"killed")
    for pid in children:
        os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
