"""Checking plotting code that a model wrote: `CodeRenderer(processes, timeout).check(code)`.

Code from a model is never run in the caller. `check` parses it (a syntax error is
`syntax_error`), holds it to the whitelist of `envs.charts.code_guard` (`unsafe_code`),
then sends the text to a render worker: a subprocess with OS limits (address space:
`EVOL_CODE_RENDER_MEMORY_MB` beyond what the started worker maps, default 2048; no file may
be written) that runs it with `envs.charts.render.run_plotting_code` under a signal alarm,
and a caller deadline that kills a worker still silent `grace` seconds later (`timeout`). An exception in the code is
`execution_error`; code that builds no matplotlib figure as `fig` is `no_figure`.

The worker draws the figure, keeps the PNG and reads the marks drawn on each axes
(`marks_summary`): bars of each bar container, pie wedges, data lines (lines in data
coordinates: reference lines such as `axhline` are left out) and their point counts,
scatter points of each collection, heatmap image shapes, and the share of pixels that
differ from the background. Then:

- `empty_figure`: no axes, or nothing drawn on any of them;
- `degenerate_figure`: a nearly blank picture (under 0.5% of the pixels differ from the
  background) or a figure over 3000 pixels a side or under 100;
- `no_explicit_data`: the code holds no literal numeric array (ReachQA's questions are
  written from the data in the code, so it must be there);
- `data_marks_mismatch` (`check_marks`): a drawn group of marks whose count no literal
  data array in the code explains. Counts are compared with the lengths of the code's
  literal numeric lists, of tuples of 3 or more numbers, of lists of records or rows, and
  of dicts of numbers or numeric lists (their key counts). A bar container, the wedges of a
  pie, a data line, a scatter collection (or all of an axes' scatter
  points together: points split by group), a heatmap's rows and columns must each match one
  such length; a line on polar axes may hold one point more (a radar closes its outline);
  with `hist` in the code, bars may number one less than an array (bin edges) or the
  `bins=` given as an integer; `np.linspace`'s point count explains a line too. Lines are
  not checked where the code draws box or violin plots (their parts are lines of fixed
  sizes). Not covered: areas and fills (polygons), error bars' segments, texts, and the
  values themselves (a stacked or percentage bar draws computed heights).
"""

from __future__ import annotations

import ast
import io
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from envs.charts.code_guard import UnsafeCodeError, check_plotting_code
from envs.charts.render import RenderError, run_plotting_code
from envs.charts.render_workers import _HEADER, ChartRenderer, _write_message

MIN_INK = 0.005  # share of non-background pixels below which a picture is blank
MAX_SIDE, MIN_SIDE = 3000, 100  # figure size bounds in pixels
CODE_REJECTIONS = (
    "no_code",
    "syntax_error",
    "unsafe_code",
    "execution_error",
    "timeout",
    "no_figure",
    "empty_figure",
    "degenerate_figure",
    "no_explicit_data",
    "data_marks_mismatch",
)


@dataclass
class CodeRender:
    """The outcome of `CodeRenderer.check`: `status` "ok" or a rejection reason, a message
    saying why, the PNG and the marks drawn (when the code ran)."""

    status: str
    message: str = ""
    png: bytes = b""
    marks: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class _Expired(Exception):
    pass


def marks_summary(fig: Any) -> dict[str, Any]:
    """What each axes of `fig` draws: counts of bars per container, wedges, points per data
    line, points per scatter collection, image shapes, and whether the axes are polar."""
    from matplotlib.collections import PathCollection
    from matplotlib.container import BarContainer
    from matplotlib.image import AxesImage
    from matplotlib.patches import Wedge

    axes = []
    for ax in fig.get_axes():
        axes.append(
            {
                "polar": ax.name == "polar",
                "bars": [len(c.patches) for c in ax.containers if isinstance(c, BarContainer)],
                "wedges": sum(isinstance(p, Wedge) for p in ax.patches),
                "lines": [
                    len(line.get_xdata())
                    for line in ax.lines
                    if line.get_transform() is ax.transData and len(line.get_xdata()) >= 2
                ],
                "scatter": [len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection)],
                "images": [list(im.get_array().shape[:2]) for im in ax.images if isinstance(im, AxesImage)],
                "artists": len(ax.patches) + len(ax.lines) + len(ax.collections) + len(ax.images),
            }
        )
    return {"axes": axes}


def render_code_png(code: str, timeout: float | None) -> tuple[str, Any]:
    """Run `code` here (the Agg backend) under a signal alarm: ("ok", (png, marks)), or a
    status ("timeout", "no_figure", "degenerate_figure", "execution_error") and a message."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.figure import Figure
    from PIL import Image

    def expire(signum: int, frame: Any) -> None:
        raise _Expired

    if timeout:
        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        try:
            fig = run_plotting_code(code)
        except RenderError as error:
            return "no_figure", str(error)
        if not isinstance(fig, Figure):
            return "no_figure", f"`fig` is a {type(fig).__name__}, not a matplotlib figure"
        width, height = fig.get_size_inches() * fig.dpi
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            return "degenerate_figure", f"the figure is {width:.0f}x{height:.0f} pixels"
        fig.canvas.draw()
        pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        marks = marks_summary(fig)
    except _Expired:
        return "timeout", f"the code ran past its {timeout} s limit"
    except MemoryError:
        return "execution_error", "MemoryError: the code ran out of its memory limit"
    except Exception as error:
        return "execution_error", f"{type(error).__name__}: {str(error)[:300]}"
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        plt.close("all")
    flat = pixels.reshape(-1, 3)
    colors, counts = np.unique(flat, axis=0, return_counts=True)
    marks["ink"] = float(1.0 - counts.max() / len(flat))
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1)
    return "ok", (buffer.getvalue(), marks)


def serve_code_renders() -> None:
    """A code render worker's loop: code in on stdin, (status, payload) out; OS limits first."""
    import resource
    import sys

    os.environ["MPLBACKEND"] = "Agg"
    source, sink = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints must not corrupt the protocol
    import pickle

    render_code_png(
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2], [1, 2])\n", 60
    )
    # Why relative: thread pools of numpy's BLAS already reserve address space that varies by machine.
    memory = _address_space() + int(os.environ.get("EVOL_CODE_RENDER_MEMORY_MB", "2048")) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # no file written (pipes are not files)
    _write_message(sink, ("ready", None))
    while True:
        header = source.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        (size,) = _HEADER.unpack(header)
        code, timeout = pickle.loads(source.read(size))
        try:
            answer = render_code_png(code, timeout)
        except Exception as error:  # the worker answers whatever happens
            answer = ("execution_error", f"{type(error).__name__}: {str(error)[:300]}")
        _write_message(sink, answer)


def _address_space() -> int:
    """This process's mapped address space in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class CodeRenderer(ChartRenderer):
    """Renders and checks model-written plotting code in limited worker subprocesses (see the
    module docstring); thread-safe like `ChartRenderer`."""

    worker_entry = "from envs.charts.code_check import serve_code_renders; serve_code_renders()"

    def check(self, code: str) -> CodeRender:
        """Run `code` in a worker and check the figure it builds; never runs it here."""
        try:
            ast.parse(code)
        except (SyntaxError, ValueError) as error:
            return CodeRender("syntax_error", f"{type(error).__name__}: {error}")
        try:
            check_plotting_code(code)
        except UnsafeCodeError as error:
            return CodeRender("unsafe_code", str(error))
        worker = self._take()
        started = time.monotonic()
        try:
            _write_message(worker.process.stdin, (code, self.timeout))
            status, payload = worker.receive(started + self.timeout + self.grace)
        except TimeoutError:
            self._drop(worker)
            return CodeRender("timeout", f"the code ran past {self.timeout} s (its worker was stopped)")
        except (OSError, RenderError, EOFError) as error:
            self._drop(worker)
            return CodeRender("execution_error", f"the render worker died: {error}")
        self._idle.put(worker)
        if status != "ok":
            return CodeRender(status, str(payload))
        png, marks = payload
        axes = marks["axes"]
        if not axes or not any(ax["artists"] for ax in axes):
            return CodeRender("empty_figure", "nothing is drawn on the figure", png, marks)
        if marks["ink"] < MIN_INK:
            return CodeRender(
                "degenerate_figure", f"the picture is nearly blank ({marks['ink']:.2%} ink)", png, marks
            )
        reason, message = check_marks(code, marks)
        return CodeRender(reason or "ok", message, png, marks)


# ---- the data in the code --------------------------------------------------------------
def _number(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    )


def _numeric_sequence(node: ast.AST) -> bool:
    return isinstance(node, (ast.List, ast.Tuple)) and bool(node.elts) and all(map(_number, node.elts))


def data_lengths(code: str) -> tuple[set[int], set[int]]:
    """The lengths of the literal data arrays in `code` (read from its syntax tree, never
    run), and the integer point counts it asks for (`bins=`, `np.linspace`'s `num`)."""
    tree = ast.parse(code)
    lengths: set[int] = set()
    counts: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.List) and node.elts:
            if all(map(_number, node.elts)) or all(
                isinstance(e, (ast.List, ast.Tuple)) and e.elts for e in node.elts
            ):
                lengths.add(len(node.elts))
        elif isinstance(node, ast.Tuple) and len(node.elts) >= 3 and _numeric_sequence(node):
            lengths.add(len(node.elts))
        elif isinstance(node, ast.Dict) and node.values:
            if all(_number(v) or _numeric_sequence(v) for v in node.values):
                lengths.add(len(node.values))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            given = {k.arg: k.value for k in node.keywords}
            if node.func.attr == "hist":
                bins = given.get("bins", node.args[1] if len(node.args) > 1 else None)
                if bins is not None and _number(bins):
                    counts.add(int(bins.value))
            elif node.func.attr == "linspace":
                num = given.get("num", node.args[2] if len(node.args) > 2 else None)
                counts.add(int(num.value) if num is not None and _number(num) else 50)
    return lengths, counts


def _calls(code: str) -> set[str]:
    return {
        node.func.attr
        for node in ast.walk(ast.parse(code))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }


def check_marks(code: str, marks: dict[str, Any]) -> tuple[str | None, str]:
    """(None, "") when every drawn group of marks is explained by the code's data (see the
    module docstring), else the rejection reason and what disagrees."""
    lengths, counts = data_lengths(code)
    if not lengths:
        return "no_explicit_data", "the code holds no literal data array"
    calls = _calls(code)
    hist = "hist" in calls
    check_lines = not calls & {"boxplot", "violinplot"}
    problems = []
    for i, ax in enumerate(marks["axes"]):
        for n in ax["bars"]:
            if n not in lengths and not (hist and (n + 1 in lengths or n in counts)):
                problems.append(f"axes {i}: {n} bars")
        if ax["wedges"] and ax["wedges"] not in lengths:
            problems.append(f"axes {i}: {ax['wedges']} pie wedges")
        if check_lines:
            for n in ax["lines"]:
                if n not in lengths and n not in counts and not (ax["polar"] and n - 1 in lengths):
                    problems.append(f"axes {i}: a line of {n} points")
        if ax["scatter"] and sum(ax["scatter"]) not in lengths:
            problems += [f"axes {i}: {n} scatter points" for n in ax["scatter"] if n not in lengths]
        for rows, cols in ax["images"]:
            if rows not in lengths or cols not in lengths:
                problems.append(f"axes {i}: a {rows}x{cols} image")
    if problems:
        shown = sorted(lengths)[:12]
        return (
            "data_marks_mismatch",
            f"{'; '.join(problems[:5])} drawn, but the code's data arrays have lengths {shown}",
        )
    return None, ""
