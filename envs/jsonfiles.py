"""Reading a file of JSON records with errors that name the place: `FILE line N` (JSONL) or
`FILE item N` (a JSON list), for the data files the platform writes and reads back."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_json_records(
    path: str | os.PathLike,
    what: str,
    error: type[Exception] = ValueError,
    *,
    allow_list: bool = False,
    skip_torn_tail: bool = False,
) -> list[tuple[str, Any]]:
    """(`FILE line N`, value) for every non-blank line of a JSONL file, or (`FILE item N`,
    value) for a file holding one JSON list when `allow_list`. `what` names the file in the
    error when it is missing ("no such {what}"); a line that is not JSON raises `error` naming
    it, except, with `skip_torn_tail`, a last line with no newline after it (torn by a killed
    writer), which is skipped. Values are not checked: the caller checks their shape."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"{path}: cannot read it: {problem}") from None
    if allow_list and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as problem:
            raise error(f"{path}: not a JSON list of records: {problem}") from None
        return [(f"{path} item {i}", item) for i, item in enumerate(items, 1)]
    lines = text.split("\n")
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entries.append((f"{path} line {number}", json.loads(line)))
        except json.JSONDecodeError as problem:
            if skip_torn_tail and number == len(lines):
                continue
            raise error(f"{path} line {number}: not JSON: {problem}") from None
    return entries
