"""ReachQA-format QA records from a local file, checked when they are loaded.

A file is a JSON list or JSON Lines of records with ReachQA's fields: `question`, `answer`,
`image` (a path relative to the file, or absolute), `code` (the plotting code, or, as
ReachQA's releases store it, the path of its `.py` file, resolved like `image`: a one-line
value without `(` or `=` is a path), `QA_type`,
`major_chart_type`, `minor_chart_type`; ReachQA's test file names the QA type `split`
("recognizing" or "reasoning"), read as `QA_type` where that is missing. Other fields are kept.

Loading reads every code file and checks that every image exists and is an image, so that
a missing or broken file is reported at once (how many records, the first few by record
index and `id`), never at a reset; a record with no image (or no code) at all loads, and
only a reset that needs it is refused. Messages may reach a client over HTTP: they name files
as the records write them (relative paths) or by their file name, never by a folder of
this machine.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

REACHQA_FIELDS = ("question", "answer", "image", "code", "QA_type", "major_chart_type", "minor_chart_type")
QA_TYPE_NAMES = {"recognizing": "recognition", "recognition": "recognition", "reasoning": "reasoning"}
MAX_CODE_CHARS = 60_000  # a code file longer than this cannot fit an observation
SHOWN_PROBLEMS = 5  # problems listed in a message; the count covers all


@dataclass
class ReachQAData:
    """The records of one file, and which of them cannot be shown in a mode: those whose
    file is missing or unreadable (`broken`) and those that name none (`unset`)."""

    records: list[dict[str, Any]]
    broken: dict[str, dict[int, str]] = field(default_factory=dict)  # mode -> record -> problem
    unset: dict[str, set[int]] = field(default_factory=dict)  # mode -> records without the field

    def problem(self, task: int, mode: str) -> str | None:
        """Why record `task` cannot be shown in `mode` ("image" or "code"), or None."""
        if task in self.unset.get(mode, ()):
            return f"it has no {mode}"
        return self.broken.get(mode, {}).get(task)


def load_reachqa(path: str | os.PathLike, mode: str = "image") -> ReachQAData:
    """The records of a ReachQA-format file. A ValueError says what is wrong with the file,
    or which records name a file for `mode` ("image": an image; "code": a code file) that is
    missing or unreadable. Records naming none load; a reset in that mode refuses them."""
    path = Path(path)
    raw = _read_records(path)
    records, broken, unset = [], {"image": {}, "code": {}}, {"image": set(), "code": set()}
    for n, record in enumerate(raw):
        if not isinstance(record, dict) or "question" not in record or "answer" not in record:
            raise ValueError(f"record {n} of {path.name!r} lacks 'question' or 'answer'")
        record = {key: record.get(key) for key in REACHQA_FIELDS} | {
            k: v for k, v in record.items() if k not in REACHQA_FIELDS
        }
        record["answer"] = str(record["answer"])
        if not record.get("QA_type") and isinstance(record.get("split"), str):
            record["QA_type"] = QA_TYPE_NAMES.get(record["split"].lower(), record["split"])
        if record.get("image"):
            record["image"], problem = _image(path.parent, str(record["image"]))
            if problem:
                broken["image"][n] = problem
        else:
            unset["image"].add(n)
        if record.get("code"):
            record["code"], problem = _code(path.parent, str(record["code"]))
            if problem:
                broken["code"][n] = problem
        else:
            unset["code"].add(n)
        records.append(record)
    data = ReachQAData(records, broken, unset)
    report = missing_report(data, mode, path.name)
    if report:
        raise ValueError(report)
    return data


def missing_report(data: ReachQAData, mode: str, name: str) -> str | None:
    """The message for the records whose file for `mode` is missing or broken, or None."""
    problems = data.broken.get(mode, {})
    if not problems:
        return None
    shown = "; ".join(
        f"record {n}{_id(data.records[n])}: {problem}"
        for n, problem in list(problems.items())[:SHOWN_PROBLEMS]
    )
    more = f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    return (
        f"{len(problems)} of the {len(data.records)} records of {name!r} cannot be shown in {mode} mode "
        f"({shown}{more})"
    )


def _read_records(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise ValueError(f"cannot read the ReachQA file {path.name!r}: {reason}") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path.name!r} is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
            ) from None
    else:
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(
                        f"line {number} of {path.name!r} is not valid JSON ({error.msg} at column {error.colno})"
                    ) from None
    if not isinstance(records, list) or not records:
        raise ValueError(f"{path.name!r} holds no ReachQA records (a non-empty JSON list or JSON Lines)")
    return records


def _resolve(folder: Path, written: str) -> Path:
    path = Path(written).expanduser()
    return path if path.is_absolute() else folder / path


def _shown(written: str) -> str:
    """A file as a message may name it: as the record writes it when relative, else its name."""
    path = Path(written)
    return repr(path.name if path.is_absolute() or written.startswith("~") else written)


def _image(folder: Path, written: str) -> tuple[str, str | None]:
    """The image's resolved path, and what is wrong with it (None when it opens as an image)."""
    path = _resolve(folder, written)
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 (the header is read: the file is an image)
    except FileNotFoundError:
        return str(path), f"image {_shown(written)} not found"
    except (UnidentifiedImageError, OSError, ValueError):
        return str(path), f"image {_shown(written)} is not a readable image"
    return str(path), None


def _code(folder: Path, written: str) -> tuple[str | None, str | None]:
    """The plotting code (read from its file when `written` is a path), and what is wrong."""
    if "\n" in written.strip() or "(" in written or "=" in written:
        return written, None  # the code itself: any line of plotting code calls or assigns
    path = _resolve(folder, written.strip())
    try:
        with open(path, encoding="utf-8") as handle:
            code = handle.read(MAX_CODE_CHARS + 1)
    except FileNotFoundError:
        return None, f"code file {_shown(written.strip())} not found"
    except (OSError, UnicodeDecodeError):
        return None, f"code file {_shown(written.strip())} is not readable UTF-8 text"
    if len(code) > MAX_CODE_CHARS:
        return None, f"code file {_shown(written.strip())} is over {MAX_CODE_CHARS} characters"
    return code, None


def _id(record: dict[str, Any]) -> str:
    return f" (id {str(record['id'])[:40]!r})" if record.get("id") is not None else ""


__all__ = ["REACHQA_FIELDS", "ReachQAData", "load_reachqa", "missing_report"]
