"""MATH-style answers: extraction and equivalence on a tricky-case table, and the bounded math-verify path.

Each class of case the table holds was once answered wrongly: a phrase after `\\boxed{}` taking
its place, mixed numbers, matrices that differ only in spacing, base subscripts, unordered
answer lists, `\\pm`, `10{,}000`, intervals, and the wrappers (`\\dfrac`, `\\left(`, units,
degrees, `x =`, percent, `\\$`). The last class is answers only math-verify reads. Then: a
math-verify check answers within the time limit from a rollout thread, on exponent towers,
deep nesting, long LaTeX and division by zero, and the next check still works; its process
refuses `eval` of text; a served MathCritique env judges MATH-style golds in its workers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
import requests

from envs.math import verify
from envs.math.answer_text import normalize_answer
from envs.math.answers import answers_match, extract_answer
from envs.math.equivalence import decide

# ---- extraction ---------------------------------------------------------------------------
EXTRACTION = {
    "boxed, then a comment": [
        ("Therefore $\\boxed{44}$. Checking: 4 * 11 = 44, so our answer is correct.", "44"),
        ("So $x = \\boxed{7}$.\nWe can double check: the answer is indeed right.", "7"),
        ("The total is \\boxed{12}. The answer is consistent with both conditions.", "12"),
        ("The answer is $\\boxed{3/4}$. I verified that the answer is correct.", "3/4"),
        ("\\boxed{5}\n\nThus the final answer is the same as above.", "5"),
        ("Hence \\boxed{\\frac{1}{2}}. So the answer is, clearly, correct!", "\\frac{1}{2}"),
        ("\\boxed{3} was a guess; the answer is 4.", "4"),  # an answer after the box still wins
    ],
    "a comment after the answer in its sentence": [
        ("The answer is 44, which is correct.", "44"),
        ("The answer is 36. Let me verify: yes, the answer is correct.", "36"),
        ("The final answer is 12 because 3 * 4 = 12.", "12"),
        ("Final Answer: The final answer is $44$. I hope it is correct.", "$44$"),
    ],
    "several boxes in one closing line": [
        ("The solutions are $\\boxed{2}$ and $\\boxed{-2}$.", "2, -2"),
        ("So \\boxed{1}, \\boxed{3}, \\boxed{5}", "1, 3, 5"),
        ("First we get \\boxed{4}. Then, after rounding, \\boxed{5}", "5"),
    ],
}
EXTRACTION_CASES = [(name, text, answer) for name, cases in EXTRACTION.items() for text, answer in cases]


@pytest.mark.parametrize(
    ("kind", "text", "answer"), EXTRACTION_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(EXTRACTION_CASES)]
)
def test_answer_extraction_tricky_cases(kind, text, answer):
    assert extract_answer(text) == answer


def test_a_comment_alone_is_no_answer():
    assert extract_answer("3 * 12 = 36. I am sure the answer is correct.", fallback_last_number=False) is None
    assert extract_answer("3 * 12 = 36. I am sure the answer is correct.") == "36"
    assert extract_answer("The answer is Tuesday.") == "Tuesday"  # a word answer is still an answer


# ---- equivalence --------------------------------------------------------------------------
SAME, DIFFERENT = True, False
EQUIVALENCE = {
    "mixed numbers": [
        ("1\\frac{4}{5}", "\\frac{9}{5}", SAME),
        ("1\\frac{4}{5}", "9/5", SAME),
        ("1\\frac{4}{5}", "1.8", SAME),
        ("\\frac{4}{5}", "1\\frac{4}{5}", DIFFERENT),
        ("2\\dfrac{1}{2} \\text{ inches}", "\\frac52", SAME),
        ("-3\\frac{1}{3}", "-\\frac{10}{3}", SAME),
        ("1\\frac45", "9/5", SAME),
        ("3\\frac{1}{2}", "\\frac{3}{2}", DIFFERENT),
        ("2\\frac{\\pi}{3}", "\\frac{2\\pi}{3}", SAME),  # not a mixed number: a product
    ],
    "matrices differing in spacing": [
        ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", SAME),
        (
            "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
            "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
            SAME,
        ),
        (
            "\\begin{pmatrix}\n -1 \\\\\n \\frac12\n\\end{pmatrix}",
            "\\begin{pmatrix} -1 \\\\ 0.5 \\end{pmatrix}",
            SAME,
        ),
        ("\\begin{bmatrix}1\\\\2\\end{bmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", SAME),
        ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}", DIFFERENT),
        ("\\begin{pmatrix} 1 & 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", DIFFERENT),
        (
            "\\begin{pmatrix} 2 \\\\ -3 \\\\ 1 \\end{pmatrix}",
            "\\begin{pmatrix}2\\\\-3\\\\1\\\\\\end{pmatrix}",
            SAME,
        ),
    ],
    "base subscripts": [
        ("4210_5", "4210_{5}", SAME),
        ("4210_{5}", "4210_5", SAME),
        ("4210", "4210_5", SAME),
        ("4210_6", "4210_5", DIFFERENT),
        ("555", "4210_5", DIFFERENT),
        ("10011_2", "10011_{2}", SAME),
        ("\\text{A2}_{16}", "a2_{16}", SAME),
        ("1011_2", "1101_2", DIFFERENT),
    ],
    "unordered answer lists": [
        ("3, 2, 1", "1, 2, 3", SAME),
        ("1,2,3", "1, 2, 3", SAME),
        ("2, -2", "-2,2", SAME),
        ("\\frac12, 3", "3, 0.5", SAME),
        ("x = 1, x = -4", "-4, 1", SAME),
        ("1, 2", "1, 2, 3", DIFFERENT),
        ("1, 1, 2", "1, 2, 2", DIFFERENT),
        ("\\{3, 1\\}", "\\{1, 3\\}", SAME),
        ("(1, 2)", "(2, 1)", DIFFERENT),  # an ordered pair stays ordered
        ("(1, 2), (3, 4)", "(3, 4), (1, 2)", SAME),
        ("(1, 2), (3, 4)", "(2, 1), (3, 4)", DIFFERENT),
        ("x = 2 \\text{ or } x = 3", "3, 2", SAME),
        ("1, 2, and 3", "3, 2, 1", SAME),
        ("-1 \\text{ and } 5", "5, -1, 2", DIFFERENT),
    ],
    "plus-minus": [
        ("\\pm 2", "2, -2", SAME),
        ("2, -2", "\\pm 2", SAME),
        ("1 \\pm \\sqrt{2}", "1+\\sqrt{2}, 1-\\sqrt{2}", SAME),
        ("x = \\pm 3", "-3, 3", SAME),
        ("±\\frac12", "-0.5, 0.5", SAME),
        ("\\pm 2", "2", DIFFERENT),
        ("3 \\pm \\sqrt{5}", "3+\\sqrt{5}, 3+\\sqrt{5}", DIFFERENT),
    ],
    "thousands separators": [
        ("10{,}000", "10000", SAME),
        ("1{,}234{,}567", "1234567", SAME),
        ("10{,}000", "10,000", SAME),
        ("10\\,000", "10000", SAME),
        ("\\$10{,}000", "10000", SAME),
        ("10 000", "10000", SAME),
        ("1,\\!000", "1000", SAME),
        ("\\$32{,}000", "\\$32,\\!000", SAME),
        ("10{,}001", "10000", DIFFERENT),
    ],
    "intervals": [
        ("(-\\infty, 3] \\cup (5, \\infty)", "(-\\infty,3]\\cup(5,\\infty)", SAME),
        ("(5,\\infty)\\cup(-\\infty,3]", "(-\\infty, 3] \\cup (5, \\infty)", SAME),
        ("(-\\infty, 3)", "(-\\infty, 3]", DIFFERENT),
        ("[2, 5)", "[2,5]", DIFFERENT),
        ("\\left[ \\frac{1}{2}, 3 \\right)", "[0.5, 3)", SAME),
        ("(-\\infty, \\infty)", "\\mathbb{R}", SAME),
        ("(-\\infty, -2) \\cup (2, \\infty)", "(-\\infty, -2) \\cup [2, \\infty)", DIFFERENT),
        ("[1, \\infty)", "[1, +\\infty)", SAME),
        ("(-\\infty, 0)", "(0, \\infty)", DIFFERENT),
        ("(1, \\infty)", "(1, 2)", DIFFERENT),
    ],
    "wrappers, units, degrees, assignments, percent, dollars": [
        ("\\tfrac{3}{4}", "0.75", SAME),
        ("\\dfrac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}", SAME),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\frac{\\pi}{2})", SAME),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(\\frac{\\pi}{2}, 3)", DIFFERENT),
        ("5\\text{ cm}", "5", SAME),
        ("12\\text{ cm}^2", "12", SAME),
        ("6\\text{ cm}", "5", DIFFERENT),
        ("30^\\circ", "30", SAME),
        ("30^{\\circ}", "30", SAME),
        ("30°", "30", SAME),
        ("60^\\circ", "30", DIFFERENT),
        ("x = 5", "5", SAME),
        ("k=-2", "-2", SAME),
        ("y = 2x + 3", "2x+3", SAME),
        ("x = 4", "5", DIFFERENT),
        ("25\\%", "25", SAME),
        ("25\\%", "0.25", SAME),
        ("25%", "26", DIFFERENT),
        ("\\$1.50", "1.5", SAME),
        ("\\$18.90", "18.9", SAME),
        ("\\$5", "6", DIFFERENT),
        ("\\text{Monday}", "Monday", SAME),
        ("Monday", "Dynamo", DIFFERENT),  # letters are not a product of variables here
        ("\\emptyset", "\\varnothing", SAME),
    ],
    "read only by math-verify": [
        ("\\binom{5}{2}", "10", SAME),
        ("\\binom{5}{2}", "11", DIFFERENT),
        ("\\log_2 8", "3", SAME),
        ("\\frac{5!}{2}", "60", SAME),
        ("\\left| -3 \\right|", "3", SAME),
        ("\\lfloor 3.7 \\rfloor", "3", SAME),
        ("\\lfloor 3.7 \\rfloor", "4", DIFFERENT),
        ("\\frac{6!}{4!}", "30", SAME),
        ("\\left| -7 \\right| + 1", "8", SAME),
    ],
}
EQUIVALENCE_CASES = [(name, *case) for name, cases in EQUIVALENCE.items() for case in cases]


@pytest.mark.parametrize(
    ("kind", "predicted", "gold", "same"),
    EQUIVALENCE_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(EQUIVALENCE_CASES)],
)
def test_answer_equivalence_tricky_cases(kind, predicted, gold, same):
    assert answers_match(predicted, gold) is same
    assert answers_match(gold, predicted) is same  # symmetric


def test_the_project_rules_decide_without_math_verify_except_where_they_cannot_read():
    deadline = time.monotonic() + 5
    for kind, predicted, gold, same in EQUIVALENCE_CASES:
        verdict = decide(normalize_answer(predicted), normalize_answer(gold), deadline)
        if kind == "read only by math-verify":
            assert verdict is None, (predicted, gold)
        else:
            assert verdict is same, (kind, predicted, gold)


def test_extracted_answers_are_judged_end_to_end():
    solution = "We find $t^2 = 4$, so $t = \\pm 2$.\nTherefore $\\boxed{\\pm 2}$. Both roots check, so our answer is correct."
    assert answers_match(extract_answer(solution), "-2, 2")
    assert not answers_match(extract_answer(solution), "2")


def test_plain_answers_never_reach_math_verify():
    asked = verify.VERIFIER.asked
    assert answers_match("5!", "120") is False  # plain text outside the grammar: unknown, so not equal
    assert answers_match("x >= 3", "x > 2") is False
    assert answers_match("1, 2, 3", "3, 2, 1") is True  # decided by the project's rules
    assert verify.VERIFIER.asked == asked
    assert answers_match("\\binom{7}{3}", "35") is True and verify.VERIFIER.asked == asked + 1


# ---- the math-verify child process --------------------------------------------------------
ADVERSARIAL_LATEX = {
    "exponent tower": "\\binom{2}{1}^{2^{2^{2^{100}}}}",
    "tower in a matrix": "\\begin{pmatrix} 2^{2^{2^{100}}} \\\\ 1 \\end{pmatrix}",
    "100-deep nesting": "\\binom{1}{1}" + "(" * 100 + "1" + ")" * 100,
    "150-deep braces": "\\lfloor" + "{" * 150 + "x" + "}" * 150 + "\\rfloor",
    "400-character LaTeX": "\\binom{9}{3}+" + "+".join(["\\frac{\\sqrt{x}}{y}"] * 24),
    "division by zero": "\\binom{4}{2}\\frac{1}{0}",
    "huge factorial": "(10^{10})!",
}


def _check_from_a_thread(function, *args):
    """(result, seconds) of `function(*args)` run in a thread that is not the main one."""
    box = {}

    def run():
        started = time.monotonic()
        box["result"] = function(*args)
        box["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, name="rollout-0")
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    return box["result"], box["seconds"]


_PAIRS = iter(range(10, 10_000))


def _fresh_pair() -> tuple[str, str]:
    """A LaTeX pair only math-verify reads, never asked before (so never answered from the cache)."""
    n = next(_PAIRS)
    return f"\\binom{{{n}}}{{2}}", str(n * (n - 1) // 2)


@pytest.fixture(scope="module")
def warm_verifier():
    verify.warm_up()
    yield


@pytest.mark.parametrize("name", list(ADVERSARIAL_LATEX))
def test_adversarial_latex_returns_within_the_time_limit_from_a_thread(name, warm_verifier):
    text = ADVERSARIAL_LATEX[name][:400]
    limit = 1.0
    result, seconds = _check_from_a_thread(answers_match, text, "10", limit)
    assert result is False
    assert seconds < limit + 0.5, f"{name}: {seconds:.2f}s"
    result, seconds = _check_from_a_thread(verify.latex_equivalent, text, "10", limit)
    assert result in (None, False) and seconds < limit + 0.5, f"{name}: {seconds:.2f}s"
    # the next check works, within the same limit (a killed checker is replaced by a fork)
    result, seconds = _check_from_a_thread(answers_match, *_fresh_pair(), limit)
    assert result is True, f"the check after {name} took {seconds:.2f}s"


def test_concurrent_checks_from_threads_all_get_answers(warm_verifier):
    results = {}

    pairs = [_fresh_pair() for _ in range(8)]

    def check(k):
        results[k] = answers_match(*pairs[k], 5.0)

    threads = [threading.Thread(target=check, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {k: True for k in range(8)}


def test_numbers_are_read_in_the_verifier_without_evaluating_text(warm_verifier):
    # latex2sympy2_extended reads number tokens with sympy's sympify (eval): the child reads them itself
    assert verify.latex_equivalent("0.5 \\cdot \\binom{4}{2}", "3", 20.0) is True
    assert verify.latex_equivalent("12 + \\binom{3}{1}", "15", 20.0) is True
    assert verify.latex_equivalent("-2.25 + \\lfloor 0.5 \\rfloor", "-\\frac{9}{4}", 20.0) is True


def test_the_verifier_process_refuses_eval_and_processes():
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import verify_worker as w; w._patch_number_reading();"
        "import sympy; sys.addaudithook(w._refuse_code_from_text); refused = [];\n"
        "for attempt in (lambda: eval('1+1'), lambda: exec('x = 1'), lambda: sympy.sympify('2*x'),"
        " lambda: __import__('os').system('true'), lambda: __import__('subprocess').run(['true'])):\n"
        "    try: attempt()\n"
        "    except RuntimeError: refused.append(1)\n"
        "print(len(refused), w._number('12'), w._number('0.25'))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", script, str(verify.WORKER.parent)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.split() == ["5", "12", "0.250000000000000"], done.stderr[-500:]


# ---- on a real server: MATH-style golds judged in its worker processes ----------------------
SERVED_MATH = [  # gold, a right answer, a wrong one
    ("\\binom{5}{2}", "\\boxed{10}", "\\boxed{11}"),  # math-verify, in a server worker's checker
    ("4210_5", "\\boxed{4210_{5}}", "\\boxed{4210_6}"),
    (
        "(-\\infty, 3] \\cup (5, \\infty)",
        "\\boxed{(5,\\infty)\\cup(-\\infty,3]}",
        "\\boxed{(-\\infty, 3) \\cup (5, \\infty)}",
    ),
    (
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        "\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}",
        "\\boxed{\\begin{pmatrix}2\\\\1\\end{pmatrix}}",
    ),
]


def test_a_served_math_env_judges_math_style_answers_and_survives_a_tower(start_server, tmp_path):
    data = tmp_path / "math.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {"problem": f"Problem {k}.", "solution": f"So $\\boxed{{{gold}}}$.", "level": "Level 1"}
            )
            + "\n"
            for k, (gold, _, _) in enumerate(SERVED_MATH)
        )
    )
    kwargs = {"evol/MathCritique-v0": {"data": str(data), "refine_rounds": 0, "answer_timeout": 1.0}}
    server = start_server(["evol/MathCritique-v0"], "--env-kwargs", json.dumps(kwargs))

    def reward(task: int, action: str) -> tuple[float, float]:
        created = requests.post(f"{server.url}/sessions", json={"env": "evol/MathCritique-v0"}, timeout=30)
        sid = created.json()["session"]
        requests.post(f"{server.url}/sessions/{sid}/reset", json={"options": {"task": task}}, timeout=30)
        started = time.monotonic()
        step = requests.post(f"{server.url}/sessions/{sid}/step", json={"action": action}, timeout=60)
        assert step.status_code == 200, step.text
        return step.json()["reward"], time.monotonic() - started

    for task, (_, right, wrong) in enumerate(SERVED_MATH):
        assert reward(task, f"Therefore {right}. Checking it, our answer is correct.")[0] == 1.0, task
        assert reward(task, f"Therefore {wrong}.")[0] == 0.0, task
    tower, seconds = reward(0, "\\boxed{\\binom{2}{1}^{2^{2^{2^{100}}}}}")
    assert tower == 0.0 and seconds < 5  # the answer timeout (1 s), a worker's first start aside
    assert reward(0, "\\boxed{10}")[0] == 1.0  # the next answer is judged again
