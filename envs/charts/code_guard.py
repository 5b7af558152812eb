"""A static check of plotting code before it runs: a whitelist of syntax, modules and names.

`check_plotting_code(code)` raises `UnsafeCodeError` unless the code stays inside what a
matplotlib chart script needs: statements and expressions of a fixed set of kinds (no
function or class definitions, lambdas, `while`, `with`, `try`, `global`, `del`); imports
of numpy and matplotlib's pyplot, ticker, colors and patches only (as `import x` or
`import x as y`); on those modules, only the functions and constants listed here (a module
exposes other modules — `plt.sys`, `matplotlib.os` — so a deny-list would leak); no name
or attribute that starts with an underscore (`__class__`, `__globals__`...); no call of
the introspection and file builtins (`getattr`, `eval`, `exec`, `open`, `compile`,
`globals`, `vars`...); no attribute that writes files, registers callables, turns on LaTeX or formats with
attribute lookup (`savefig`, `tofile`, `print_png`, `canvas`, `callbacks`, `set_usetex`, `format`),
nor a string naming `usetex` (`plt.setp(t, "usetex", True)`), nor `**` keyword unpacking; no power with other than a small
constant exponent; `rcParams` only set with literal keys from a list of styling settings
(others make matplotlib run programs: `text.usetex`, `animation.*`).

Not a sandbox: Python cannot be confined by inspection alone. The code also runs with
restricted builtins and a guarded `__import__` (`envs.charts.render.run_plotting_code`),
and in a render worker process under a time limit; code a model wrote
(`evol data charts --synth agent`) runs only in `envs.charts.code_check`'s worker, which
adds OS limits (address space, no file writes).
"""

from __future__ import annotations

import ast

MAX_CODE_LENGTH = 100_000
MAX_EXPONENT = 64

ALLOWED_NODES = frozenset(
    {
        # statements
        ast.Module, ast.Expr, ast.Assign, ast.AugAssign, ast.For, ast.If, ast.Pass, ast.Break,
        ast.Continue, ast.Import,
        # expressions
        ast.Call, ast.keyword, ast.Name, ast.Attribute, ast.Subscript, ast.Slice, ast.Starred,
        ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.DictComp,
        ast.SetComp, ast.GeneratorExp, ast.comprehension, ast.BinOp, ast.UnaryOp, ast.BoolOp,
        ast.Compare, ast.IfExp, ast.JoinedStr, ast.FormattedValue, ast.alias,
        # contexts and operators
        ast.Load, ast.Store, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
        ast.USub, ast.UAdd, ast.Not, ast.And, ast.Or, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt,
        ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot,
    }
)  # fmt: skip

# Each allowed module and the attributes code may use on it (functions, classes, constants).
MODULE_ATTRIBUTES: dict[str, frozenset[str]] = {
    "numpy": frozenset(
        "abs all any append arange arctan2 argmax argmin argsort around array asarray ceil clip "
        "column_stack concatenate cos cumprod cumsum deg2rad degrees diff divide e exp flip float64 "
        "floor full full_like histogram hstack hypot int64 interp isnan linspace log log10 max "
        "maximum mean median meshgrid min minimum mod nan nanmax nanmean nanmin nansum ones "
        "ones_like percentile pi polyfit polyval prod quantile radians rad2deg repeat round sin "
        "sort sqrt stack std sum tan tile unique var vstack where zeros zeros_like".split()
    ),
    "matplotlib.pyplot": frozenset(
        "annotate axhline axis axvline bar barh boxplot colorbar errorbar figure fill fill_between "
        "gca gcf get_cmap grid hist imshow legend margins minorticks_on pie plot rcParams scatter "
        "setp stackplot stem step subplot subplots subplots_adjust suptitle table text tick_params "
        "tight_layout title twinx twiny violinplot xlabel xlim xticks ylabel ylim yticks".split()
    ),
    "matplotlib.ticker": frozenset(
        "FixedLocator FormatStrFormatter FuncFormatter MaxNLocator MultipleLocator NullFormatter "
        "NullLocator PercentFormatter ScalarFormatter StrMethodFormatter".split()
    ),
    "matplotlib.colors": frozenset(
        "BoundaryNorm LinearSegmentedColormap ListedColormap LogNorm Normalize TwoSlopeNorm "
        "to_hex to_rgb to_rgba".split()
    ),
    "matplotlib.patches": frozenset("Circle Ellipse FancyBboxPatch Patch Polygon Rectangle Wedge".split()),
}
ALLOWED_MODULES = frozenset(MODULE_ATTRIBUTES)

BLOCKED_NAMES = frozenset(
    "breakpoint classmethod compile delattr dir eval exec exit getattr globals hasattr help input "
    "locals memoryview object open property quit setattr staticmethod super type vars".split()
)
# Attributes of any object that write files, reach the canvas, register callables or look
# attributes up by name; any name containing `usetex` (an artist's `set_usetex` runs LaTeX).
BLOCKED_ATTRIBUTES = frozenset(
    "callbacks canvas connect ctypes dump dumps format format_map imread imsave load loads "
    "mpl_connect mro save savefig savetxt savez savez_compressed set_canvas switch_backend "
    "tofile".split()
)
BLOCKED_FRAGMENTS = ("usetex",)
BLOCKED_PREFIXES = ("_", "print_", "save")
# rc settings code may change (some others make matplotlib run programs: text.usetex, animation.*).
RC_PREFIXES = (
    "axes.", "boxplot.", "errorbar.", "figure.facecolor", "font.", "grid.", "hatch.", "hist.",
    "image.cmap", "legend.", "lines.", "patch.", "scatter.", "xtick.", "ytick.",
)  # fmt: skip


class UnsafeCodeError(ValueError):
    """Plotting code outside the whitelist; the message says what was refused."""


def check_plotting_code(code: str) -> None:
    """Raise `UnsafeCodeError` unless `code` passes the whitelist (see the module docstring)."""
    if not isinstance(code, str):
        raise UnsafeCodeError("plotting code must be text")
    if len(code) > MAX_CODE_LENGTH:
        raise UnsafeCodeError(f"plotting code longer than {MAX_CODE_LENGTH} characters")
    if "\x00" in code:
        raise UnsafeCodeError("plotting code holds a NUL character")
    try:
        tree = ast.parse(code, mode="exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as error:
        raise UnsafeCodeError(f"plotting code does not parse: {error}") from None
    modules = _imported_modules(tree)
    settings = _rc_settings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "rcParams" and id(node) not in settings:
            raise UnsafeCodeError(
                'plotting code may use rcParams only as plt.rcParams.update({"font.size": 8, ...}) or '
                'plt.rcParams["font.size"] = 8, with literal keys'
            )
        _check_node(node, modules)


def _rc_settings(tree: ast.Module) -> set[int]:
    """The `rcParams` nodes used as `x.rcParams.update({<literal keys>})` or `x.rcParams[<key>]`
    with every key one that `RC_PREFIXES` allows."""
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update":
            target, keys = node.func.value, None
            if len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Dict):
                keys = node.args[0].keys
        elif isinstance(node, ast.Subscript):
            target, keys = node.value, [node.slice]
        else:
            continue
        if not (isinstance(target, ast.Attribute) and target.attr == "rcParams") or keys is None:
            continue
        if all(
            isinstance(k, ast.Constant) and isinstance(k.value, str) and _rc_key_allowed(k.value)
            for k in keys
        ):
            allowed.add(id(target))
    return allowed


def _rc_key_allowed(key: str) -> bool:
    return key.startswith(RC_PREFIXES) and "usetex" not in key and "path" not in key


def _imported_modules(tree: ast.Module) -> dict[str, str]:
    """The names imports bind, each to its module (`plt` -> `matplotlib.pyplot`)."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in ALLOWED_MODULES:
                    raise UnsafeCodeError(
                        f"plotting code may import only {', '.join(sorted(ALLOWED_MODULES))}, not {alias.name}"
                    )
                if alias.asname is None and "." in alias.name:
                    raise UnsafeCodeError(f"import {alias.name} under a name: import {alias.name} as ...")
                bound[alias.asname or alias.name] = alias.name
    return bound


def _check_node(node: ast.AST, modules: dict[str, str]) -> None:
    if type(node) not in ALLOWED_NODES:
        raise UnsafeCodeError(f"plotting code may not use {type(node).__name__}")
    if isinstance(node, ast.Name):
        if node.id.startswith("__") or node.id in BLOCKED_NAMES:
            raise UnsafeCodeError(f"plotting code may not use the name {node.id!r}")
        if node.id in modules and isinstance(node.ctx, ast.Store):
            raise UnsafeCodeError(f"plotting code may not rebind the module name {node.id!r}")
    elif isinstance(node, ast.Attribute):
        _check_attribute(node, modules)
    elif isinstance(node, ast.keyword):
        if node.arg is None:  # `**mapping` would pass keyword names the check never sees
            raise UnsafeCodeError("plotting code may not unpack keyword arguments (`**`)")
        _check_identifier(node.arg, "keyword")
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        if any(fragment in node.value for fragment in BLOCKED_FRAGMENTS):  # `plt.setp(t, "usetex", True)`
            raise UnsafeCodeError(f"plotting code may not name the property {node.value!r}")
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        exponent = node.right
        if isinstance(exponent, ast.UnaryOp) and isinstance(exponent.op, (ast.USub, ast.UAdd)):
            exponent = exponent.operand
        if not (
            isinstance(exponent, ast.Constant)
            and isinstance(exponent.value, (int, float))
            and not isinstance(exponent.value, bool)
            and abs(exponent.value) <= MAX_EXPONENT
        ):
            raise UnsafeCodeError(f"a power's exponent must be a number up to {MAX_EXPONENT}")
    _check_module_use(node, modules)


def _check_attribute(node: ast.Attribute, modules: dict[str, str]) -> None:
    _check_identifier(node.attr, "attribute")
    if isinstance(node.value, ast.Name) and node.value.id in modules:
        module = modules[node.value.id]
        if node.attr not in MODULE_ATTRIBUTES[module]:
            raise UnsafeCodeError(f"plotting code may not use {module}.{node.attr}")


def _check_identifier(name: str, what: str) -> None:
    blocked = name in BLOCKED_ATTRIBUTES or name in BLOCKED_NAMES or any(f in name for f in BLOCKED_FRAGMENTS)
    if name.startswith(BLOCKED_PREFIXES) or blocked:
        raise UnsafeCodeError(f"plotting code may not use the {what} {name!r}")


def _check_module_use(node: ast.AST, modules: dict[str, str]) -> None:
    """A module name may only be followed by one of its attributes (`np.arange`), never passed,
    stored or called itself (`f = np`, `print(np)`)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Name) and child.id in modules and not isinstance(node, ast.Attribute):
            raise UnsafeCodeError(f"plotting code may use the module {child.id!r} only as {child.id}.<name>")
