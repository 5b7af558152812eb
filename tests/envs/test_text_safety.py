"""Client text is data: no path evaluates it, and every parser reads it in bounded time.

An adversarial corpus (code, dunder access, format-string tricks, huge exponents, deep
nesting, giant numbers, unicode digits, NUL bytes) goes through every path that reads
text as math or as a value: answer extraction and equivalence, the critic's arithmetic
and critique parsing, tool-call arguments (the env's and Self-Demos'), the plotting-code
guard. A Python audit hook records any `eval`/`exec` of a string and any process start
while the corpus runs. A canary runs the original remote-code-execution request against a
real `evol serve` server. A regex corpus of pathological texts, each of an env's maximum
action length, goes through every env's step and parsing functions, each call timed.
"""

from __future__ import annotations

import json
import sys
import time
from fractions import Fraction

import gymnasium as gym
import pytest
import requests

import envs
from agents.base import parse_action as parse_agent_action
from agents.self_demos import parse_demonstration, read_selection
from envs.charts.code_guard import UnsafeCodeError, check_plotting_code
from envs.charts.env import extract_answer as chart_answer
from envs.charts.env import normalize_label
from envs.charts.env import parse_number as chart_number
from envs.charts.plotting import plotting_code
from envs.charts.render import RenderError, run_plotting_code
from envs.charts.synth import make_chart
from envs.math import verify as math_verify_process
from envs.math.answers import answers_match, extract_answer, normalize_answer, parse_number
from envs.math.arithmetic import computations, evaluate
from envs.math.critics import OracleCritic
from envs.math.critique import CritiqueFormatError, parse_critique, solution_steps
from envs.math.expressions import ExpressionError, equivalent, parse, variables
from envs.math.generator import generate_problem
from envs.sciworld.env import DECORATION as SCIWORLD_DECORATION
from envs.textworld.env import QUOTED as TEXTWORLD_QUOTED
from envs.textworld.env import TextWorldEnv
from envs.tools.calls import parse_action as parse_tool_action
from envs.webshop.env import ACTION as WEBSHOP_ACTION
from envs.webshop.search import tokenize

LIMIT_S = 1.0  # the most one call may take on any input (the worst seen after the fixes: ~10 ms)

# ---- the audit hook: eval/exec of strings and process starts, while recording -------------
_EVENTS: list[tuple[str, str]] = []
_RECORDING: list[bool] = []
_WATCHED = {"exec", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen", "os.fork"}


def _audit(event: str, args: tuple) -> None:
    if not _RECORDING or event not in _WATCHED:
        return
    if event == "exec":  # module imports execute code from real files; text eval compiles "<string>"
        filename = getattr(args[0], "co_filename", "") if args else ""
        if not filename.startswith("<"):
            return
    _EVENTS.append((event, repr(args)[:200]))


sys.addaudithook(_audit)


class no_evaluation:
    """A block in which no string may be evaluated and no process started."""

    def __enter__(self) -> None:
        _EVENTS.clear()
        _RECORDING.append(True)

    def __exit__(self, *exc: object) -> None:
        _RECORDING.clear()
        assert not _EVENTS, f"text was evaluated or a process started: {_EVENTS[:3]}"


def timed(function, *args):
    """`function(*args)` and assert it took under `LIMIT_S` of this thread's CPU time (what
    catastrophic backtracking costs; a loaded machine stretches wall time, not that) and
    under 5 x `LIMIT_S` of wall time (a hang, or work handed to another process)."""
    started, wall = time.thread_time(), time.perf_counter()
    result = function(*args)
    cpu, elapsed = time.thread_time() - started, time.perf_counter() - wall
    name = getattr(function, "__name__", function)
    assert cpu < LIMIT_S, f"{name} took {cpu:.2f}s of CPU on {args!r:.80}"
    assert elapsed < 5 * LIMIT_S, f"{name} took {elapsed:.2f}s on {args!r:.80}"
    return result


# ---- the adversarial corpus -----------------------------------------------------------------
CODE_LIKE = [
    "__import__('os').system('id')",
    "__import__('os').popen('id').read()",
    "().__class__.__bases__[0].__subclasses__()",
    "x.__class__.__mro__[1].__subclasses__()",
    "[].__class__.__base__",
    "(1).__class__",
    "lambda: 1",
    "(lambda x: x)(1)",
    "'{0.__class__}'.format(1)",
    "'{0.__init__.__globals__}'.format(x)",
    "f'{().__class__}'",
    "getattr(1, 'real')",
    "eval('1+1')",
    "exec('x=1')",
    "compile('1', '', 'eval')",
    "globals()",
    "vars()",
    "open('/etc/passwd').read()",
    "Symbol('x')",
    "Integer(2)**Integer(3)",
]
NUMERIC = [
    "9**9**9**9",
    "9^9^9^9",
    "10^10^10",
    "10^{9^{9^{9}}}",
    "2^{10^{100}}",
    "2^(-10^10)",
    "(" * 500 + "1" + ")" * 500,
    "{" * 300 + "1" + "}" * 300,
    "\\frac{" * 200 + "1" + "}{2}" * 200,
    "\\sqrt{" * 300 + "2" + "}" * 300,
    "-" * 2000 + "1",
    "9" * 5000,
    "1" * 4400 + "/3",
    "0." + "3" * 4400,
    "1e999999",
    "١٢٣",  # Arabic-Indic digits
    "３",  # a fullwidth digit
    "𝟗",  # a mathematical bold digit
    "1\x002",
    "\x00",
    "\\frac{1}{0}",
    "\\sqrt{-1}",
    "0^{-1}",
    "\\input{/etc/passwd}",
    "\\def\\x{1}",
    "x" * 5000,
]
ADVERSARIAL = CODE_LIKE + NUMERIC
GOLDS = ["1", "0", "x^2+1", "\\sqrt{2}", "3/4", "\\binom{4}{2}"]
# LaTeX the closed grammar does not read, so math-verify's child process reads it.
LATEX_CODE_LIKE = [
    "\\operatorname{eval}(1)",
    "\\mathrm{exec}(x) + \\binom{2}{1}",
    "\\binom{\\text{__import__}}{1}",
    "\\begin{pmatrix} \\text{open} \\\\ 1 \\end{pmatrix}",
    "\\lfloor 10^{100} \\rfloor",
    "\\{1, 2, \\ldots\\}",
]


@pytest.fixture(scope="module", autouse=True)
def math_verifier_started():
    """math-verify's process started once, before any timed or audited math check: its start is a
    process start, and it takes longer than one check may (later checkers are forked by it)."""
    assert math_verify_process.warm_up()


@pytest.mark.parametrize("text", ADVERSARIAL + LATEX_CODE_LIKE)
def test_math_answers_are_never_evaluated_and_checked_in_bounded_time(text):
    with no_evaluation():
        for gold in GOLDS:
            assert timed(answers_match, text, gold) in (True, False)
        assert timed(answers_match, text, text) is True  # the same text, compared as text
        for solution in (f"The answer is {text}", f"\\boxed{{{text}}}", f"#### {text}", text):
            answer = timed(extract_answer, solution)
            assert answer is None or isinstance(answer, str)
            if answer is not None:
                assert timed(answers_match, answer, "1") in (True, False)
        timed(normalize_answer, text)
        number = timed(parse_number, text)
        assert number is None or isinstance(number.value, Fraction)


@pytest.mark.parametrize("text", [t for t in CODE_LIKE if t != "Integer(2)**Integer(3)"])
def test_code_like_text_is_outside_the_expression_grammar(text):
    with pytest.raises(ExpressionError):
        parse(text)


def test_words_in_an_expression_are_only_variables():
    assert variables(parse("Integer(2)**Integer(3)")) == set("Integer")  # letters, never names looked up


@pytest.mark.parametrize(
    "text",
    [
        "9**9**9**9",
        "10^10^10",
        "10^{9^{9^{9}}}",
        "2^{10^{100}}",
        "(" * 500 + "1" + ")" * 500,
        "-" * 2000 + "1",
    ],
)
def test_huge_and_deep_expressions_are_refused_not_computed(text):
    assert timed(equivalent, text, "1") is False
    assert timed(equivalent, text, text) is False  # not evaluable: never equal by value


def test_the_expression_grammar_still_decides_math_equivalence():
    assert equivalent("x^2+2x+1", "(x+1)^2") and not equivalent("x^2+2x", "(x+1)^2")
    assert equivalent("\\frac{\\sqrt{8}}{2}", "\\sqrt{2}") and equivalent("2\\pi", "\\pi \\cdot 2")
    assert equivalent("2^{64}", "18446744073709551616") and not equivalent("2^{64}", "18446744073709551617")
    assert equivalent("\\sin^2 x + \\cos^2 x", "1") and equivalent("8^{2/3}", "4")
    assert equivalent("50%", "1/2") and not equivalent("\\frac{1}{0}", "1")


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_critic_arithmetic_and_critique_parsing_never_evaluate_text(text):
    problem = generate_problem(0, "test")
    oracle = OracleCritic(problem)
    with no_evaluation():
        value = timed(evaluate, text)
        assert value is None or isinstance(value, Fraction)
        for line in (f"3 * 12 = {text}", f"{text} = 36", f"Step 1: {text} = 5"):
            for computation in timed(computations, line):
                assert isinstance(computation.claimed, Fraction)
        solution = f"{text}\n3 * 12 = 36\nThe answer is {text}."
        timed(solution_steps, solution)
        critique = timed(oracle.critique, problem.question, solution)
        assert critique.answer_correct in (True, False)
        for reply in (
            text,
            f"Step 1: {text}\nVerdict: Wrong\nExplanation: {text}",
            f"Step {text}: x\nVerdict: Wrong",
            f"Final answer: {text}",
        ):
            try:
                timed(parse_critique, reply)
            except CritiqueFormatError:
                pass


def test_critic_arithmetic_nests_and_grows_only_so_far():
    assert evaluate("(" * 15 + "2 * 3" + ")" * 15) == 6
    assert evaluate("(" * 100 + "1" + ")" * 100) is None
    assert evaluate(" + ".join(["1"] * 300)) is None  # past the token limit: not checked
    assert evaluate("1" * 5000 + " * 2") is None


# Python literals that are no JSON value (or nest too deeply), added to the corpus for call arguments.
LITERAL_TRICKS = ADVERSARIAL + ["{[]: 1}", "{1, 2}", "b'x'", "1j", "...", "[" * 300 + "]" * 300]


@pytest.mark.parametrize("text", LITERAL_TRICKS)
def test_tool_call_arguments_are_literals_or_refused(text):
    with no_evaluation():
        for action in (
            f"get_weather(city={text})",
            f"get_weather(city={text!r})",
            f'{{"name": "get_weather", "arguments": {{"city": {text}}}}}',
            f'{{"name": "get_weather", "arguments": {json.dumps(text)}}}',
            f"Action: get_weather\nAction Input: {text}",
        ):
            parsed = timed(parse_tool_action, action)
            assert (parsed.call is None) != (parsed.error is None) or parsed.answer is not None
            if parsed.call is not None:
                json.dumps(parsed.call.arguments, allow_nan=False)  # plain JSON values only


def test_tool_call_with_an_unhashable_key_is_an_invalid_action_not_a_crash():
    env = gym.make("evol/ToolUse-v0").unwrapped
    env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step("get_weather(city={[]: 1})")
    assert info["invalid"] and "literal" in observation and not terminated


@pytest.mark.parametrize("text", LITERAL_TRICKS)
def test_self_demos_reads_only_literal_call_arguments(text):
    with no_evaluation():
        for reply in (
            f"Query: weather?\nFunction calls: get_weather(city={text})",
            f'Query: weather?\nFunction calls: {{"name": "get_weather", "arguments": {{"city": {text}}}}}',
            f'Query: q\n{{"name": {text}, "arguments": {{}}}}',
        ):
            demo = timed(parse_demonstration, reply)
            if demo is not None:
                for call in demo["calls"]:
                    assert isinstance(call["name"], str)
                    json.dumps(call["arguments"], allow_nan=False)
        timed(read_selection, f"Selection: <{text}>, <1>", 3, 2)
    assert read_selection("Selection: <" + "9" * 5000 + ">", 3, 2) == []


# ---- chart code -------------------------------------------------------------------------------
UNSAFE_CODE = [
    "import os",
    "import subprocess as sp",
    "from os import system",
    "import matplotlib.animation as animation",
    "import matplotlib\nmatplotlib.os.system('id')",
    "import matplotlib.pyplot as plt\nplt.sys.modules",
    "import matplotlib.pyplot as plt\nplt.importlib.import_module('os')",
    "import numpy as np\nnp.load('x.npy', allow_pickle=True)",
    "import numpy as np\nnp.lib.npyio",
    "import numpy as np\nm = np\nm.load('x')",
    "import numpy as np\nprint(np)",
    "__import__('os').system('id')",
    "().__class__.__bases__[0].__subclasses__()",
    "x = [].__class__",
    "f'{fig.__class__}'",
    "'{0.__class__}'.format(1)",
    "'{0.__init__.__globals__}'.format_map({})",
    "getattr(1, 'real')",
    "eval('1')",
    "exec('x = 1')",
    "compile('1', '', 'eval')",
    "globals()",
    "vars()",
    "open('/etc/passwd').read()",
    "type(1)",
    "(lambda: 1)()",
    "def f():\n    pass",
    "class A:\n    pass",
    "while True:\n    pass",
    "with open('x') as f:\n    pass",
    "try:\n    pass\nexcept Exception:\n    pass",
    "global x",
    "x = 1\ndel x",
    "x = 9**9**9**9",
    "x = 2 ** n",
    "fig.savefig('/tmp/x.png')",
    "fig.canvas.print_png('/tmp/x.png')",
    "import numpy as np\nnp.array([1]).tofile('/tmp/x')",
    "ax.text(0, 0, 'x', usetex=True)",
    "ax.text(0, 0, 'x').set_usetex(True)",
    "ax.text(0, 0, 'x', **{'usetex': True})",
    "import matplotlib.pyplot as plt\nplt.setp(ax.text(0, 0, 'x'), 'usetex', True)",
    "ax.text(0, 0, 'x').update({'usetex': True})",
    "ax.callbacks.connect('xlim_changed', print)",
    "fig.set_canvas(None)",
    "import matplotlib.pyplot as plt\nplt.rcParams['text.usetex'] = True",
    "import matplotlib.pyplot as plt\nplt.rcParams.update({'animation.ffmpeg_path': '/bin/sh'})",
    "import matplotlib.pyplot as plt\nkey = 'text.usetex'\nplt.rcParams[key] = True",
    "import matplotlib.pyplot as plt\nplt.rcParams.update(dict(a=1))",
    "import matplotlib.pyplot as plt\nplt.switch_backend('webagg')",
    "x = (" * 300 + "1" + ")" * 300,
    "x = 1\x00",
    "x = 1\n" * 30_000,
]


@pytest.mark.parametrize("code", UNSAFE_CODE)
def test_chart_code_guard_refuses_code_outside_the_whitelist(code, tmp_path):
    with pytest.raises(UnsafeCodeError):
        timed(check_plotting_code, code)
    with pytest.raises(RenderError, match="refused"):
        run_plotting_code(code.replace("/tmp/", f"{tmp_path}/"))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("index", range(0, 36, 3))
def test_chart_code_guard_passes_the_generators_own_code(index):
    code = plotting_code(make_chart(index, "test"))
    timed(check_plotting_code, code)


# ---- the canary: the original remote-code-execution request on a real server ----------------
def test_code_in_an_answer_runs_nothing_on_a_real_server(start_server, tmp_path):
    canary = tmp_path / "pwned.txt"
    server = start_server(["evol/MathCritique-v0"])
    payloads = [
        f"The answer is __import__('os').system('id > {canary}')",
        f"\\boxed{{__import__('os').system('id > {canary}')}}",
        f"#### (lambda: __import__('os').system('touch {canary}'))()",
        f"The answer is open('{canary}', 'w').write('x')",
        f"The answer is __import__('subprocess').call(['touch', '{canary}'])",
    ]
    for payload in payloads:
        created = requests.post(f"{server.url}/sessions", json={"env": "evol/MathCritique-v0"}, timeout=30)
        assert created.status_code == 201, created.text
        sid = created.json()["session"]
        reset = requests.post(f"{server.url}/sessions/{sid}/reset", json={"seed": 0}, timeout=30)
        assert reset.status_code == 200, reset.text
        step = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": payload}, timeout=30)
        assert step.status_code == 200, step.text
        assert step.json()["reward"] == 0.0
    time.sleep(0.5)
    assert not canary.exists(), "an answer's text ran code on the server"


# ---- the regex corpus: pathological texts of each env's maximum action length ----------------
UNITS = [
    " ", "\n", "\t", "`", "'", '"', "*", ".", "!", "?", "#", ":", "=", "$", "\\", "{", "[", "(", ")",
    "<", "1", ",", "a", "A", "_", "-", "a ", "1 ", ". ", "1,", "1.", "a1", "1a", "x.", "up",
    "the ", "answer ", "answer is ", "step 1", "Step 1:", "verdict:", "explanation:", "\\boxed",
    "\\boxed{", "\\frac", "\\text{", "search[", "click[", "Action:", "Action Input:",
    "Final Answer:", "get ", "craft ", " using ", "<<", "####", "1,000", "S1", "(A)", "about ",
]  # fmt: skip


def pathological(length: int, prefixes: list[str]):
    """Texts of exactly `length` characters: a prefix, then one unit repeated, then an end
    that makes the match fail late (or gives a final answer, so the whole text is read)."""
    for prefix in prefixes:
        for unit in UNITS:
            body = prefix + unit * ((length - len(prefix)) // len(unit) + 1)
            yield body[:length]
            yield body[: length - 1] + "!"
            yield (prefix + "a" + body[len(prefix) :])[: length - 1] + "\x00"
            yield body[: length - 16] + "\nThe answer is 3"


STEP_CORPUS = {  # env id, kwargs, prefixes
    "evol/RewardJudge-v0": ({}, ["", "Verdict: ", "Scores: 1, ", "("]),
    "evol/MathCritique-v0": ({"critic": "oracle"}, ["", "The answer is ", "Step 1: 3 * 12 = "]),
    "evol/MathCritic-v0": ({}, ["", "Step ", "Step 1: ", "Final answer: 3\nVerdict: "]),
    "evol/ToolUse-v0": ({}, ["", "Action: f\nAction Input: ", "get_weather(city="]),
    "evol/Sycophancy-v0": ({}, ["", "Answer: "]),
    "evol/ChartQA-v0": ({"mode": "table"}, ["", "Answer: "]),
    "evol/WebShop-v0": ({"num_products": 50}, ["search[", "click["]),
    "evol/RedTeam-Attacker-v0": ({}, ["", "How do I "]),
    "evol/RedTeam-Defender-v0": ({}, [""]),
    "evol/BabyAI-v0": ({}, ["", "go to "]),
    "evol/Maze-v0": ({}, ["", "move "]),
    "evol/Wordle-v0": ({}, [""]),
    "evol/TextCraft-v0": ({}, ["get ", "craft 1 a using "]),
    "evol/AdversarialImage-v0": ({"mode": "text"}, ["", "attack pgd eps=", "edit (1,2)="]),
}


@pytest.mark.parametrize("env_id", list(STEP_CORPUS))
def test_every_env_step_reads_pathological_text_in_bounded_time(env_id):
    kwargs, prefixes = STEP_CORPUS[env_id]
    env = gym.make(env_id, **kwargs).unwrapped
    env.reset(seed=0)
    worst = (0.0, "")
    for text in pathological(env.max_action_length, prefixes):
        if env.episode_over:
            env.reset(seed=0)
        started = time.perf_counter()
        env.step(text)
        elapsed = time.perf_counter() - started
        worst = max(worst, (elapsed, text[:40]))
    assert worst[0] < LIMIT_S, f"{env_id}: {worst[0]:.2f}s on {worst[1]!r}..."
    env.close()


def _textworld_command(text: str) -> str | None:
    return TextWorldEnv._refusal(" ".join(TEXTWORLD_QUOTED.fullmatch(text).group(1).split()))


PARSERS = [  # name, function, the longest text it is given, prefixes
    ("math extract_answer", extract_answer, 8192, ["", "The answer is "]),
    ("math normalize+parse_number", lambda t: parse_number(normalize_answer(t)), 8192, ["", "$"]),
    ("math answers_match", lambda t: answers_match(t, "x^2+1"), 8192, ["", "\\frac"]),
    ("critique parse", lambda t: _critique_or_none(t), 8192, ["Step ", "Step 1: ", "Explanation: "]),
    ("critique computations", computations, 8192, ["3 * 12 = ", ""]),
    ("tool calls", parse_tool_action, 4096, ["", "Final Answer: ", "Action: f\nAction Input: "]),
    ("agent action line", parse_agent_action, 8192, ["", "Action: "]),
    ("self-demos", parse_demonstration, 8192, ["Query: ", "Query: q\nFunction calls: "]),
    ("chart answer", lambda t: chart_number(chart_answer(t)), 2048, ["", "Answer: "]),
    ("chart label", lambda t: normalize_label(chart_answer(t)), 2048, ["", "answer is "]),
    ("webshop action", lambda t: (WEBSHOP_ACTION.match(t), tokenize(t)), 512, ["search[", "click["]),
    ("textworld command", _textworld_command, 512, ["", "go "]),
    ("sciworld command", lambda t: SCIWORLD_DECORATION.fullmatch(t).group(1), 512, ["", "look "]),
]


def _critique_or_none(text: str):
    try:
        return parse_critique(text)
    except CritiqueFormatError:
        return None


@pytest.mark.parametrize(("name", "function", "length", "prefixes"), PARSERS, ids=[p[0] for p in PARSERS])
def test_every_parser_reads_pathological_text_in_bounded_time(name, function, length, prefixes):
    for text in pathological(length, prefixes):
        timed(function, text)


def test_the_regex_corpus_covers_every_registered_env():
    covered = set(STEP_CORPUS) | {"evol/TextWorld-v0", "evol/SciWorld-v0"}  # their parsers are above
    assert {env_id for env_id in envs.env_ids() if env_id.startswith("evol/")} <= covered


def test_corpus_texts_have_the_maximum_length():
    texts = list(pathological(512, ["search["]))
    assert texts and all(len(t) == 512 for t in texts)
