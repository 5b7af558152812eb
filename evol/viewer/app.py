"""The Flask app behind `evol view PATH`: the page (static files) and its JSON API over one
trajectory file or one run directory (`evol/trainers/loop.py` describes a run's files).

    GET /                  the page (view.html, view.js, view.css under /static/: no data, no token)
    GET /api/source        what is viewed: {"kind": "file"|"run", "name", "files": [...]}
    GET /api/episodes      ?file&env&agent&success&error&sort&order&offset&limit: a page of the table
    GET /api/episode       ?file&id: one episode as written
    GET /api/run           a run's metrics rows, state.json and config.yaml (404 for a file)
    GET /api/tasks         ?a&b&only&offset&limit: the tasks two files share, with their outcomes
    GET /api/compare       ?a&b&env&task: the episodes of one task in two files, side by side

A `file` parameter is a path relative to the viewed directory (the file's own name when one
file is viewed); a path that resolves outside it, or names no JSONL file there, is a 404.
Episodes are untrusted text: the page puts every string in with textContent, and the page's
Content-Security-Policy runs no script but its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_from_directory

from evol.viewer.index import SORT_KEYS, JsonlRows, Query, TrajectoryIndex, natural_key
from server.errors import ApiError
from server.http import HttpFront, allowed_hosts
from server.ui import PAGE_HEADERS

STATIC_DIR = Path(__file__).parent / "static"
SKIPPED_DIRS = frozenset({"model", "checkpoints", "base_model", "__pycache__", "node_modules"})
NOT_TRAJECTORIES = frozenset({"metrics.jsonl", "pairs.jsonl"})
MAX_DEPTH = 4  # directory levels searched for trajectory files below a run directory
MAX_PAGE = 500
MAX_TEXT_BYTES = 1 << 16  # config.yaml shown at most this long


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", what)


class ViewedPath:
    """What `evol view` shows: one trajectory file, or a run directory (its trajectory files,
    metrics.jsonl, state.json, config.yaml). Indexes are built on first use and kept."""

    def __init__(self, path: str | Path):
        self.root = Path(path).resolve()
        if not self.root.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        self.is_run = self.root.is_dir()
        self._indexes: dict[Path, TrajectoryIndex] = {}
        self.metrics = JsonlRows(self.root / "metrics.jsonl") if self.is_run else None
        self._state: Any = None

    # ---- files ---------------------------------------------------------------------------
    def resolve(self, name: str) -> Path:
        """The file `name` names (404 outside the viewed path, or no JSONL file)."""
        if not self.is_run:
            if name in ("", self.root.name):
                return self.root
            raise _not_found(f"no file {name!r} here: this view shows {self.root.name}")
        try:
            path = (self.root / name).resolve()
        except (OSError, ValueError):
            raise _not_found(f"no file {name!r} in this run") from None
        if not name or not path.is_relative_to(self.root) or path.suffix != ".jsonl" or not path.is_file():
            raise _not_found(f"no trajectory file {name!r} in this run")
        return path

    def index(self, name: str) -> TrajectoryIndex:
        """The index of file `name`, brought up to date with what was appended."""
        path = self.resolve(name)
        index = self._indexes.get(path)
        if index is None:
            index = self._indexes.setdefault(path, TrajectoryIndex(path))
        index.refresh()
        return index

    def file_names(self) -> list[str]:
        """The trajectory files viewed, in run order (expert, bc, iter_1, ...)."""
        if not self.is_run:
            return [self.root.name]
        found: list[str] = []
        for folder, dirs, files in os.walk(self.root):
            depth = len(Path(folder).relative_to(self.root).parts)
            dirs[:] = [] if depth >= MAX_DEPTH else [d for d in dirs if d not in SKIPPED_DIRS and d[0] != "."]
            found += [
                str(Path(folder, f).relative_to(self.root))
                for f in files
                if f.endswith(".jsonl")
                and f not in NOT_TRAJECTORIES
                and Path(folder, f).resolve().is_relative_to(self.root)  # a link out is not listed
            ]
        return sorted(found, key=_run_order)

    def files(self) -> list[dict[str, Any]]:
        return [
            {"file": name, "label": file_label(name), **self.index(name).facets()}
            for name in self.file_names()
        ]

    # ---- a run ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        if not self.is_run or self.metrics is None:
            raise _not_found("this view shows one file, not a run directory")
        self.metrics.refresh()
        state = _read_json(self.root / "state.json")
        if state is not None:  # a state.json being rewritten keeps the last one read
            self._state = state
        config = self.root / "config.yaml"
        return {
            "metrics": self.metrics.rows,
            "bad_metric_lines": self.metrics.bad_lines,
            "state": self._state,
            "config": _read_text(config) if config.is_file() else None,
        }


def file_label(name: str) -> str:
    """A file's stage or phase: eval/bc/trajectories.jsonl -> eval/bc, iter_1/explore.jsonl -> iter_1/explore."""
    path = Path(name)
    return str(path.parent) if path.name == "trajectories.jsonl" else str(path.with_suffix(""))


def _run_order(name: str) -> tuple:
    """Files in the order a run writes them: expert, untrained, bc, then each iteration."""
    parts = Path(name).parts
    step = 10**6
    for part in parts:
        if part.startswith("expert"):
            step = -2
        elif part == "untrained":
            step = -1
        elif part == "bc":
            step = 0
        elif part.startswith("iter_") and part[5:].isdigit():
            step = int(part[5:])
    kind = 2 if "held_in" in parts else 1 if parts[0] == "eval" else 0
    return step, kind, natural_key(name)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_text(path: Path) -> str:
    with open(path, "rb") as handle:
        return handle.read(MAX_TEXT_BYTES).decode("utf-8", "replace")


# ---- query parameters ----------------------------------------------------------------------
def _args(*known: str) -> dict[str, str]:
    """The request's query parameters; 400 naming any the route does not take."""
    unknown = sorted(set(request.args) - set(known))
    if unknown:
        raise ApiError(400, "bad_request", f"unknown parameter(s) {unknown}; known: {', '.join(known)}")
    return {name: request.args.get(name, "") for name in known}


def _int(args: dict[str, str], name: str, default: int, high: int) -> int:
    text = args[name]
    if not text:
        return default
    if not text.isdigit() or int(text) > high:
        raise ApiError(400, "bad_request", f"{name} must be an integer from 0 to {high}")
    return int(text)


def _choice(args: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = args[name] or choices[0]
    if value not in choices:
        raise ApiError(400, "bad_request", f"{name} must be one of {', '.join(choices)}")
    return value


def viewed() -> ViewedPath:
    return current_app.extensions["evol_viewer"]


# ---- routes --------------------------------------------------------------------------------
routes = Blueprint("viewer", __name__)


@routes.get("/health")
def health():
    return jsonify(status="ok")


@routes.get("/")
def page():
    return send_from_directory(STATIC_DIR, "view.html")


@routes.get("/static/<name>")
def static_file(name: str):
    return send_from_directory(STATIC_DIR, name)


@routes.get("/api/source")
def source():
    _args()
    path = viewed()
    return jsonify(kind="run" if path.is_run else "file", name=path.root.name, files=path.files())


@routes.get("/api/episodes")
def episodes():
    args = _args("file", "env", "agent", "success", "error", "sort", "order", "offset", "limit")
    if args["success"] not in ("", "true", "false"):
        raise ApiError(400, "bad_request", "success must be true or false (or empty for any)")
    query = Query(
        env=args["env"],
        agent=args["agent"],
        success={"": None, "true": True, "false": False}[args["success"]],
        error=args["error"],
        sort=_choice(args, "sort", SORT_KEYS),
        descending=_choice(args, "order", ("asc", "desc")) == "desc",
        offset=_int(args, "offset", 0, 10**9),
        limit=_int(args, "limit", 50, MAX_PAGE),
    )
    index = viewed().index(args["file"])
    matched, rows = index.query(query)
    return jsonify(file=args["file"], matched=matched, offset=query.offset, rows=rows, **index.facets())


@routes.get("/api/episode")
def episode():
    args = _args("file", "id")
    index = viewed().index(args["file"])
    number = _int(args, "id", -1, 10**9)
    try:
        row = index.episode(number)
    except IndexError:
        raise _not_found(
            f"no episode {args['id'] or '(none)'} in this file ({len(index)} episodes)"
        ) from None
    except (OSError, ValueError):  # the file changed under the index since it was read
        raise ApiError(409, "file_changed", "the file changed; reload the list") from None
    return jsonify(id=number, file=args["file"], summary=index.summary(number), episode=row)


@routes.get("/api/run")
def run():
    _args()
    path = viewed()
    body = path.run()
    return jsonify(files=path.files(), **body)


@routes.get("/api/tasks")
def tasks():
    args = _args("a", "b", "only", "offset", "limit")
    path = viewed()
    first, second = path.index(args["a"]).task_outcomes(), path.index(args["b"]).task_outcomes()
    only = _choice(args, "only", ("all", "differ"))
    shared = sorted(set(first) & set(second), key=lambda key: (key[0], natural_key(key[1])))
    if only == "differ":  # tasks one file won more often than the other
        shared = [k for k in shared if first[k][1] / first[k][0] != second[k][1] / second[k][0]]
    offset, limit = _int(args, "offset", 0, 10**9), _int(args, "limit", 200, MAX_PAGE)
    rows = [
        {"env": env, "task": task, "a": list(first[(env, task)]), "b": list(second[(env, task)])}
        for env, task in shared[offset : offset + limit]
    ]
    return jsonify(matched=len(shared), offset=offset, tasks=rows)


@routes.get("/api/compare")
def compare():
    args = _args("a", "b", "env", "task")
    path = viewed()
    sides = {}
    for side in ("a", "b"):
        index = path.index(args[side])
        sides[side] = [
            {"id": i, "summary": index.summary(i), "episode": index.episode(i)}
            for i in index.with_task(args["env"], args["task"])
        ]
    return jsonify(env=args["env"], task=args["task"], **sides)


def _secure(response: Response) -> Response:
    response.headers.update(PAGE_HEADERS)  # the /ui page's: its own script only
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"
    return response


def create_viewer_app(
    path: str | Path, host: str = "127.0.0.1", token: str | None = None, extra_hosts: tuple[str, ...] = ()
) -> Flask:
    """The app that views `path` (a trajectory JSONL file or a run directory) for one person at
    a browser: only requests naming this server (`host`, loopback, `extra_hosts`) are answered,
    and with a `token` every /api route wants it as a bearer token (the page reads it from
    the address's #token= fragment)."""
    app = Flask("evol-view")
    front = HttpFront(
        ApiError,
        ApiError,
        hosts=allowed_hosts(host, extra_hosts),
        token=token,
        open_paths=frozenset({"/health", "/"}),
        open_prefixes=("/static/",),
    )
    front.install(app, max_body_bytes=1 << 16)
    app.extensions["evol_viewer"] = ViewedPath(path)
    app.register_blueprint(routes)
    app.after_request(_secure)
    return app
