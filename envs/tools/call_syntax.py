"""Tool calls written in an agent's text, read by a small tokenizer: nothing is evaluated.

A reply may hold several calls; they are read in order (at most `MAX_CALLS`):

- call syntax, as OOD-Toolset's prompts write it: `name(key=value, ...)`, with any argument
  name (Python keywords too: `convertCurrency(from='EUR', to='USD', amount=50)`), function
  names with `-` or `.` (`add-question(...)`), or one object as the arguments
  (`name({"key": value})`);
- JSON call objects `{"name": ..., "arguments": {...}}` (also `"parameters"`, arguments as a
  JSON string, OpenAI's `{"type": "function", "function": {...}}`);
- lists of calls, of call objects or of call strings: OOD-Toolset's answer format
  `["convertCurrency(from='EUR', to='USD', amount=50)", "getRate(base='EUR')"]`.

A call starts a line (after a list marker, backticks, or a label such as `Action:` or
`Function calls:`), follows another call on its line after `,` or `;`, or follows `Action:`
anywhere in a line; code-fence lines are dropped, and lines of prose are skipped. A call
may span lines.

Values are JSON literals, written as JSON or as Python: strings in either quote with
backslash escapes, where a quote that is not followed by `,` `)` `]` `}` `:` `;` or the
line's end belongs to the string (`'it's'`, `"he said "hi""`); finite numbers (integers of at
most `MAX_DIGITS` digits); true/false/null and True/False/None; lists (tuples too) and
objects with string keys, nested at most `MAX_NESTING` deep; trailing commas. One pass over
the text: the time is linear in its length, and a text over `MAX_TEXT` characters is refused.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_TEXT = 16_384
MAX_CALLS = 8  # calls in one reply
MAX_NESTING = 20  # lists and objects inside one another
MAX_DIGITS = 100  # digits of one integer
MAX_QUOTING = 2  # call strings inside call strings

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[-.][A-Za-z0-9_]+)*")
NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
SPACE = re.compile(r"\s*")
INLINE_SPACE = re.compile(r"[ \t]*")
SEPARATOR = re.compile(r"[ \t`]*[,;]?[ \t`]*")
FENCE = re.compile(r"^[ \t]*```[\w-]*[ \t]*$", re.MULTILINE)
# A list marker, then a label ("Action:", "**Function calls**:", "Call 2:"), then backticks; all optional.
LINE_START = re.compile(
    r"[ \t]*(?:(?:[-*•>]|\d{1,3}[.)])[ \t]+)?(?:\**[A-Za-z][\w \t-]{0,40}?\**[ \t]*:\**[ \t]*)?`*[ \t]*"
)
ACTION_MARK = re.compile(r"\baction[ \t]*:[ \t]*`*[ \t]*", re.IGNORECASE)
STRING_STOP = {quote: re.compile(r"[\\\n" + quote + "]") for quote in "'\""}
CLOSERS = frozenset(",)]}:;\r\n")  # what may follow a closing quote
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\", "'": "'", '"': '"'}
LITERALS = {"true": True, "True": True, "false": False, "False": False, "null": None, "None": None}

RawCall = tuple[str, Any]  # (function name, arguments: an object, unless a JSON call wrote otherwise)


class CallSyntaxError(ValueError):
    """Text that starts a call, or a value, and cannot be read as one; the message says why."""


def strip_fences(text: str) -> str:
    """`text` without its code-fence lines (```json ... ```), stripped."""
    return FENCE.sub("", text).strip()


def read_calls(text: str) -> list[RawCall]:
    """Every call in `text`, in order (see the module docstring); a CallSyntaxError for the
    first one that cannot be read. Prose around the calls is skipped."""
    if len(text) > MAX_TEXT:
        raise CallSyntaxError(f"the text is longer than {MAX_TEXT} characters")
    return _Reader(FENCE.sub("", text)).lines()


def read_value(text: str, what: str) -> Any:
    """The one JSON-literal value `text` holds (JSON, or Python's way of writing it).

    A CallSyntaxError says `what` is not valid JSON, and why."""
    if len(text) > MAX_TEXT:
        raise CallSyntaxError(f"{what} is longer than {MAX_TEXT} characters")
    reader = _Reader(text)
    try:
        value, end = reader.value(0, 1)
    except CallSyntaxError as error:
        raise CallSyntaxError(f"{what} is not valid JSON ({error})") from None
    rest = text[end:].strip()
    if rest:
        raise CallSyntaxError(f"{what} has text after its value: {rest[:40]!r}")
    return value


def read_value_at(text: str, pos: int, what: str) -> tuple[Any, int]:
    """The JSON-literal value that starts at `text[pos]`, and where it ends."""
    try:
        return _Reader(text).value(pos, 1)
    except CallSyntaxError as error:
        raise CallSyntaxError(f"{what} is not valid JSON ({error})") from None


def call_object(value: Any) -> RawCall:
    """A JSON call object read as a call: `{"name", "arguments" | "parameters"}`, maybe
    wrapped in OpenAI's `{"type": "function", "function": {...}}`; arguments as they are
    written (an object, or any other value for the tool's schema to refuse)."""
    if not isinstance(value, dict):
        raise CallSyntaxError('a JSON tool call is an object: {"name": "<tool>", "arguments": {...}}')
    if isinstance(value.get("function"), dict):
        value = value["function"]
    name = value.get("name")
    if not isinstance(name, str) or not name:
        keys = ", ".join(repr(k) for k in value) or "none"
        raise CallSyntaxError(
            f'a JSON tool call needs a "name" (a string) and "arguments" (an object); got keys {keys}'
        )
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        arguments = read_value(arguments, f'the "arguments" string of {name}') if arguments.strip() else {}
    # Arguments of another type go on: the tool's schema explains what is wrong with them.
    return name, {} if arguments is None else arguments


class _Reader:
    """One text and the readers of its pieces; every method takes and returns positions."""

    def __init__(self, text: str, quoted: int = 0):
        self.text = text
        self.quoted = quoted  # how many call strings this text lies inside
        self.calls: list[RawCall] = []

    # ---- lines and items ------------------------------------------------------------------
    def lines(self) -> list[RawCall]:
        text, pos = self.text, 0
        while pos < len(text):
            line_end = _line_end(text, pos)
            start = LINE_START.match(text, pos, line_end).end()
            end = self.items(start)
            if end == start:  # prose; an "Action:" later in the line may still introduce a call
                mark = ACTION_MARK.search(text, start, line_end)
                if mark is not None:
                    end = self.items(mark.end())
            pos = max(line_end, _line_end(text, end)) + 1  # what follows the calls on their line is prose
        return self.calls

    def items(self, pos: int) -> int:
        """Read the calls that start at `pos`, one after another; where the last one ends."""
        end = pos
        while True:
            found = self.item(pos, 0)
            if found is None:
                return end
            calls, end = found
            self.calls.extend(calls)
            if len(self.calls) > MAX_CALLS:
                raise CallSyntaxError(f"at most {MAX_CALLS} calls in one reply")
            pos = SEPARATOR.match(self.text, end).end()

    def item(self, pos: int, depth: int) -> tuple[list[RawCall], int] | None:
        """The calls of one item at `pos` (a call, a call object, a list, a call string), or
        None when the text there starts none (prose)."""
        text = self.text
        if pos >= len(text) or depth > MAX_NESTING:
            return None
        char = text[pos]
        if char == "{":
            value, end = read_value_at(text, pos, "the tool call")
            return [call_object(value)], end
        if char == "[":
            return self.call_list(pos, depth) if self.opens_call_list(pos) else None
        if char in "'\"":
            return self.call_string(pos)
        name = NAME.match(text, pos)
        if name is not None and text.startswith("(", name.end()):
            return self.call(pos)
        return None

    def opens_call_list(self, pos: int) -> bool:
        inner = SPACE.match(self.text, pos + 1).end()
        if inner >= len(self.text):
            return False
        if self.text[inner] in "'\"{[":
            return True
        name = NAME.match(self.text, inner)
        return name is not None and self.text.startswith("(", name.end())

    def call_list(self, pos: int, depth: int) -> tuple[list[RawCall], int]:
        text, calls, pos = self.text, [], pos + 1
        while True:
            pos = SPACE.match(text, pos).end()
            if text.startswith("]", pos):
                return calls, pos + 1
            found = self.item(pos, depth + 1)
            if found is None:
                raise CallSyntaxError(
                    f"a list of calls holds calls, call strings or call objects; got {_shown(text, pos)}"
                )
            calls += found[0]
            pos = SPACE.match(text, found[1]).end()
            if text.startswith(",", pos):
                pos += 1
            elif not text.startswith("]", pos):
                raise CallSyntaxError(f"a list of calls is missing a ',' or ']' before {_shown(text, pos)}")

    def call_string(self, pos: int) -> tuple[list[RawCall], int] | None:
        """A quoted call (`"f(a=1)"`, as in OOD-Toolset's answer lists); None for quoted prose."""
        if self.quoted >= MAX_QUOTING:
            return None
        try:
            content, end = self.string(pos)
        except CallSyntaxError:
            return None
        inner = content.strip()
        name = NAME.match(inner)
        if not inner.startswith("{") and (name is None or not inner.startswith("(", name.end())):
            return None
        calls = _Reader(inner, self.quoted + 1).lines()
        return (calls, end) if calls else None

    def call(self, pos: int) -> tuple[list[RawCall], int]:
        """`name(key=value, ...)` at `pos`, or `name({...})`."""
        text = self.text
        name_match = NAME.match(text, pos)
        name, pos = name_match.group(), name_match.end() + 1
        arguments: dict[str, Any] = {}
        while True:
            pos = SPACE.match(text, pos).end()
            if pos >= len(text):
                raise CallSyntaxError(f"the call {name}(...) is not closed: a ')' is missing")
            if text[pos] == ")":
                return [(name, arguments)], pos + 1
            if not arguments and text[pos] == "{":  # name({"key": value}): the arguments as one object
                value, pos = self._argument(name, None, pos)
                arguments = value
            else:
                key = NAME.match(text, pos)
                after = SPACE.match(text, key.end()).end() if key else pos
                if key is None or not text.startswith("=", after) or text.startswith("==", after):
                    raise CallSyntaxError(f"pass the arguments of {name} by name: {name}(key=value, ...)")
                if key.group() in arguments:
                    raise CallSyntaxError(f"{name}(...) gives the argument {key.group()!r} twice")
                arguments[key.group()], pos = self._argument(name, key.group(), after + 1)
            pos = SPACE.match(text, pos).end()
            if text.startswith(",", pos):
                pos += 1
            elif not text.startswith(")", pos):
                if pos >= len(text):
                    raise CallSyntaxError(f"the call {name}(...) is not closed: a ')' is missing")
                raise CallSyntaxError(
                    f"in {name}(...), separate the arguments with commas (got {_shown(text, pos)})"
                )

    def _argument(self, name: str, key: str | None, pos: int) -> tuple[Any, int]:
        try:
            value, end = self.value(pos, 1)
        except CallSyntaxError as error:
            what = f"the value of {key!r}" if key else "the arguments object"
            raise CallSyntaxError(f"{what} in {name}(...) must be a literal ({error})") from None
        if key is None and not isinstance(value, dict):
            raise CallSyntaxError(f"pass the arguments of {name} by name: {name}(key=value, ...)")
        return value, end

    # ---- values -------------------------------------------------------------------------------
    def value(self, pos: int, depth: int) -> tuple[Any, int]:
        if depth > MAX_NESTING:
            raise CallSyntaxError(f"nested more than {MAX_NESTING} levels deep")
        text = self.text
        pos = SPACE.match(text, pos).end()
        if pos >= len(text):
            raise CallSyntaxError("the text ends where a value should be")
        char = text[pos]
        if char in "'\"":
            return self.string(pos)
        if char in "[(":
            return self.sequence(pos, depth)
        if char == "{":
            return self.mapping(pos, depth)
        number = NUMBER.match(text, pos)
        if number is not None:
            return _number(number.group()), number.end()
        word = NAME.match(text, pos)
        if word is not None:
            if word.group() in LITERALS:
                return LITERALS[word.group()], word.end()
            raise CallSyntaxError(f"{word.group()[:40]} is a bare word: write text in quotes")
        raise CallSyntaxError(f"unexpected {_shown(text, pos)}")

    def sequence(self, pos: int, depth: int) -> tuple[list[Any], int]:
        text, close, items = self.text, "]" if self.text[pos] == "[" else ")", []
        pos += 1
        while True:
            pos = SPACE.match(text, pos).end()
            if text.startswith(close, pos):
                return items, pos + 1
            item, pos = self.value(pos, depth + 1)
            items.append(item)
            pos = SPACE.match(text, pos).end()
            if text.startswith(",", pos):
                pos += 1
            elif not text.startswith(close, pos):
                raise CallSyntaxError(f"a list is missing a ',' or '{close}' before {_shown(text, pos)}")

    def mapping(self, pos: int, depth: int) -> tuple[dict[str, Any], int]:
        text, result = self.text, {}
        pos += 1
        while True:
            pos = SPACE.match(text, pos).end()
            if text.startswith("}", pos):
                return result, pos + 1
            if pos >= len(text):
                raise CallSyntaxError("the text ends inside an object")
            if text[pos] not in "'\"":
                raise CallSyntaxError("the keys of an object must be strings in quotes")
            key, pos = self.string(pos)
            pos = SPACE.match(text, pos).end()
            if not text.startswith(":", pos):
                raise CallSyntaxError(f"a ':' must follow the key {key[:40]!r}")
            result[key], pos = self.value(pos + 1, depth + 1)
            pos = SPACE.match(text, pos).end()
            if text.startswith(",", pos):
                pos += 1
            elif not text.startswith("}", pos):
                raise CallSyntaxError(f"an object is missing a ',' or '}}' before {_shown(text, pos)}")

    def string(self, pos: int) -> tuple[str, int]:
        """The string whose opening quote is at `pos`, unescaped, and the position after it."""
        text, quote = self.text, self.text[pos]
        stop, parts, pos = STRING_STOP[quote], [], pos + 1
        while True:
            found = stop.search(text, pos)
            if found is None or found.group() == "\n":
                raise CallSyntaxError("a string is not closed on its line")
            at = found.start()
            parts.append(text[pos:at])
            if found.group() == quote:
                after = INLINE_SPACE.match(text, at + 1).end()
                if after >= len(text) or text[after] in CLOSERS:
                    return "".join(parts), at + 1
                parts.append(quote)  # a quote inside the text: `'it's'`
                pos = at + 1
                continue
            escaped, pos = _escape(text, at)
            parts.append(escaped)


def _escape(text: str, at: int) -> tuple[str, int]:
    """The character a backslash escape at `at` writes, and the position after the escape."""
    code = text[at + 1 : at + 2]
    if code in ESCAPES:
        return ESCAPES[code], at + 2
    if code == "u":
        digits = text[at + 2 : at + 6]
        if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise CallSyntaxError("a \\u escape needs four hex digits")
        point = int(digits, 16)
        if 0xD800 <= point < 0xDC00 and text[at + 6 : at + 8] == "\\u":  # a surrogate pair
            low = text[at + 8 : at + 12]
            if len(low) == 4 and all(c in "0123456789abcdefABCDEF" for c in low):
                low_point = int(low, 16)
                if 0xDC00 <= low_point < 0xE000:
                    return chr(0x10000 + ((point - 0xD800) << 10) + (low_point - 0xDC00)), at + 12
        if 0xD800 <= point < 0xE000:
            raise CallSyntaxError("a \\u escape names half a surrogate pair")
        return chr(point), at + 6
    if code == "":
        raise CallSyntaxError("a string is not closed on its line")
    return "\\" + code, at + 2  # an unknown escape keeps its backslash, as Python does


def _number(token: str) -> int | float:
    if any(c in token for c in ".eE"):
        value = float(token)
        if not math.isfinite(value):
            raise CallSyntaxError(f"{token[:20]} is out of a number's range")
        return value
    if len(token.lstrip("+-")) > MAX_DIGITS:
        raise CallSyntaxError(f"an integer of more than {MAX_DIGITS} digits")
    return int(token)


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end == -1 else end


def _shown(text: str, pos: int) -> str:
    return repr(text[pos : pos + 20]) if pos < len(text) else "the end of the text"


__all__ = [
    "MAX_CALLS",
    "CallSyntaxError",
    "RawCall",
    "call_object",
    "read_calls",
    "read_value",
    "read_value_at",
    "strip_fences",
]
