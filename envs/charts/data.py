"""Chart QA training data on disk: images, plotting code and ReachQA-format QA records.

`write_chart_data(n, out_dir)` renders charts 0..n-1 of a split and writes

    out_dir/images/<split>_<seed>_<chart>.png    the rendered chart
    out_dir/code/<split>_<seed>_<chart>.py       the plotting code that drew it
    out_dir/<split>.jsonl                        four questions per chart, one record a line

Records carry ReachQA's fields (`question`, `answer`, `image`, `code`, `QA_type`,
`major_chart_type`, `minor_chart_type`; `image` and `code` are paths relative to the JSONL
file, as in ReachQA's releases) and ours
(`answer_type`, `computation`, `template`, `topic`, `unit`, `noun`, `split`, `seed`, `chart`, and,
for seed 0, the env's `task`). `ChartQAEnv(data=out_dir/<split>.jsonl)` serves them back.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from envs.charts.env import QUESTIONS_PER_CHART
from envs.charts.plotting import plotting_code
from envs.charts.questions import QA_TYPES, pick_questions
from envs.charts.render_workers import ChartRenderer
from envs.charts.synth import make_chart


def write_chart_data(
    n: int, out_dir: str | Path, seed: int = 0, split: str = "train", processes: int = 2
) -> int:
    """Write `n` charts of `split` (chart family `seed`) under `out_dir`; return the QA records written."""
    if n < 0:
        raise ValueError("n must be >= 0")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "code").mkdir(parents=True, exist_ok=True)
    charts = [make_chart(index, split, seed=seed) for index in range(n)]
    renderer = ChartRenderer(processes=processes)
    records = 0
    try:
        with ThreadPoolExecutor(processes) as pool, open(out / f"{split}.jsonl", "w", encoding="utf-8") as qa:
            for chart, png in zip(charts, pool.map(renderer.render, charts)):
                stem = f"{split}_{seed}_{chart.index:06d}"
                code = plotting_code(chart)
                (out / "images" / f"{stem}.png").write_bytes(png)
                (out / "code" / f"{stem}.py").write_text(code, encoding="utf-8")
                questions = pick_questions(chart)
                for slot in range(QUESTIONS_PER_CHART):
                    qa_type = QA_TYPES[slot // 2]
                    candidates = questions[qa_type]
                    question = candidates[slot % len(candidates)]
                    record = {
                        "question": question.question,
                        "answer": question.answer,
                        "image": f"images/{stem}.png",
                        "code": f"code/{stem}.py",
                        "QA_type": qa_type,
                        "major_chart_type": chart.major,
                        "minor_chart_type": chart.minor,
                        "answer_type": question.answer_type,
                        "computation": question.computation,
                        "template": question.template,
                        "topic": chart.topic,
                        "unit": question.unit,
                        "noun": question.noun,
                        "split": split,
                        "seed": seed,
                        "chart": chart.index,
                    }
                    if seed == 0:
                        record["task"] = chart.index * QUESTIONS_PER_CHART + slot
                    qa.write(json.dumps(record, ensure_ascii=False) + "\n")
                    records += 1
    finally:
        renderer.close()
    return records
