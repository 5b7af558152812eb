"""evol/ChartQA-v0: chart synthesis, questions re-derived from the data, modes, server, loader, data."""

from __future__ import annotations

import io
import json
import os
import signal
import statistics

import matplotlib
import numpy as np
import pytest
from matplotlib.axes import Axes
from PIL import Image

import envs
from envs.charts.chart import CHART_TYPES, IMAGE_SHAPE, MINOR_TYPES, PALETTE
from envs.charts.data import write_chart_data
from envs.charts.env import ChartQAEnv, extract_answer, normalize_label, parse_number
from envs.charts.plotting import plotting_code
from envs.charts.questions import pick_questions
from envs.charts.render import RenderError, run_plotting_code
from envs.charts.render_workers import ChartRenderer
from envs.charts.synth import make_chart
from envs.errors import TaskOptionError
from server.client import RemoteEnv

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def renderer():
    renderer = ChartRenderer(processes=2)
    yield renderer
    renderer.close()


@pytest.fixture(scope="module")
def env() -> ChartQAEnv:
    return envs.make("evol/ChartQA-v0")


def test_every_chart_type_renders_to_a_small_png_of_the_image_shape(renderer):
    charts = [make_chart(0, "test", chart_type=minor) for minor in MINOR_TYPES]
    for chart in charts:
        png = renderer.render(chart)
        assert png.startswith(b"\x89PNG") and len(png) <= 100 * 1024, (chart.minor, len(png))
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        assert pixels.shape == (*IMAGE_SHAPE, 3)
        assert pixels.std() > 10, f"{chart.minor} looks blank"
    assert {chart.major for chart in charts} == set(CHART_TYPES.values())


def test_charts_and_questions_replay_by_index_and_splits_differ():
    assert make_chart(7, "train") == make_chart(7, "train")
    assert pick_questions(make_chart(7, "train")) == pick_questions(make_chart(7, "train"))
    assert make_chart(7, "train") != make_chart(7, "test")
    assert [make_chart(i).minor for i in range(len(MINOR_TYPES))] == list(MINOR_TYPES)
    assert len({make_chart(i, "test").topic for i in range(200)}) >= 30


# ---- answers, re-derived here from the chart's data -----------------------------------
def _table(chart):
    series = {name: list(values) for panel in chart.panels for name, values in panel.data.items()}
    if chart.minor == "percentage_bar":
        totals = [sum(col) for col in zip(*series.values())]
        series = {name: [v / t * 100 for v, t in zip(values, totals)] for name, values in series.items()}
    return chart.panels[0].labels, series


def _argext(pairs, highest):
    return (max if highest else min)(pairs, key=lambda pair: pair[1])[0]


def _quartiles(values):
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    iqr = q3 - q1
    low = min(v for v in values if v >= q1 - 1.5 * iqr)
    high = max(v for v in values if v <= q3 + 1.5 * iqr)
    return {"q1": q1, "median": median, "q3": q3, "iqr": iqr, "high": high,
            "outliers": [v for v in values if v < low or v > high]}  # fmt: skip


def _in_bin(value, low, high, last):
    return low <= value < high or (last and value == high)


def rederive(chart, q):
    """The answer of `q`, computed from `chart`'s data without the questions module."""
    t, a = q.template, q.args
    panel = chart.panels[0]
    if chart.minor in ("pie", "donut"):
        labels, (values,) = panel.labels, panel.data.values()
        v = dict(zip(labels, values))
        total = sum(values)
        return {
            "slice_share": lambda: v.get(a.get("label"), 0) / total * 100,
            "largest_slice": lambda: _argext(v.items(), True),
            "smallest_slice": lambda: _argext(v.items(), False),
            "count_slices": lambda: len(labels),
            "legend_color": lambda: next(k for k, c in panel.colors.items() if PALETTE[c] == a.get("color")),
            "donut_total": lambda: total,
            "share_ratio": lambda: v[a.get("a")] / v[a.get("b")],
            "combined_share": lambda: (v[a.get("a")] + v[a.get("b")]) / total * 100,
            "share_gap": lambda: (v[a.get("a")] - v[a.get("b")]) / total * 100,
            "above_equal_share": lambda: sum(x > total / len(values) for x in values),
            "slice_value": lambda: v.get(a.get("label")),
        }[t]()
    if panel.kind == "scatter":
        k = {"x": 1, "y": 2}.get(a.get("axis"))
        by_name = {p[0]: p for p in panel.points}
        return {
            "point_value": lambda: by_name[a["name"]][k] if a else None,
            "highest_point": lambda: _argext([(p[0], p[k]) for p in panel.points], True),
            "lowest_point": lambda: _argext([(p[0], p[k]) for p in panel.points], False),
            "count_group": lambda: sum(p[3] == a.get("group") for p in panel.points),
            "legend_color": lambda: next(g for g, c in panel.colors.items() if PALETTE[c] == a.get("color")),
            "point_difference": lambda: by_name[a["a"]][k] - by_name[a["b"]][k] if a else None,
            "group_mean": lambda: statistics.mean(p[k] for p in panel.points if p[3] == a.get("group")),
            "best_ratio": lambda: _argext([(p[0], p[2] / p[1]) for p in panel.points], True),
            "quadrant_count": lambda: sum(
                ((p[1] > a["x"]) == a["x_above"]) and ((p[2] > a["y"]) == a["y_above"]) for p in panel.points
            ),
        }[t]()
    if panel.kind == "histogram":
        (samples,) = panel.samples.values()
        edges = panel.bins
        bins = [
            (lo, hi, sum(_in_bin(s, lo, hi, i == len(edges) - 2) for s in samples))
            for i, (lo, hi) in enumerate(zip(edges, edges[1:]))
        ]
        count = {(lo, hi): c for lo, hi, c in bins}
        return {
            "bin_count": lambda: count.get((a.get("low"), a.get("high"))),
            "most_bin": lambda: "{:g}-{:g}".format(*max(bins, key=lambda b: b[2])[:2]),
            "fewest_bin": lambda: "{:g}-{:g}".format(*min(bins, key=lambda b: b[2])[:2]),
            "count_bins": lambda: len(edges) - 1,
            "below_count": lambda: sum(s < a.get("edge", 0) for s in samples),
            "range_share": lambda: sum(
                _in_bin(s, a["low"], a["high"], a["high"] == edges[-1]) for s in samples
            ) / len(samples) * 100 if a else None,
            "bin_difference": lambda: count.get(tuple(a.get("a", ()))) - count.get(tuple(a.get("b", ()))),
            "total_count": lambda: len(samples),
        }[t]()  # fmt: skip
    if panel.kind == "box":
        stats = {name: _quartiles(values) for name, values in panel.samples.items()}
        g = a.get("group")
        return {
            "median": lambda: stats[g]["median"],
            "highest_median": lambda: _argext([(n, s["median"]) for n, s in stats.items()], True),
            "lowest_median": lambda: _argext([(n, s["median"]) for n, s in stats.items()], False),
            "count_groups": lambda: len(stats),
            "upper_whisker": lambda: stats[g]["high"],
            "iqr": lambda: stats[g]["iqr"],
            "median_difference": lambda: stats[a.get("a")]["median"] - stats[a.get("b")]["median"],
            "outlier_count": lambda: len(stats[g]["outliers"]),
            "outlier_total": lambda: sum(len(s["outliers"]) for s in stats.values()),
            "widest_box": lambda: _argext([(n, s["iqr"]) for n, s in stats.items()], True),
        }[t]()
    labels, s = _table(chart)
    j = labels.index(a["label"]) if "label" in a else None
    name = a.get("series")
    col = {n: values[j] for n, values in s.items()} if j is not None else {}
    if t == "difference":
        return (
            col[a["a"]] - col[a["b"]]
            if j is not None
            else s[name][labels.index(a["a"])] - s[name][labels.index(a["b"])]
        )
    colors = {
        n: PALETTE[c] for p in chart.panels if p.kind not in ("heatmap", "pie") for n, c in p.colors.items()
    }
    return {
        "read_value": lambda: col.get(name),
        "count_labels": lambda: len(labels),
        "count_series": lambda: len(s),
        "highest_label": lambda: _argext(zip(labels, s[name]), True),
        "lowest_label": lambda: _argext(zip(labels, s[name]), False),
        "compare_series": lambda: _argext([(n, col[n]) for n in (a["a"], a["b"])], True),
        "compare_labels": lambda: _argext([(lab, s[name][labels.index(lab)]) for lab in (a["a"], a["b"])], True),
        "legend_color": lambda: next(n for n, c in colors.items() if c == a.get("color")),
        "highest_series": lambda: _argext(col.items(), True),
        "lowest_series": lambda: _argext(col.items(), False),
        "drawn_as_line": lambda: next(n for n in panel.data if n not in panel.bars),
        "error_margin": lambda: panel.errors[name][j],
        "error_upper": lambda: s[name][j] + panel.errors[name][j],
        "ratio": lambda: col[a.get("a")] / col[a.get("b")],
        "share": lambda: col.get(name) / sum(col.values()) * 100,
        "percent_change": lambda: (s[name][-1] - s[name][0]) / s[name][0] * 100,
        "count_rises": lambda: sum(y > x for x, y in zip(s[name], s[name][1:])),
        "total": lambda: sum(s[name]),
        "average": lambda: statistics.mean(s[name]),
        "largest_total": lambda: _argext(zip(labels, map(sum, zip(*s.values()))), True),
        "smallest_total": lambda: _argext(zip(labels, map(sum, zip(*s.values()))), False),
        "range": lambda: max(s[name]) - min(s[name]),
        "above_average": lambda: sum(x > statistics.mean(s[name]) for x in s[name]),
        "largest_growth": lambda: _argext([(n, v[-1] - v[0]) for n, v in s.items()], True),
        "largest_gap": lambda: _argext(zip(labels, (abs(x - y) for x, y in zip(s[a.get("a")], s[a.get("b")]))), True),
        "across_subplots": lambda: col.get(a.get("a"), 0) + col.get(a.get("b"), 0),
    }[t]()  # fmt: skip


def test_every_answer_is_rederived_from_the_data():
    templates = set()
    for split in ("train", "test"):
        for index in range(len(MINOR_TYPES) * 8):
            chart = make_chart(index, split)
            for questions in pick_questions(chart).values():
                for q in questions:
                    expected = rederive(chart, q)
                    where = f"{split} chart {index} ({chart.minor}) {q.template}: {q.question}"
                    assert q.computation.endswith(f"= {q.answer}"), where
                    if q.answer_type == "label":
                        assert q.answer == expected, where
                    elif q.answer_type == "integer":
                        assert int(q.answer) == expected, where
                    else:
                        one_decimal = q.template in ("slice_share", "combined_share", "share_gap")
                        assert float(q.answer) == pytest.approx(
                            expected, abs=0.051 if one_decimal else 0.0051
                        ), where
                    templates.add(q.template)
    assert len(templates) >= 45


# ---- the code carries the data --------------------------------------------------------
SPIED = (
    "bar",
    "barh",
    "plot",
    "errorbar",
    "pie",
    "scatter",
    "stackplot",
    "fill_between",
    "hist",
    "boxplot",
    "imshow",
)


def _plotted(code: str, monkeypatch) -> list[tuple[float, ...]]:
    """Every numeric sequence the code passes to a plotting call (matplotlib spied on)."""
    seen: list[tuple[float, ...]] = []

    def collect(value):
        if isinstance(value, dict | str) or value is None:
            return
        array = np.asarray(value, dtype=object)
        if array.ndim == 1 and all(isinstance(x, int | float | np.number) for x in array):
            seen.append(tuple(round(float(x), 6) for x in array))
        elif array.ndim >= 1:
            for item in value:
                collect(item)

    def spy(original):
        def call(self, *args, **kwargs):
            for value in [*args, *kwargs.values()]:
                try:
                    collect(value)
                except (TypeError, ValueError):
                    pass
            return original(self, *args, **kwargs)

        return call

    with monkeypatch.context() as patch:
        for name in SPIED:
            patch.setattr(Axes, name, spy(getattr(Axes, name)))
        fig = run_plotting_code(code)
    fig.clf()
    return seen


def _expected_sequences(chart) -> list[tuple[float, ...]]:
    out = []
    for panel in chart.panels:
        values = list(panel.data.values()) + list(panel.errors.values()) + list(panel.samples.values())
        if panel.kind == "percentage_bar":
            totals = [sum(col) for col in zip(*panel.data.values())]
            values = [[v / t * 100 for v, t in zip(series, totals)] for series in panel.data.values()]
        if panel.kind == "radar":
            values = [series + series[:1] for series in panel.data.values()]
        for group in panel.colors if panel.kind == "scatter" else ():
            values += [[p[k] for p in panel.points if p[3] == group] for k in (1, 2)]
        if panel.bins:
            values.append(panel.bins)
        out += [tuple(round(float(x), 6) for x in series) for series in values]
    return out


@pytest.mark.parametrize("minor", MINOR_TYPES)
def test_plotting_code_passes_the_data_of_its_answers_to_matplotlib(minor, monkeypatch):
    chart = make_chart(3, "test", chart_type=minor)
    code = plotting_code(chart)
    plotted = _plotted(code, monkeypatch)
    for expected in _expected_sequences(chart):
        assert any(np.allclose(seq, expected, atol=1e-6) for seq in plotted if len(seq) == len(expected)), (
            f"{minor}: {expected} is not plotted"
        )


def test_plotting_code_may_import_only_matplotlib_and_numpy():
    with pytest.raises(RenderError, match="refused"):
        run_plotting_code("import os\nfig = None")
    with pytest.raises(RenderError, match="refused"):
        run_plotting_code("open('/etc/passwd')")


def test_renderer_enforces_its_time_limit_and_recovers():
    renderer = ChartRenderer(processes=1, timeout=1e-4)
    try:
        with pytest.raises(RenderError, match="limit"):
            renderer.render(make_chart(14, "test"))
        renderer.timeout = 10.0
        assert renderer.render(make_chart(14, "test")).startswith(b"\x89PNG")
    finally:
        renderer.close()


def test_renderer_kills_a_stuck_worker_and_starts_another():
    renderer = ChartRenderer(processes=1, timeout=0.5, grace=0.5)
    try:
        renderer.render(make_chart(0, "test"))
        (stuck,) = renderer._all
        os.kill(stuck.process.pid, signal.SIGSTOP)
        with pytest.raises(RenderError, match="ran past"):
            renderer.render(make_chart(1, "test"))
        assert stuck.process.poll() is not None
        renderer.timeout = 10.0
        assert renderer.render(make_chart(1, "test")).startswith(b"\x89PNG")
    finally:
        renderer.close()


# ---- the env --------------------------------------------------------------------------
def test_image_mode_shows_the_chart_and_the_question(env):
    observation, info = env.reset(seed=0, options={"task": 9, "split": "test"})
    assert observation["image"].shape == (*IMAGE_SHAPE, 3) and observation["image"].dtype == np.uint8
    assert observation["image"].std() > 10
    assert observation["text"].startswith(f"Question: {info['question']}\nAnswer format: ")
    assert info["QA_type"] == "recognition" and info["minor_chart_type"] == MINOR_TYPES[2]
    assert info["major_chart_type"] == "bar" and info["mode"] == "image"


def test_code_mode_carries_the_plotting_code_and_table_mode_the_data(env):
    chart = make_chart(2, "test")
    observation, info = env.reset(options={"task": 10, "split": "test", "mode": "code"})
    assert plotting_code(chart) in observation["text"] and not observation["image"].any()
    assert info["QA_type"] == "reasoning"
    observation, _ = env.reset(options={"task": 10, "split": "test", "mode": "table"})
    first = chart.panels[0]
    row = f"| {first.labels[0]} | " + " | ".join(f"{v[0]:g}" for v in first.data.values()) + " |"
    assert row in observation["text"] and not observation["image"].any()
    for mode in ("image", "code", "table"):
        episode = envs.run_expert(
            envs.make("evol/ChartQA-v0", mode=mode), options={"task": 10, "split": "test"}
        )
        assert episode.success and episode.reward == 1.0


def test_options_pick_chart_type_and_qa_type_and_bad_ones_raise(env):
    _, info = env.reset(options={"task": 0, "chart_type": "radar", "qa_type": "reasoning"})
    assert (info["minor_chart_type"], info["major_chart_type"], info["QA_type"]) == (
        "radar",
        "radar",
        "reasoning",
    )
    for bad in (
        {"task": 0, "chart_type": "pie3d"},
        {"task": 0, "qa_type": "vibes"},
        {"task": 2000, "split": "test"},
    ):
        with pytest.raises(TaskOptionError):
            env.reset(options=bad)


def test_answers_count_within_tolerance_and_names_after_normalisation(env):
    def answer(task: int, reply: str):
        env.reset(options={"task": task, "split": "test", "chart_type": "grouped_bar"})
        return env.step(reply)

    for task in range(8):
        env.reset(options={"task": task, "split": "test", "chart_type": "grouped_bar"})
        q = env._question
        if q.answer_type == "number":
            gold = float(q.answer)
            assert answer(task, f"Thought: easy.\nAnswer: {gold * 1.04:.4f}")[1] == 1.0
            assert answer(task, f"{gold * 1.2 + 1:.4f} {q.unit}")[1] == 0.0
        elif q.answer_type == "label":
            assert answer(task, f"answer: THE {q.answer.upper()}.")[1] == 1.0
        _, reward, terminated, _, info = answer(task, "Answer: 3.5 and 4")
        assert info["invalid"] and not terminated
    assert parse_number("$1,234.5") == 1234.5 and parse_number("−12%") == -12.0
    assert parse_number("about 15 TWh") == 15.0 and parse_number("12 Mt CO2") == 12.0
    assert parse_number("go to the moon 42") is None
    assert extract_answer("We add.\nThe answer is: **Germany**.") == "Germany"
    assert normalize_label("The 10 – 20") == "10-20"


def test_invalid_answers_are_explained_counted_and_keep_the_image(env):
    observation, _ = env.reset(options={"task": 0, "split": "test"})
    for turn, reply in enumerate(["", "Answer:", "xyzzy plugh ###"], start=1):
        after, reward, terminated, truncated, info = env.step(reply)
        assert info["invalid"] is True and info["turn"] == turn and not terminated
        assert after["text"].startswith("Invalid answer:") and "Question:" in after["text"]
        assert np.array_equal(after["image"], observation["image"])
    _, reward, terminated, truncated, info = env.step("Answer: nonsense")
    assert truncated and not info["success"]


def test_image_round_trips_through_a_live_server_unchanged(env, start_server):
    server = start_server(["evol/ChartQA-v0"])
    remote = RemoteEnv("evol/ChartQA-v0", url=server.url)
    try:
        for task in (0, 57):
            local, _ = env.reset(seed=1, options={"task": task, "split": "test"})
            served, info = remote.reset(seed=1, options={"task": task, "split": "test"})
            assert served["text"] == local["text"]
            assert served["image"].dtype == np.uint8 and np.array_equal(served["image"], local["image"])
            after, *_ = remote.step("xyzzy")
            assert np.array_equal(after["image"], local["image"])
        episode = envs.run_expert(remote, options={"task": 3, "split": "test"})
        assert episode.success
    finally:
        remote.close()


def test_reachqa_loader_serves_records_from_local_files(tmp_path):
    Image.new("RGB", (200, 100), (200, 30, 30)).save(tmp_path / "chart.png")
    records = [
        {"question": "What is the peak?", "answer": "1,250", "image": "chart.png", "code": "plt.plot([1250])",
         "QA_type": "recognition", "major_chart_type": "line", "minor_chart_type": "line"},
        {"question": "Which colour?", "answer": "Red", "image": str(tmp_path / "chart.png"), "code": "",
         "QA_type": "reasoning", "major_chart_type": "bar", "minor_chart_type": "grouped bar"},
    ]  # fmt: skip
    path = tmp_path / "reachqa.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records))
    env = ChartQAEnv(data=str(path))
    observation, info = env.reset(options={"task": 0})
    assert observation["image"].shape == (*IMAGE_SHAPE, 3)
    assert (
        tuple(observation["image"][180, 240]) == (200, 30, 30)
        and tuple(observation["image"][5, 5]) == (255,) * 3
    )
    assert info["major_chart_type"] == "line" and info["QA_type"] == "recognition"
    assert env.step("Answer: 1260")[1] == 1.0
    env.reset(options={"task": 1})
    assert env.step("the red")[1] == 1.0
    observation, _ = ChartQAEnv(data=str(path), mode="code").reset(options={"task": 0})
    assert "plt.plot([1250])" in observation["text"]
    with pytest.raises(ValueError):
        ChartQAEnv(data=str(path), mode="table")
    with pytest.raises(TaskOptionError):
        env.reset(options={"task": 0, "mode": "table"})


def test_write_chart_data_writes_images_code_and_reachqa_records(tmp_path):
    assert write_chart_data(3, tmp_path, split="test") == 12
    records = [json.loads(line) for line in (tmp_path / "test.jsonl").read_text().splitlines()]
    assert [r["task"] for r in records] == list(range(12))
    assert [r["QA_type"] for r in records[:4]] == ["recognition"] * 2 + ["reasoning"] * 2
    for record in records:
        assert (tmp_path / record["image"]).read_bytes().startswith(b"\x89PNG")
        assert record["code"] == f"code/test_0_{record['chart']:06d}.py"  # a path, as ReachQA's releases
        assert (tmp_path / record["code"]).read_text() == plotting_code(make_chart(record["chart"], "test"))
    assert len(list((tmp_path / "code").glob("*.py"))) == 3
    for mode in ("image", "code"):
        env = ChartQAEnv(data=str(tmp_path / "test.jsonl"), mode=mode)
        local = envs.make("evol/ChartQA-v0", mode=mode)
        for task in (0, 5, 11):
            served, _ = env.reset(options={"task": task})
            own, _ = local.reset(options={"task": task, "split": "test"})
            assert np.array_equal(served["image"], own["image"]) and served["text"] == own["text"]
            assert env.step(env.expert_action())[4]["success"]


# ---- a multimodal agent sees the image observations -----------------------------------
TINY_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}:{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image>{% else %}{{ p['text'] }}{% endif %}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


def tiny_vision_checkpoint(path) -> str:
    """A random LLaVA (CLIP tower + Llama, a few thousand weights) with a character tokenizer."""
    pytest.importorskip("torch")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
    vocab = {token: i for i, token in enumerate(specials + [chr(c) for c in range(32, 127)] + ["\n"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )  # fmt: skip
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
        tokenizer=tokenizer, patch_size=14, chat_template=TINY_TEMPLATE, image_token="<image>",
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )  # fmt: skip
    text = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=8192, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=vocab["<image>"])
    LlavaForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)


def test_vision_agent_receives_image_observations_as_content_parts(tmp_path, env):
    from agents.base import AgentInput, SamplingParams
    from agents.hf_vision import HFVisionAgent
    from server.wire import encode_image

    agent = HFVisionAgent(tiny_vision_checkpoint(tmp_path / "tiny-llava"), device="cpu", seed=0)
    observation, info = env.reset(options={"task": 1, "split": "test"})
    image_turn = [
        {"type": "text", "text": observation["text"]},
        {"type": "image_url", "image_url": {"url": encode_image(observation["image"])}},
    ]
    conversations = [
        [{"role": "system", "content": info["instruction"]}, {"role": "user", "content": image_turn}],
        [{"role": "user", "content": image_turn}, {"role": "assistant", "content": "x"},
         {"role": "user", "content": image_turn}],
        [{"role": "user", "content": "code mode: text only"}],
    ]  # fmt: skip
    outputs = agent.act(
        [AgentInput(messages) for messages in conversations], SamplingParams(max_new_tokens=4)
    )
    assert len(outputs) == 3 and all(isinstance(output.text, str) for output in outputs)
    assert agent.last_image_counts == [1, 1, 0]  # older images of a conversation are dropped
    assert all(0 < output.tokens <= 4 for output in outputs)
    agent.close()


def test_a_data_files_plotting_code_is_shown_never_run(tmp_path):
    """ReachQA records carry code; only charts the generator built are ever executed."""
    Image.new("RGB", (200, 100), (200, 30, 30)).save(tmp_path / "chart.png")
    canary = tmp_path / "ran.txt"
    code = f"import os\nos.system('touch {canary}')\nopen('{canary}', 'w').write('x')"
    record = {"question": "Peak?", "answer": "1", "image": "chart.png", "code": code,
              "QA_type": "recognition", "major_chart_type": "line", "minor_chart_type": "line"}  # fmt: skip
    path = tmp_path / "reachqa.jsonl"
    path.write_text(json.dumps(record))
    for mode in ("image", "code"):
        env = ChartQAEnv(data=str(path), mode=mode)
        env.reset(options={"task": 0})
        env.step("Answer: 1")
        env.close()
    assert not canary.exists()
