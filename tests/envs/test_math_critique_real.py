"""The math critique side on real-style data: GSM8K-style reference solutions read by the
oracle critic, MathCritique's released critique format, and the critic env on data files.

The tables are written here in the shape of the real data (GSM8K records with calculator
annotations and `#### n`; MATH records with `\\boxed{}`; critiques in the released
`Step sentence:` / `Correctness of the step:` shape); every solution in `RECORDS` is correct.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import pytest
import requests

import envs
from envs.errors import ParamError, TaskOptionError
from envs.math.arithmetic import computations, evaluate
from envs.math.critic_env import MathCriticEnv
from envs.math.critics import ModelCritic, OracleCritic
from envs.math.critique import CritiqueFormatError, parse_critique
from envs.math.number_words import word_numbers
from envs.math.problems import load_problems, problem_from_record
from envs.numbers import format_number

CRITIC = "evol/MathCritic-v0"

# ---- the tables -------------------------------------------------------------------------
# GSM8K records, each correct. They cover what real reference solutions write: decimals
# without a leading zero, unit words inside a computation, chained equals, fractions, mixed
# numbers and percents as results, money, clock times, numbers the question writes in words,
# thousands separators, `x`/`×`/`÷`, running totals and rounded results.
RECORDS = [
    {  # a decimal without its leading zero
        "question": "Each sticker costs 50 cents. Mia buys two stickers. How many dollars does she pay?",
        "answer": "Each sticker costs 50/100 = $<<50/100=.50>>.50\n"
        "So she received .50*2 = $<<.50*2=1.00>>1.00 worth of stickers.\n#### 1",
    },
    {  # unit words inside the computation
        "question": "Jake works 9 hours a day. He spends two thirds of that time on calls. "
        "How many hours does he spend on calls?",
        "answer": "He spends 9 hours * 2/3 = <<9*2/3=6>>6 hours on calls.\n#### 6",
    },
    {  # chained equals
        "question": "Tim had 30 candies. He gave 3 candies to each of his 8 friends. How many candies are left?",
        "answer": "He gave away 8 * 3 = <<8*3=24>>24 candies.\n"
        "He has 30 - 8 * 3 = 30 - 24 = <<30-24=6>>6 candies left.\n#### 6",
    },
    {  # a fraction as the result
        "question": "Lily read 3/5 of a book on Monday. What fraction of the book is left?",
        "answer": "The fraction left is 1 - 3/5 = <<1-3/5=2/5>>2/5 of the book.\n#### 2/5",
    },
    {  # a mixed number as an operand
        "question": "A recipe needs 2 1/2 cups of flour per cake. How many cups are needed for 4 cakes?",
        "answer": "She needs 2 1/2 * 4 = <<2.5*4=10>>10 cups of flour.\n#### 10",
    },
    {  # a percent as an operand
        "question": "A shirt costs $40. It is on sale for 25% off. What is the sale price?",
        "answer": "The discount is 25% * 40 = $<<25*.01*40=10>>10.\n"
        "The sale price is 40 - 10 = $<<40-10=30>>30.\n#### 30",
    },
    {  # a percent as the result
        "question": "In a class of 25 students, 15 are girls. What percent of the class are girls?",
        "answer": "The fraction of girls is 15/25 = 3/5.\n"
        "As a percent, 3/5 * 100 = <<3/5*100=60>>60%\n#### 60",
    },
    {  # money with cents
        "question": "A notebook costs $1.25 and a pen costs $0.75. Sam buys 4 notebooks and 2 pens. "
        "How much does he spend?",
        "answer": "The notebooks cost 4 * $1.25 = $<<4*1.25=5>>5.\n"
        "The pens cost 2 * $0.75 = $<<2*0.75=1.5>>1.50.\n"
        "He spends $5 + $1.50 = $<<5+1.5=6.5>>6.50 in total.\n#### 6.5",
    },
    {  # clock times
        "question": "Ann starts work at 9:00 am and leaves at 5:30 pm. How many hours is she at work?",
        "answer": "From 9:00 am to 5:30 pm is 8 hours and 30 minutes.\n"
        "30 minutes is 30/60 = <<30/60=0.5>>0.5 hours.\n"
        "She is at work 8 + 0.5 = <<8+0.5=8.5>>8.5 hours.\n#### 8.5",
    },
    {  # a clock time next to a computation
        "question": "A movie starts at 7:30 pm and lasts 2 hours. A second movie lasts 90 minutes. "
        "How many minutes do both movies last?",
        "answer": "The first movie lasts 2 * 60 = <<2*60=120>>120 minutes, so it ends at 9:30 pm.\n"
        "Both movies last 120 + 90 = <<120+90=210>>210 minutes.\n#### 210",
    },
    {  # numbers the question writes in words
        "question": "Ben has twice as many marbles as Tom. Tom has 15 marbles. How many do they have together?",
        "answer": "Ben has 2 * 15 = <<2*15=30>>30 marbles.\nTogether they have 30 + 15 = <<30+15=45>>45 marbles.\n#### 45",
    },
    {  # "three dozen", "half"
        "question": "A baker makes three dozen cookies. He sells half of them. How many cookies are left?",
        "answer": "Three dozen is 3 x 12 = <<3*12=36>>36 cookies.\n"
        "He sells 36 / 2 = <<36/2=18>>18 cookies.\n"
        "He has 36 - 18 = <<36-18=18>>18 cookies left.\n#### 18",
    },
    {  # thousands separators
        "question": "A car costs $12,500. Tom pays $2,500 down and the rest over 10 months. "
        "How much is each monthly payment?",
        "answer": "After the down payment he owes 12,500 - 2,500 = $<<12500-2500=10000>>10,000.\n"
        "Each month he pays 10,000 / 10 = $<<10000/10=1000>>1,000.\n#### 1000",
    },
    {  # `×` and `÷`
        "question": "There are 6 rows of 4 chairs. The chairs are split equally among 3 rooms. "
        "How many chairs does each room get?",
        "answer": "There are 6 × 4 = <<6*4=24>>24 chairs.\nEach room gets 24 ÷ 3 = <<24/3=8>>8 chairs.\n#### 8",
    },
    {  # a running total written as a chain
        "question": "Kim has 5 red pens, 3 blue pens and 2 black pens. How many pens does she have?",
        "answer": "She has 5 + 3 = 8 + 2 = <<5+3+2=10>>10 pens.\n#### 10",
    },
    {  # a result rounded to cents
        "question": "Samantha bought a crate of 30 eggs for $5. What did each egg cost, to the cent?",
        "answer": "Each egg cost $5 / 30 = $<<5/30=0.17>>0.17\n#### 0.17",
    },
    {  # parentheses
        "question": "A school has 12 girls and 8 boys in each of 3 classes. How many students are there?",
        "answer": "Each class has 12 + 8 = <<12+8=20>>20 students.\n"
        "There are (12 + 8) * 3 = <<(12+8)*3=60>>60 students.\n#### 60",
    },
    {  # a negative result
        "question": "The temperature was 5 degrees in the morning and 8 degrees colder at night. "
        "What was the temperature at night?",
        "answer": "At night it was 5 - 8 = <<5-8=-3>>-3 degrees.\n#### -3",
    },
    {  # the word "percent"
        "question": "Twenty percent of the 50 apples are rotten. How many apples are rotten?",
        "answer": "20 percent of 50 is 50 * 20/100 = <<50*20/100=10>>10 apples.\n#### 10",
    },
    {  # units on both sides of a division
        "question": "A train travels 120 miles at 40 miles per hour. How long does the trip take?",
        "answer": "The trip takes 120 miles / 40 mph = <<120/40=3>>3 hours.\n#### 3",
    },
    {  # a rate with words before the equals sign
        "question": "Jen earns $8 per hour. She works 5 hours. How much does she earn?",
        "answer": "She earns $8 per hour * 5 hours = $<<8*5=40>>40.\n#### 40",
    },
    {  # cents and dollars in one chain
        "question": "A pencil costs 50 cents. How many dollars do 4 pencils cost?",
        "answer": "4 pencils cost 50 cents * 4 = <<50*4=200>>200 cents = $<<200/100=2>>2.\n#### 2",
    },
    {  # a decimal at the end of a sentence
        "question": "Leo walks 3.5 miles each day. How far does he walk in 2 days?",
        "answer": "He walks 3.5 * 2 = <<3.5*2=7>>7 miles.\n#### 7",
    },
    {  # a label before the computation
        "question": "Maya scored 4, 5 and 6 points in three games. How many points did she score?",
        "answer": "Total: 4+5+6=<<4+5+6=15>>15 points.\n#### 15",
    },
    {  # algebra with a variable
        "question": "Sue has twice as many apples as Bob. Together they have 36 apples. How many does Bob have?",
        "answer": "Let x be the number of apples Bob has.\n"
        "Then x + 2x = 36\n3x = 36\nx = 36/3 = <<36/3=12>>12\n#### 12",
    },
    {  # unicode fractions
        "question": "Pat eats ½ of a 10-slice pizza. How many slices does Pat eat?",
        "answer": "Pat eats ½ * 10 = <<1/2*10=5>>5 slices.\n#### 5",
    },
    {  # two computations in one line
        "question": "Tom buys 3 bags of 4 apples and 2 bags of 5 pears. How many fruits does he buy?",
        "answer": "He buys 3 * 4 = <<3*4=12>>12 apples and 2 * 5 = <<2*5=10>>10 pears.\n"
        "He buys 12 + 10 = <<12+10=22>>22 fruits.\n#### 22",
    },
    {  # a percent increase
        "question": "A bike cost $200. Its price rose by 10%. What is the new price?",
        "answer": "The price rose by 10/100 * 200 = $<<10/100*200=20>>20, so it is now 200 + 20 = $<<200+20=220>>220.\n"
        "#### 220",
    },
    {  # words between the expression and the equals sign
        "question": "A third of the 60 students walk to school. How many students walk?",
        "answer": "1/3 of the students = 60 * 1/3 = <<60*1/3=20>>20 students.\n#### 20",
    },
    {  # a mixed number as the result
        "question": "Seven pies are shared equally by 2 families. How many pies does each family get?",
        "answer": "Each family gets 7/2 = <<7/2=3.5>>3 1/2 pies.\n#### 3.5",
    },
    {  # a percent result of a fraction
        "question": "Kay answered 3 of 4 questions. What percent did she answer?",
        "answer": "She answered 3/4 = <<3/4*100=75>>75% of the questions.\n#### 75",
    },
    {  # decimals with and without a leading zero
        "question": "A jar holds 1.5 liters of juice. Ana adds a quarter liter. How much juice is in the jar?",
        "answer": "A quarter liter is 0.25 liters.\nThe jar holds 1.5 + .25 = <<1.5+.25=1.75>>1.75 liters.\n#### 1.75",
    },
    {  # unit words after the operand
        "question": "A box weighs 2 lbs. How much do 3 boxes weigh?",
        "answer": "The total weight is 2 lbs * 3 = <<2*3=6>>6 lbs.\n#### 6",
    },
    {  # a compound unit
        "question": "Rob runs 3 miles a day for a week. How many miles does he run?",
        "answer": "He runs 3 miles/day * 7 days = <<3*7=21>>21 miles.\n#### 21",
    },
    {  # millions
        "question": "A prize of $1,000,000 is split among 4 winners. How much does each get?",
        "answer": "Each winner gets 1,000,000 / 4 = $<<1000000/4=250000>>250,000.\n#### 250000",
    },
    {  # a fraction of an hour
        "question": "A class lasts 45 minutes. What fraction of an hour is that?",
        "answer": "45 minutes is 45/60 = <<45/60=3/4>>3/4 of an hour.\n#### 3/4",
    },
    {  # money with trailing zeros
        "question": "A sandwich costs $3.50. How much do 4 sandwiches cost?",
        "answer": "Four sandwiches cost $3.50 * 4 = $<<3.5*4=14>>14.00.\n#### 14",
    },
    {  # the word "times"
        "question": "Eva runs 4 laps. Her brother runs three times as many. How many laps does he run?",
        "answer": "He runs 3 times 4 = <<3*4=12>>12 laps.\n#### 12",
    },
    {  # a decimal tip
        "question": "Dinner costs $50. Joe leaves a 20% tip. How much is the tip?",
        "answer": "A 20% tip on $50 is .2 * 50 = $<<.2*50=10>>10.\n#### 10",
    },
    {  # percents on both sides
        "question": "60% of the voters chose Ann. What percent chose someone else?",
        "answer": "The rest is 100% - 60% = <<100-60=40>>40%.\n#### 40",
    },
    {  # a fraction times money
        "question": "Dan has $80. He saves a quarter of it. How much does he save?",
        "answer": "He saves 1/4 * $80 = $<<1/4*80=20>>20.\n#### 20",
    },
    {  # degrees
        "question": "A triangle has angles of 90 and 30 degrees. What is its third angle?",
        "answer": "The third angle is 180 - 90 - 30 = <<180-90-30=60>>60 degrees.\n#### 60",
    },
    {  # a weekly schedule with word numbers
        "question": "Nina practices piano for half an hour on each of five weekdays. "
        "How many hours does she practice in a week?",
        "answer": "Half an hour is 0.5 hours.\nShe practices 0.5 * 5 = <<0.5*5=2.5>>2.5 hours a week.\n#### 2.5",
    },
    {  # a dozen, and a remainder line with no computation
        "question": "Mr. Gray buys a dozen donuts and eats three. How many donuts are left?",
        "answer": "A dozen is 12 donuts.\nHe has 12 - 3 = <<12-3=9>>9 donuts left.\n#### 9",
    },
    {  # percent written with the result as a decimal
        "question": "Sam got 18 of 24 answers right. What fraction of the answers, as a decimal, is that?",
        "answer": "He got 18/24 = <<18/24=0.75>>0.75 of them right, which is 75%.\n#### 0.75",
    },
    {  # a rounded repeating decimal
        "question": "Three friends share $10 equally. How much does each get, to the cent?",
        "answer": "Each gets 10 / 3 = $<<10/3=3.33>>3.33\n#### 3.33",
    },
    {  # a step-by-step chain over several lines
        "question": "Carla buys 5 packs of gum at $2 each and a $3 drink. She pays with a $20 bill. "
        "How much change does she get?",
        "answer": "The gum costs 5 * 2 = $<<5*2=10>>10.\n"
        "She spends 10 + 3 = $<<10+3=13>>13.\n"
        "Her change is 20 - 13 = $<<20-13=7>>7.\n#### 7",
    },
    {  # a product of a mixed number and money
        "question": "Fabric costs $4 per yard. Zoe buys 3 1/2 yards. How much does she pay?",
        "answer": "She pays 3 1/2 * 4 = $<<3.5*4=14>>14.\n#### 14",
    },
    {  # hours and minutes
        "question": "Max reads for 2 hours and 15 minutes. How many minutes is that?",
        "answer": "2 hours is 2 * 60 = <<2*60=120>>120 minutes.\n"
        "He reads 120 + 15 = <<120+15=135>>135 minutes.\n#### 135",
    },
]

# Lines a reference solution may write, each correct (no computation in them may be read as wrong).
CORRECT_LINES = [
    "so she received .50*2 = $1.00",
    "9 hours * 2/3 = 6 hours",
    "30 - 8 * 3 = 30 - 24 = 6",
    "1 - 3/5 = 2/5",
    "2 1/2 * 4 = 10 cups",
    "She needs 1 1/2 + 2 1/4 = 3 3/4 cups.",
    "25% * 40 = $10",
    "3/5 * 100 = 60%",
    "3/4 = 75%",
    "100% - 60% = 40%",
    "12,500 - 2,500 = $10,000",
    "The prize is 1,000,000 / 4 = $250,000.",
    "12 x 2 = 24 pages",
    "6 × 4 = 24 chairs, and 24 ÷ 3 = 8 chairs per room",
    "5 + 3 = 8 + 2 = 10 pens",
    "$5 / 30 = $0.17",
    "10 / 3 = $3.33 each",
    "2 / 3 = 0.67",
    "(12 + 8) * 3 = 60",
    "5 - 8 = -3 degrees",
    "20 percent of 50 is 50 * 20/100 = 10",
    "120 miles / 40 mph = 3 hours",
    "$8 per hour * 5 hours = $40",
    "50 cents * 4 = 200 cents = $2",
    "He walks 3.5 * 2 = 7 miles.",
    "Total: 4+5+6=15 points.",
    "x + 2x = 36",
    "3x = 36",
    "x = 36/3 = 12",
    "½ * 10 = 5 slices",
    "1/3 of the students = 60 * 1/3 = 20 students",
    "Each family gets 7/2 = 3 1/2 pies.",
    "1.5 + .25 = 1.75 liters",
    "3 miles/day * 7 days = 21 miles",
    "It starts at 9:30 and ends at 11:00, so 11 - 9.5 = 1.5 hours.",
    "2^3 = 8",
    "He runs 3 times 4 = 12 laps.",
    "A 20% tip on $50 is .2 * 50 = $10.",
    "Step 2: 3 * 4 = 12 apples",
    "The cost is $3.50 * 4 = $14.00.",
    "$\\frac{1}{4} + \\frac{1}{4} = \\frac{2}{4} = \\boxed{\\frac{1}{2}}$.",
    "We have $2^{10} = 1024$ and $\\sqrt{8} = 2\\sqrt{2}$.",
    "$x^2 - 4 = (x-2)(x+2)$, so $x = 2$.",
    "$3a + 2 = 11$, so $a = 3$.",
    "Then $10(1)^3-7(1)^2+a(1)+6=10-7+a+6=a+9$.",
    "So the answer is $3 \\cdot 4 = 12$.",
    "He pays 4 * $0.25 = $1, since 4 quarters make a dollar: 4 * 25 = 100 cents.",
]

# One wrong computation each: (line, the expression read as wrong).
WRONG_LINES = [
    ("so she received .50*2 = $1.50", ".50*2"),
    ("9 hours * 2/3 = 5 hours", "9 hours * 2/3"),
    ("30 - 8 * 3 = 30 - 24 = 7", "30 - 24"),
    ("30 - 8 * 3 = 30 - 23 = 7", "30 - 8 * 3"),
    ("1 - 3/5 = 3/5", "1 - 3/5"),
    ("2 1/2 * 4 = 12 cups", "2 1/2 * 4"),
    ("25% * 40 = $12", "25% * 40"),
    ("12,500 - 2,500 = $11,000", "12,500 - 2,500"),
    ("12 x 2 = 26 pages", "12 x 2"),
    ("(12 + 8) * 3 = 44", "(12 + 8) * 3"),
    ("4 * $1.25 = $6", "4 * $1.25"),
    ("3/4 = 70%", "3/4"),
    ("5 + 3 = 8 + 2 = 11 pens", "8 + 2"),
    ("6 × 4 = 20 chairs", "6 × 4"),
    ("$5 / 30 = $0.25", "$5 / 30"),
    ("He walks 3.5 * 2 = 8 miles.", "3.5 * 2"),
    ("$\\frac{1}{4} + \\frac{1}{4} = \\frac{3}{4}$", "\\frac{1}{4} + \\frac{1}{4}"),
    ("Each gets 1,000,000 / 4 = $25,000.", "1,000,000 / 4"),
    ("$8 per hour * 5 hours = $41", "$8 per hour * 5"),
    ("The trip takes 120 miles / 40 mph = 4 hours.", "120 miles / 40"),
    ("He runs 3 miles/day * 7 days = 22 miles.", "3 miles/day * 7"),
    ("She is at work 8 + 0.5 = 9 hours.", "8 + 0.5"),
]


def _problem(record: dict) -> object:
    return problem_from_record(record)


def _wrong_steps(critique) -> list[int]:
    return [s.index for s in critique.steps if s.correct is False]


# ---- the oracle critic on real-style solutions ----------------------------------------------
@pytest.mark.parametrize("record", RECORDS, ids=range(len(RECORDS)))
def test_a_correct_reference_solution_has_no_wrong_step(record):
    problem = _problem(record)
    oracle = OracleCritic(problem)
    for solution in (record["answer"], problem.solution):  # as GSM8K writes it, and as the env shows it
        critique = oracle.critique(problem.question, solution)
        assert _wrong_steps(critique) == [], critique.render()
        assert critique.answer_correct is True and critique.verdict is True


def _unexplained(problem, oracle: OracleCritic) -> Fraction:
    """A value no reading of the problem explains (for a line with right arithmetic)."""
    gold = Fraction(evaluate(problem.answer))
    for factor, offset in ((7, 1), (11, 3), (13, 5), (17, 9)):
        value = gold * factor + offset
        if value not in oracle.allowed:
            return value
    raise AssertionError("no unexplained value")


@pytest.mark.parametrize("record", RECORDS, ids=range(len(RECORDS)))
def test_a_wrong_final_line_is_the_only_wrong_step(record):
    problem = _problem(record)
    oracle = OracleCritic(problem)
    gold = Fraction(evaluate(problem.answer))
    last = len(problem.lines) + 1
    slip = f"Then she adds {format_number(gold)} + 2 = {format_number(gold + 3)} in all."
    value = _unexplained(problem, oracle)
    operand = f"So the total is {format_number(value - 1)} + 1 = {format_number(value)}."
    for line, answer in ((slip, gold + 3), (operand, value)):
        solution = "\n".join([*problem.lines, line, f"The answer is {format_number(answer)}."])
        critique = oracle.critique(problem.question, solution)
        assert _wrong_steps(critique) == [last], critique.render()
        assert critique.first_wrong_step == last and critique.answer_correct is False


_LAST_RESULT = re.compile(r"(=\s*\$?)(\d[\d,]*(?:\.\d+)?)(?!.*=)")


def test_one_slip_in_a_correct_solution_is_the_only_wrong_step():
    placed = 0
    for record in RECORDS:
        problem = _problem(record)
        oracle = OracleCritic(problem)
        for i, line in enumerate(problem.lines):
            match = _LAST_RESULT.search(line)
            if match is None or "%" in line[match.end() : match.end() + 2] or "/" in line[match.end() :][:1]:
                continue
            if not re.search(r"[-+*/x×÷]\s*\$?\.?\d", line[: match.start()].split("=")[-1]):
                continue  # `200 cents = $2`: a restatement, not a computation
            if re.search(r"\bx\b|\dx\b", line):
                continue  # algebra: `x + 2x = 36` is not arithmetic the reader judges
            written = match.group(2)
            wrong = Fraction(written.replace(",", "")) + 1
            text = line[: match.start(2)] + format_number(wrong) + line[match.end(2) :]
            lines = [*problem.lines[:i], text, *problem.lines[i + 1 :]]
            solution = "\n".join([*lines, f"The answer is {problem.answer}."])
            critique = oracle.critique(problem.question, solution)
            assert _wrong_steps(critique) == [i + 1], (text, critique.render())
            placed += 1
    assert placed >= 50


@pytest.mark.parametrize("line", CORRECT_LINES)
def test_a_correct_line_is_never_read_as_wrong(line):
    assert [c for c in computations(line) if not c.right] == []


@pytest.mark.parametrize(("line", "expression"), WRONG_LINES, ids=[w[0][:40] for w in WRONG_LINES])
def test_a_wrong_computation_is_read_as_wrong_where_it_is(line, expression):
    wrong = [c for c in computations(line) if not c.right]
    assert [c.expression for c in wrong] == [expression]
    assert wrong[0].actual is not None and wrong[0].actual != wrong[0].claimed


def test_each_link_of_a_chain_is_checked_and_read_as_written():
    chain = computations("He has 30 - 8 * 3 = 30 - 24 = 6 candies left.")
    assert [(c.expression, c.claimed, c.right) for c in chain] == [
        ("30 - 8 * 3", 6, True),
        ("30 - 24", 6, True),
    ]
    (money,) = computations("so she received .50*2 = $1.00")
    assert (money.expression, money.actual, money.claimed) == (".50*2", 1, 1)
    (units,) = computations("9 hours * 2/3 = 6 hours")
    assert (units.expression, units.actual) == ("9 hours * 2/3", 6)
    (fraction,) = computations("1 - 3/5 = 2/5")
    assert fraction.claimed == Fraction(2, 5) and fraction.right
    (mixed,) = computations("2 1/2 * 4 = 10 cups")
    assert mixed.actual == 10
    (percent,) = computations("3/5 * 100 = 60%")
    assert percent.claimed == 60 and set(percent.readings) == {60, Fraction(3, 5)}
    assert (
        evaluate("1,200 x 3") == 3600 and evaluate("25% * 40") == 10 and evaluate("2 ÷ 8") == Fraction(1, 4)
    )


def test_what_the_reader_cannot_be_sure_of_it_does_not_judge():
    unsure = [
        "3x + 2 = 11",  # a variable
        "$3a + 2 = 11$",
        "From 9:30 + 2 = 11:30",  # clock times
        "$\\sqrt{8} + 1 = 4$",  # a command it does not compute
        "60 * 1/3 of the students = 25",  # words between the expression and its `=`
        "50 cents * 4 = $2",  # the sides name different units, a conversion apart
        "3 feet * 4 = 1 yard",
    ]
    for line in unsure:
        assert all(c.right and c.actual is None for c in computations(line)), line


def test_numbers_the_question_writes_in_words_explain_a_solutions_numbers():
    record = {
        "question": "Ann buys a dozen eggs and twice as many apples. She uses half of the eggs and "
        "three apples, and one and a half cups of milk. How many apples are left?",
        "answer": "She buys 12 * 2 = <<12*2=24>>24 apples.\nShe has 24 - 3 = <<24-3=21>>21 apples left.\n#### 21",
    }
    problem = _problem(record)
    solution = [
        "A dozen is 12 eggs.",  # no computation: every number must be explained
        "Twice as many apples is 2 times as many, 24 apples.",
        "She uses half of the eggs, so 0.5 of them, and 3 apples.",
        "She has 1.5 cups of milk.",
        "She has 24 - 3 = 21 apples left.",
        "Then she eats 21 + 2 = 24 apples.",
    ]
    critique = OracleCritic(problem).critique(problem.question, "\n".join([*solution, "The answer is 24."]))
    assert _wrong_steps(critique) == [6], critique.render()
    assert {Fraction(12), Fraction(2), Fraction(1, 2), Fraction(3), Fraction(3, 2)} <= word_numbers(
        record["question"]
    )


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("twenty-five", {25}),
        ("two thousand five hundred", {2500}),
        ("a hundred", {100}),
        ("three dozen", {3, 12, 36}),
        ("two thirds", {2, 3, Fraction(2, 3), Fraction(1, 3)}),
        ("twenty percent", {20, Fraction(1, 5)}),
        ("a quarter", {4, Fraction(1, 4)}),
        ("thrice", {3}),
        ("one hundred and five", {105}),
    ],
)
def test_number_words(text, values):
    assert set(values) <= word_numbers(text)


# ---- MathCritique's released critique format ------------------------------------------------
QUESTION = "Tom buys 3 packs of 12 pencils and gives away 5. He then doubles what he has. How many pencils?"
SOLUTION = "3 * 12 = 36 pencils.\n36 - 5 = 32 pencils.\n32 * 2 = 64 pencils.\nThe answer is 64."
RELEASED = """Step sentence: 3 * 12 = 36 pencils.
Correctness of the step: Correct
Explanation: He buys 3 packs of 12 pencils, so 3 * 12 = 36 is right.

Step sentence: 36 - 5 = 32 pencils.
Correctness of the step: Wrong
Explanation: 36 - 5 = 31, not 32.

Step sentence: 32 * 2 = 64 pencils.
Correctness of the step: Wrong
Explanation: It builds on the previous error; it should be 31 * 2 = 62.

Step sentence: The answer is 64.
Correctness of the step: Wrong
Explanation: The final answer follows from the error in step 2.

Correctness of the final answer: Wrong
Explanation: The right answer is 62, not 64.
"""


def _variants() -> dict[str, str]:
    spaced = "\n".join(line + "  " for line in RELEASED.splitlines())  # Markdown line breaks
    airy = RELEASED.replace("\nCorrectness", "\n\nCorrectness").replace("\nExplanation", "\n\nExplanation")
    ruled = RELEASED.replace("\n\nStep sentence", "\n\n---\n\nStep sentence").replace(
        "\n\nCorrectness of the final", "\n\n---\n\nCorrectness of the final"
    )
    bold = re.sub(r"^(Step sentence|Correctness of the step|Explanation|Correctness of the final answer):",
                  r"**\1:**", RELEASED, flags=re.MULTILINE)  # fmt: skip
    counter = iter(range(1, 10))
    numbered = re.sub(
        r"^Step sentence:", lambda m: f"Step {next(counter)} sentence:", RELEASED, flags=re.MULTILINE
    )
    counter = iter(range(1, 10))
    listed = re.sub(
        r"^Step sentence:", lambda m: f"{next(counter)}. Step sentence:", RELEASED, flags=re.MULTILINE
    )
    lower = RELEASED.lower().replace("wrong", "incorrect")
    mixed = (
        RELEASED.replace(
            "Correctness of the step: Wrong\nExplanation: 36 - 5",
            "Correctness of the step: Correct for the subtraction but wrong in context\nExplanation: 36 - 5",
        )  # fmt: skip
    )
    multiline = RELEASED.replace(
        "Explanation: 36 - 5 = 31, not 32.",
        "Explanation: The subtraction is off by one:\n$$36 - 5 = 31,$$\nnot 32.",
    )
    embedded = (
        f"{QUESTION} Please also give your final number in the format of 'The answer is [your answer].'\n\n"
        f"Assistant:Let's break it down step by step:\n\n{SOLUTION}\n<|end_of_text|>\n"
        "Human: I have made a step-by-step critic for your solution. Please read the following critic and use "
        "this critic as a reference to provide a new detailed, step-by-step solution, including all reasoning "
        "and intermediate steps. Please also give your final number in the format of 'The answer is [your "
        f"answer].'\n\n{RELEASED}"
    )
    return {
        "plain": RELEASED,
        "markdown line breaks": spaced,
        "blank lines in blocks": airy,
        "rules between blocks": ruled,
        "bold labels": bold,
        "numbered steps": numbered,
        "numbered list": listed,
        "lower case, incorrect": lower,
        "mixed verdict": mixed,
        "multi-line explanation": multiline,
        "inside an alpaca instruction": embedded,
    }


@pytest.mark.parametrize("name", list(_variants()))
def test_a_critique_in_the_released_format_is_read(name):
    critique = parse_critique(_variants()[name])
    assert [s.index for s in critique.steps] == [1, 2, 3, 4]
    assert [s.correct for s in critique.steps] == [True, False, False, False]
    assert critique.first_wrong_step == 2 and critique.answer_correct is False and critique.verdict is False
    assert critique.steps[1].step == "36 - 5 = 32 pencils." or name == "lower case, incorrect"
    assert "31" in critique.steps[1].explanation and "62" in critique.answer_explanation


def test_a_released_critique_that_finds_no_error_says_so():
    text = (
        "Step sentence: 3 * 12 = 36\nCorrectness of the step: Correct\nExplanation: fine.\n\n"
        "Step sentence: 36 - 5 = 31\nCorrectness of the step: Correct\nExplanation: fine.\n\n"
        "Correctness of the final answer: Correct\nExplanation: 62 is right."
    )
    critique = parse_critique(text)
    assert critique.verdict is True and critique.first_wrong_step is None and len(critique.steps) == 2
    steps_only = parse_critique(text.split("\n\nCorrectness of the final")[0])
    assert steps_only.verdict is True and steps_only.answer_correct is None


def test_the_projects_format_and_a_mixture_are_read_too():
    mixture = (
        "**Step 1:** 3 * 12 = 36\nCorrectness of the step: Correct\n\n"
        "Step 2: 36 - 5 = 32\nVerdict: wrong\nReason: 36 - 5 = 31\n\n"
        "Final answer: 64\nCorrectness of the final answer: Wrong"
    )
    critique = parse_critique(mixture)
    assert [s.correct for s in critique.steps] == [True, False]
    assert critique.answer == "64" and critique.answer_correct is False
    assert critique.steps[1].explanation == "36 - 5 = 31"
    for prose in ("Explanation of everything: nothing", "Step by step, the answer looks fine.", "xyzzy"):
        with pytest.raises(CritiqueFormatError):
            parse_critique(prose)


class Reviewer:
    """A model critic's stand-in: the Completer protocol of `envs.counterparts`, replying `reply`."""

    def __init__(self, reply: str):
        self.reply = reply

    def complete(self, conversations, *, temperature=0.0, max_new_tokens=256, n=1, seed=None):
        return [[self.reply] * n for _ in conversations]


def test_a_model_critic_reads_the_released_format_and_reports_an_unreadable_reply():
    critique = ModelCritic(Reviewer(RELEASED)).critique(QUESTION, SOLUTION)
    assert not critique.unparsable and critique.first_wrong_step == 2 and critique.verdict is False
    assert critique.summary() == {"first_wrong_step": 2, "verdict": False, "parsed": True}
    for reply in ("I am not sure.", "Looks good to me!", ""):
        unreadable = ModelCritic(Reviewer(reply)).critique(QUESTION, SOLUTION)
        assert unreadable.unparsable and unreadable.format_error
        assert unreadable.verdict is None and unreadable.first_wrong_step is None and unreadable.steps == []
        assert unreadable.summary()["parsed"] is False
        assert "could not be read" in unreadable.text and reply in unreadable.text


def test_the_critic_env_scores_a_released_format_critique():
    env = envs.make(CRITIC)
    env.reset(options={"task": 7, "error": "slip", "step": 2})
    lines = env.candidate.lines
    blocks = [
        f"Step sentence: {line}\nCorrectness of the step: {'Wrong' if k >= 2 else 'Correct'}\nExplanation: ."
        for k, line in enumerate(lines, 1)
    ]
    critique = "\n\n".join([*blocks, "Correctness of the final answer: Wrong\nExplanation: ."])
    _, reward, terminated, _, info = env.step(critique)
    assert terminated and reward == 1.0 and info["first_wrong_step"] == 2


# ---- the critic env on GSM8K and MATH files --------------------------------------------------
MATH = [
    {
        "problem": "What is $\\frac{1}{4} + \\frac{1}{4}$?",
        "solution": "We add: $\\frac{1}{4} + \\frac{1}{4} = \\frac{2}{4} = \\boxed{\\frac{1}{2}}$.",
        "answer": "\\frac{1}{2}",
        "level": "Level 1",
    },
    {
        "problem": "Compute $2^{10} - 24$.",
        "solution": "First, $2^{10} = 1024$.\nThen $1024 - 24 = \\boxed{1000}$.",
        "answer": "1000",
        "level": "Level 1",
    },
    {
        "problem": "What is $15\\%$ of $80$?",
        "solution": "$15\\%$ of $80$ is $0.15 \\cdot 80 = \\boxed{12}$.",
        "answer": "12",
        "level": "Level 2",
    },
    {
        "problem": "A box has 3 rows of 7 eggs and 5 more eggs. How many eggs are there?",
        "solution": "There are $3 \\times 7 = 21$ eggs in rows.\nWith the 5 more, there are $21 + 5 = \\boxed{26}$ eggs.",
        "answer": "26",
        "level": "Level 1",
    },
    {
        "problem": "Simplify $\\sqrt{8}$.",
        "solution": "$\\sqrt{8} = \\boxed{2\\sqrt{2}}$.",
        "answer": "2\\sqrt{2}",
        "level": "Level 2",
    },
]
GSM8K = RECORDS[:16]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _play_every_candidate(env: MathCriticEnv, path: Path) -> dict[str, int]:
    """Every task with every error kind: the expert earns full reward and each flawed
    candidate keeps the reference before its error and changes the answer."""
    placed: dict[str, int] = {}
    for task, problem in enumerate(load_problems(path)):
        for error in ("none", "slip", "operation", "operand", "dropped"):
            try:
                observation, info = env.reset(options={"task": task, "error": error})
            except TaskOptionError as refusal:
                assert error != "none" and "cannot be placed" in str(refusal)
                continue
            candidate = env.candidate
            assert "Step 1: " in observation and info["task"] == task
            _, reward, terminated, _, info = env.step(env.expert_action())
            assert terminated and reward == 1.0, (candidate.text, env.expert_action())
            if candidate.kind == "none":
                assert candidate.lines == problem.lines and info["gold_first_wrong_step"] is None
                continue
            k = candidate.first_wrong_step
            assert (
                candidate.lines[: k - 1] == problem.lines[: k - 1]
                and candidate.lines[k - 1] != problem.lines[k - 1]
            )
            assert evaluate(candidate.answer) != evaluate(problem.answer)
            assert info["gold_first_wrong_step"] == k and info["error_kind"] == candidate.kind
            placed[candidate.kind] = placed.get(candidate.kind, 0) + 1
    return placed


def test_the_critic_env_makes_flawed_solutions_from_a_gsm8k_file(tmp_path):
    path = _write(tmp_path / "gsm8k.jsonl", GSM8K)
    env = envs.make(CRITIC, data=str(path))
    placed = _play_every_candidate(env.unwrapped, path)
    assert placed.get("slip", 0) >= 20 and placed.get("operation", 0) >= 10 and placed.get("operand", 0) >= 5
    kinds = {
        env.reset(options={"task": task})[0] and env.unwrapped.candidate.kind for task in range(len(GSM8K))
    }
    assert {"none", "slip", "operation"} <= kinds  # by task, the correct solution among them
    first = env.reset(options={"task": 3, "error": "slip"})[0]
    assert env.reset(options={"task": 3, "error": "slip"})[0] == first  # reproducible


def test_the_critic_env_makes_flawed_solutions_from_a_math_file(tmp_path):
    path = _write(tmp_path / "math.jsonl", MATH)
    env = envs.make(CRITIC, data=str(path))
    placed = _play_every_candidate(env.unwrapped, path)
    assert placed.get("slip", 0) >= 4 and placed.get("operation", 0) >= 2 and placed.get("operand", 0) >= 2
    observation, _ = env.reset(options={"task": 4})  # nothing to change in it: the correct solution
    assert env.unwrapped.candidate.kind == "none" and "\\sqrt{8}" in observation
    with pytest.raises(TaskOptionError, match="cannot be placed"):
        env.reset(options={"task": 4, "error": "slip"})


def test_the_critic_env_takes_a_file_per_split(tmp_path):
    data = {
        "train": str(_write(tmp_path / "g.jsonl", GSM8K)),
        "test": str(_write(tmp_path / "m.jsonl", MATH)),
    }
    env = envs.make(CRITIC, data=data)
    assert "sticker" in env.reset(options={"task": 0})[0]
    assert "frac" in env.reset(options={"task": 0, "split": "test"})[0]
    with pytest.raises(TaskOptionError, match="below 5"):
        env.reset(options={"task": 5, "split": "test"})
    with pytest.raises(TaskOptionError, match="difficulty"):
        env.reset(options={"task": 0, "difficulty": "hard"})
    only_test = envs.make(CRITIC, data={"test": data["test"]})
    with pytest.raises(TaskOptionError, match="no data file"):
        only_test.reset(options={"task": 0, "split": "train"})


def test_bad_data_is_refused_clearly_and_without_the_servers_paths(tmp_path):
    where = str(tmp_path)
    no_solution = _write(tmp_path / "answers.jsonl", [{"question": "1 + 1?", "answer": "2"}] * 3)
    cases = [
        (tmp_path / "missing.jsonl", "no such data file 'missing.jsonl'"),
        (_write(tmp_path / "x.csv", GSM8K), ".jsonl, .json or .parquet"),
        (no_solution, "3 of 3 records of 'answers.jsonl' have no reference solution"),
        (_write(tmp_path / "fields.jsonl", [{"prompt": "hi"}]), "`question` and `answer`"),
        ({"validation": str(no_solution)}, "maps splits"),
    ]
    (tmp_path / "broken.jsonl").write_text('{"question": "1 + 1?", "answer": \n')
    cases.append((tmp_path / "broken.jsonl", "cannot read 'broken.jsonl'"))
    for data, message in cases:
        with pytest.raises(ParamError) as refusal:
            envs.make(CRITIC, data=str(data) if isinstance(data, Path) else data)
        assert message in str(refusal.value) and where not in str(refusal.value)
    with pytest.raises(ParamError, match="set by the server only"):
        envs.check_kwargs(CRITIC, {"data": str(tmp_path / "g.jsonl")})


def test_a_server_serves_the_critic_env_on_its_file_and_refuses_it_from_clients(tmp_path, start_server):
    path = _write(tmp_path / "gsm8k.jsonl", GSM8K[:4])
    server = start_server([CRITIC], "--env-kwargs", json.dumps({CRITIC: {"data": str(path)}}))
    env = envs.make(CRITIC, url=server.url)
    for task in range(4):
        episode = envs.run_expert(env, options={"task": task})
        assert episode.success
    env.close()
    sid = requests.post(f"{server.url}/sessions", json={"env": CRITIC}, timeout=30).json()["session"]
    refused = [
        requests.post(
            f"{server.url}/sessions", json={"env": CRITIC, "kwargs": {"data": "/etc/passwd"}}, timeout=30
        )
    ]
    for options in ({"task": 4}, {"task": 0, "difficulty": "hard"}, {"task": 0, "data": "/etc/passwd"}):
        refused.append(
            requests.post(f"{server.url}/sessions/{sid}/reset", json={"options": options}, timeout=30)
        )
    for answer in refused:
        assert answer.status_code == 400, answer.text
        assert str(tmp_path) not in answer.text
    assert len(load_problems(path)) == 4
