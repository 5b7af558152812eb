"""Math expressions in a closed grammar: read them, evaluate them, say whether two are equal.

Answers are client text, so nothing here hands text to `eval`, `exec` or sympy's parser:
a hand-written scanner turns the text into tokens and a recursive-descent parser builds a
tree of a fixed set of node kinds, evaluated with bounded arithmetic. The grammar, in
plain and LaTeX spelling:

- numbers (ASCII digits, a decimal point; at most `MAX_DIGITS` digits), `pi`/`\\pi`,
  one-letter variables (`x`, `y`...; a run of letters is their product, as `xy`), Greek
  letters as variables (`\\theta`);
- `+ - * / ^` (also `**`, `\\cdot`, `\\times`, `\\div`, `×`, `·`, `÷`, `−`), a postfix `%`
  (a hundredth), implicit multiplication (`2x`, `3\\sqrt{2}`, `(x+1)(x-1)`), parentheses,
  brackets and braces as grouping;
- `\\frac{a}{b}` (also `\\frac12`), `\\sqrt{x}`, `\\sqrt[n]{x}`, `sqrt(x)`, and `sin cos
  tan ln log exp` (with or without a backslash).

Values are exact fractions while the arithmetic stays rational and small (at most
`MAX_BITS` bits, integer exponents up to `MAX_EXPONENT`), else floats; anything larger,
undefined or overflowing is an `ExpressionError`. `equivalent(a, b)` compares two
expressions: numbers exactly (fractions) or within a relative 1e-9 (floats); with
variables, at a few fixed rational points (a polynomial identity holds exactly); `compare(a, b)`
says the same, or None when a text is outside the grammar (`OutsideGrammar`). Input is
capped at `MAX_LENGTH` characters and `MAX_DEPTH` levels of nesting, so one check is a
few milliseconds at worst, in any thread.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction

MAX_LENGTH = 400  # characters of one expression
MAX_DEPTH = 40  # nesting of parentheses, commands and operators
MAX_DIGITS = 60  # digits of one number
MAX_BITS = 2048  # size of an exact numerator or denominator; larger values become floats
MAX_EXPONENT = 4096  # largest integer exponent computed exactly
RELATIVE_TOLERANCE = 1e-9

Value = Fraction | float
Node = tuple

DIGITS = frozenset("0123456789")
LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
FUNCTIONS = frozenset({"sin", "cos", "tan", "ln", "log", "exp"})
GREEK = frozenset(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi "
    "rho sigma tau upsilon phi varphi chi psi omega".split()
)
OPERATOR_COMMANDS = {"cdot": "*", "times": "*", "div": "/"}
SYMBOLS = {"×": "*", "·": "*", "÷": "/", "−": "-", "–": "-"}
SINGLE = frozenset("+-*/^()[]{}%")
OPENING = {"(": ")", "[": "]", "{": "}"}
# Fixed points for expressions with variables: rationals, so polynomial identities compare exactly.
POINTS = (
    Fraction(13, 7),
    Fraction(29, 11),
    Fraction(3, 2),
    Fraction(17, 5),
    Fraction(5, 13),
    Fraction(41, 19),
)


class ExpressionError(ValueError):
    """Text outside the grammar, or a value that is undefined or too large to compute."""


class OutsideGrammar(ExpressionError):
    """Text this grammar does not read (a character, command or construction it lacks), as
    opposed to text it reads and refuses (too long, too deep, too large)."""


class ExpressionTimeout(ExpressionError):
    """An evaluation that ran past its deadline."""


# ---- tokens -----------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    """The tokens of `text`: numbers, names (`x`, `sqrt`, `\\frac`), and one-character operators."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters")
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in " \t\n\r":
            i += 1
        elif char in DIGITS or (char == "." and i + 1 < n and text[i + 1] in DIGITS):
            start = i
            while i < n and text[i] in DIGITS:
                i += 1
            if i < n and text[i] == ".":
                i += 1
                while i < n and text[i] in DIGITS:
                    i += 1
            if i - start > MAX_DIGITS + 1:
                raise ExpressionError(f"a number longer than {MAX_DIGITS} digits")
            tokens.append(text[start:i])
        elif char in LETTERS:
            start = i
            while i < n and text[i] in LETTERS:
                i += 1
            tokens.append(text[start:i])
        elif char == "\\":
            start = i = i + 1
            while i < n and text[i] in LETTERS:
                i += 1
            name = text[start:i]
            if name in OPERATOR_COMMANDS:
                tokens.append(OPERATOR_COMMANDS[name])
            elif name:
                tokens.append("\\" + name)
            else:
                raise OutsideGrammar("a backslash without a command")
        elif char == "*" and text.startswith("**", i):
            tokens.append("^")
            i += 2
        elif char in SINGLE:
            tokens.append(char)
            i += 1
        elif char in SYMBOLS:
            tokens.append(SYMBOLS[char])
            i += 1
        else:
            raise OutsideGrammar(f"the character {char!r} is not part of the grammar")
    return tokens


# ---- parsing ----------------------------------------------------------------------------
class _Parser:
    """Recursive descent over the tokens; every method returns a node tuple."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        if self.i >= len(self.tokens):
            raise OutsideGrammar("the expression ends too early")
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, token: str) -> None:
        if self.take() != token:
            raise OutsideGrammar(f"expected {token!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"nested more than {MAX_DEPTH} levels deep")

    def parse(self) -> Node:
        node = self.sum()
        if self.i != len(self.tokens):
            raise OutsideGrammar(f"unexpected {self.tokens[self.i]!r}")
        return node

    def sum(self) -> Node:
        self.enter()
        terms = [(1, self.product())]
        while self.peek() in ("+", "-"):
            sign = 1 if self.take() == "+" else -1
            terms.append((sign, self.product()))
        self.depth -= 1
        return terms[0][1] if len(terms) == 1 else ("sum", tuple(terms))

    def product(self) -> Node:
        factors = [("*", self.unary())]
        while True:
            token = self.peek()
            if token in ("*", "/"):
                self.take()
                factors.append((token, self.unary()))
            elif token is not None and _starts_atom(token):
                factors.append(("*", self.power()))  # implicit: 2x, 3\sqrt{2}, (x+1)(x-1)
            else:
                return factors[0][1] if len(factors) == 1 else ("prod", tuple(factors))

    def unary(self) -> Node:
        if self.peek() in ("+", "-"):
            self.enter()
            sign = self.take()
            operand = self.unary()
            self.depth -= 1
            return ("neg", operand) if sign == "-" else operand
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        if self.peek() != "^":
            return base
        self.take()
        self.enter()
        exponent = self.unary()  # right-associative: 2^3^2 = 2^9
        self.depth -= 1
        return ("pow", base, exponent)

    def postfix(self) -> Node:
        node = self.atom()
        while self.peek() == "%":
            self.take()
            node = ("prod", (("*", node), ("/", ("num", Fraction(100)))))
        return node

    def atom(self) -> Node:
        token = self.take()
        if token[0] in DIGITS or token[0] == ".":
            return ("num", Fraction(token))
        if token in OPENING:
            self.enter()
            node = self.sum()
            self.expect(OPENING[token])
            self.depth -= 1
            return node
        if token[0] == "\\":
            return self.command(token[1:])
        if token[0] in LETTERS:
            return self.word(token)
        raise OutsideGrammar(f"unexpected {token!r}")

    def command(self, name: str) -> Node:
        if name == "frac":
            self.enter()
            node = ("prod", (("*", self.argument()), ("/", self.argument())))
            self.depth -= 1
            return node
        if name == "sqrt":
            self.enter()
            index = None
            if self.peek() == "[":
                self.take()
                index = self.sum()
                self.expect("]")
            radicand = self.argument()
            self.depth -= 1
            return ("sqrt", radicand) if index is None else ("root", index, radicand)
        if name == "pi":
            return ("pi",)
        if name in FUNCTIONS:
            return self.function(name)
        if name in GREEK:
            return ("var", name)
        raise OutsideGrammar(f"the command \\{name} is not part of the grammar")

    def word(self, word: str) -> Node:
        if word == "pi":
            return ("pi",)
        if word == "sqrt":
            self.enter()
            node = ("sqrt", self.argument())
            self.depth -= 1
            return node
        if word in FUNCTIONS:
            return self.function(word)
        if len(word) > 8:
            raise OutsideGrammar("a word is not an expression")
        if len(word) == 1:
            return ("var", word)
        return ("prod", tuple(("*", ("var", letter)) for letter in word))  # xy is x times y

    def function(self, name: str) -> Node:
        self.enter()
        if self.peek() == "^":  # \sin^2 x
            self.take()
            exponent = self.unary()
            node = ("pow", ("fn", name, self.power()), exponent)
        else:
            node = ("fn", name, self.power())
        self.depth -= 1
        return node

    def argument(self) -> Node:
        """A LaTeX argument: a `{...}` group, or one character (`\\frac12` is 1/2)."""
        token = self.peek()
        if token is None:
            raise OutsideGrammar("a command lacks its argument")
        if token == "{":
            return self.atom()
        if token[0] in DIGITS and len(token) > 1:
            self.tokens[self.i] = token[1:]
            return ("num", Fraction(token[0]))
        if token[0] in LETTERS and len(token) > 1 and token not in FUNCTIONS and token != "pi":
            self.tokens[self.i] = token[1:]
            return ("var", token[0])
        return self.atom()


def _starts_atom(token: str) -> bool:
    return token[0] in DIGITS or token[0] in LETTERS or token[0] in "\\.([{"


def parse(text: str) -> Node:
    """The tree of an expression; `ExpressionError` if it is not in the grammar."""
    tokens = tokenize(text)
    if not tokens:
        raise OutsideGrammar("the expression is empty")
    return _Parser(tokens).parse()


def variables(node: Node) -> set[str]:
    """The variable names an expression tree uses."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if item[0] == "var":
            found.add(item[1])
        else:
            stack.extend(_children(item))
    return found


def _children(node: Node) -> list[Node]:
    if node[0] in ("sum", "prod"):
        return [child for _, child in node[1]]
    return [child for child in node[1:] if isinstance(child, tuple)]


# ---- evaluation -------------------------------------------------------------------------
def evaluate(node: Node, values: dict[str, Fraction] | None = None, deadline: float | None = None) -> Value:
    """The value of an expression tree (variables from `values`); `ExpressionError` when it is
    undefined, not real, or too large."""
    try:
        return _value(node, values or {}, deadline)
    except (ArithmeticError, ValueError) as error:  # overflow, division by zero, domain errors
        if isinstance(error, ExpressionError):
            raise
        raise ExpressionError(f"cannot evaluate: {error}") from None


def _value(node: Node, values: dict[str, Fraction], deadline: float | None) -> Value:
    if deadline is not None and time.monotonic() > deadline:
        raise ExpressionTimeout("out of time")
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "var":
        if node[1] not in values:
            raise ExpressionError(f"no value for {node[1]}")
        return values[node[1]]
    if kind == "pi":
        return math.pi
    if kind == "neg":
        return -_value(node[1], values, deadline)
    if kind == "sum":
        total: Value = Fraction(0)
        for sign, term in node[1]:
            value = _value(term, values, deadline)
            total = _bounded(total + value if sign > 0 else total - value)
        return total
    if kind == "prod":
        product: Value = Fraction(1)
        for op, factor in node[1]:
            value = _value(factor, values, deadline)
            product = _bounded(product * value if op == "*" else product / value)
        return product
    if kind == "pow":
        return _power(_value(node[1], values, deadline), _value(node[2], values, deadline))
    if kind == "sqrt":
        return _root(_value(node[1], values, deadline), Fraction(2))
    if kind == "root":
        return _root(_value(node[2], values, deadline), _value(node[1], values, deadline))
    if kind == "fn":
        return _function(node[1], _value(node[2], values, deadline))
    raise ExpressionError(f"unknown node {kind!r}")


def _bounded(value: Value) -> Value:
    """An exact value, as a float once its numerator or denominator outgrows `MAX_BITS`."""
    if isinstance(value, Fraction):
        if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
            return _finite(float(value))
        return value
    return _finite(value)


def _finite(value: float) -> float:
    if math.isnan(value) or math.isinf(value):
        raise ExpressionError("the value is not a finite number")
    return value


def _power(base: Value, exponent: Value) -> Value:
    if isinstance(exponent, Fraction) and exponent.denominator == 1:
        n = exponent.numerator
        if isinstance(base, Fraction):
            if base == 0 and n < 0:
                raise ExpressionError("zero to a negative power")
            size = max(base.numerator.bit_length(), base.denominator.bit_length())
            if base in (0, 1, -1) or (abs(n) <= MAX_EXPONENT and size * abs(n) <= MAX_BITS):
                return base**n
        if abs(n) > MAX_EXPONENT:
            raise ExpressionError(f"an exponent over {MAX_EXPONENT}")
        return _finite(math.pow(float(base), n))
    if isinstance(exponent, Fraction) and isinstance(base, Fraction) and base > 0:
        exact = _exact_root(base, exponent.denominator)  # 8^(2/3) = 4 exactly
        if exact is not None:
            return _power(exact, Fraction(exponent.numerator))
    if base < 0:
        raise ExpressionError("a negative number to a fractional power")
    return _finite(math.pow(float(base), float(exponent)))


def _root(radicand: Value, index: Value) -> Value:
    if not (isinstance(index, Fraction) and index.denominator == 1 and 2 <= index <= MAX_EXPONENT):
        raise ExpressionError("a root's index must be a whole number from 2")
    n = int(index)
    if isinstance(radicand, Fraction):
        if radicand < 0 and n % 2 == 1:
            return -_root(-radicand, index)
        if radicand >= 0:
            exact = _exact_root(radicand, n)
            if exact is not None:
                return exact
    if radicand < 0:
        raise ExpressionError("an even root of a negative number")
    return _finite(float(radicand) ** (1.0 / n))


def _exact_root(value: Fraction, n: int) -> Fraction | None:
    """The exact n-th root of a non-negative fraction, or None when it is irrational."""
    if n == 1:
        return value
    if n > MAX_EXPONENT:
        return None
    parts = []
    for part in (value.numerator, value.denominator):
        guess = round(part ** (1.0 / n)) if part.bit_length() < 1000 else None
        if guess is None or guess**n != part:
            return None
        parts.append(guess)
    return Fraction(parts[0], parts[1])


def _function(name: str, argument: Value) -> float:
    x = float(argument)
    if name in ("ln", "log"):
        if x <= 0:
            raise ExpressionError("the logarithm of a non-positive number")
        return math.log(x)
    if name == "exp":
        return _finite(math.exp(x))
    return _finite({"sin": math.sin, "cos": math.cos, "tan": math.tan}[name](x))


# ---- comparison -------------------------------------------------------------------------
def values_equal(a: Value, b: Value) -> bool:
    """Exact fractions compare exactly; otherwise within a relative 1e-9."""
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a == b
    x, y = float(a), float(b)
    return abs(x - y) <= RELATIVE_TOLERANCE * max(1.0, abs(x), abs(y))


def equivalent(a: str, b: str, timeout: float | None = None) -> bool:
    """Whether two expressions have the same value (at every fixed point, with variables).

    False when either is outside the grammar, undefined or too large, or when the check
    runs past `timeout` seconds (checked as it goes, so safe in any thread).
    """
    return compare(a, b, timeout) is True


def compare(a: str, b: str, timeout: float | None = None) -> bool | None:
    """`equivalent`, but None when either text is outside the grammar (`OutsideGrammar`: another
    reader may know it) or the check ran past `timeout`; False when both are in the grammar and
    differ, or when one is a constant that is undefined or too large to compute (`2^{10^{100}}`,
    `\\frac{1}{0}`: no other reader should be asked)."""
    deadline = time.monotonic() + timeout if timeout is not None else None
    trees = []
    for text in (a, b):
        try:
            trees.append(parse(text))
        except OutsideGrammar:
            trees.append(None)
        except ExpressionError:  # too long, too deep, too many digits: refused, not unknown
            return False
    if None in trees:  # unknown, unless the side read is a constant too large or undefined
        for tree in trees:
            if tree is not None and not variables(tree):
                try:
                    evaluate(tree, deadline=deadline)
                except ExpressionTimeout:
                    return None
                except ExpressionError:
                    return False
        return None
    tree_a, tree_b = trees
    try:
        names = sorted(variables(tree_a) | variables(tree_b))
        if not names:
            return values_equal(evaluate(tree_a, deadline=deadline), evaluate(tree_b, deadline=deadline))
        compared = 0
        for k in range(len(POINTS)):
            point = {name: POINTS[(k + j) % len(POINTS)] for j, name in enumerate(names)}
            results = []
            for tree in (tree_a, tree_b):
                try:
                    results.append(evaluate(tree, point, deadline))
                except ExpressionTimeout:
                    return None
                except ExpressionError:
                    results.append(None)
            if results[0] is None and results[1] is None:
                continue
            if results[0] is None or results[1] is None or not values_equal(*results):
                return False
            compared += 1
        return compared >= 2
    except ExpressionTimeout:
        return None
    except (ArithmeticError, ValueError):  # ExpressionError, or a float conversion overflowing
        return False
