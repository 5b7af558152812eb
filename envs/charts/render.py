"""Running plotting code: `run_plotting_code` (a restricted exec) and `render_png` (here, to PNG).

The code first passes `envs.charts.code_guard.check_plotting_code`, then runs with
restricted builtins and an import guard that lets in matplotlib and numpy only. Two callers:
render workers (`envs.charts.render_workers`) run the code the project's own generator wrote
for a Chart, and the offline `evol data charts --synth agent` runs model-written scripts only
in `envs.charts.code_check`'s OS-limited worker. No env, server route or data file's `code`
field reaches it.
"""

from __future__ import annotations

import builtins
import io
import signal
import threading
from typing import Any

import numpy as np

from envs.charts.chart import Chart
from envs.charts.code_guard import UnsafeCodeError, check_plotting_code
from envs.charts.plotting import plotting_code

SAFE_BUILTINS = {
    name: getattr(builtins, name)
    for name in (
        "abs",
        "dict",
        "enumerate",
        "float",
        "int",
        "isinstance",
        "len",
        "list",
        "max",
        "min",
        "range",
        "round",
        "sorted",
        "str",
        "sum",
        "tuple",
        "zip",
    )
}


class RenderError(RuntimeError):
    """Plotting code failed, ran past its time limit, or its worker died."""


def _guarded_import(name: str, globals=None, locals=None, fromlist=(), level: int = 0):
    # Any submodule: numpy's C code imports its own lazily through the running frame's
    # builtins. The code's own imports are held to `ALLOWED_MODULES` by `check_plotting_code`.
    if level == 0 and name.split(".")[0] in ("matplotlib", "numpy"):
        return __import__(name, globals, locals, fromlist, level)
    raise ImportError(f"plotting code may import only matplotlib and numpy, not {name!r}")


def run_plotting_code(code: str) -> Any:
    """Run plotting code in a namespace without file, network or process access; return `fig`.

    The code must first pass `check_plotting_code` (a whitelist of syntax, modules and
    names: no dunders, no imports beyond numpy and pyplot's kin, no `getattr`/`eval`/`open`,
    no file-writing attributes); it then runs with restricted builtins and a guarded
    import. Not a sandbox on its own (see `envs.charts.code_guard`): its callers are the
    module docstring's two, each in a worker process under a time limit.
    """
    try:
        check_plotting_code(code)
    except UnsafeCodeError as error:
        raise RenderError(f"plotting code refused: {error}") from None
    namespace: dict[str, Any] = {
        "__builtins__": {**SAFE_BUILTINS, "__import__": _guarded_import},
        "__name__": "chart",
    }
    # What reaches here: `plotting_code(chart)` of a generated Chart (render workers receive Chart
    # objects, never code), and model-written scripts of `evol data charts --synth agent`, only
    # inside `envs.charts.code_check`'s worker process (address-space cap, no file writes, alarm),
    # after the whitelist above. Data files' `code` and env actions are never run
    # (tests/envs/test_charts.py, tests/envs/test_text_safety.py).
    exec(compile(code, "<chart>", "exec"), namespace)
    if "fig" not in namespace:
        raise RenderError("plotting code did not build `fig`")
    return namespace["fig"]


def render_png(chart: Chart, timeout: float | None = None) -> bytes:
    """Write and run `chart`'s plotting code here (the Agg backend) and return the PNG.

    With `timeout`, a signal alarm bounds the run; signals work in the main thread only,
    so elsewhere the timeout is not armed (render workers call this from their main thread,
    and their caller's deadline kills a stuck worker).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    def expire(signum: int, frame: Any) -> None:
        raise RenderError(f"rendering ran past its {timeout} s limit")

    if threading.current_thread() is not threading.main_thread():
        timeout = None
    if timeout:
        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        fig = run_plotting_code(plotting_code(chart))
        try:
            fig.canvas.draw()
            pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        finally:
            plt.close(fig)
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
