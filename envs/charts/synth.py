"""Chart synthesis through plotting code, after ReachQA's Code-as-Intermediary Translation.

A chart is structured data first (`Chart`: a topic, panels of labelled series, units),
then the matplotlib script that draws exactly that data (`plotting_code`: every number is
a literal in the code), then a PNG (`ChartRenderer`). Questions are written from the data
(`envs.charts.questions`), never from the picture; `chart_table` is the data as text.

- `make_chart(index, split, chart_type=None, seed=0)`: chart `index` of a split, the same
  on every machine. Chart types cycle through `CHART_TYPES` (minor type -> major type).
- `ChartRenderer(processes, timeout)`: renders charts in worker subprocesses. A worker
  receives the chart's *data*, writes the plotting code itself with `plotting_code` and
  runs it in a namespace that can import only matplotlib and numpy, under a time limit
  (a signal alarm in the worker, a deadline in the caller that kills a stuck worker).
  The platform therefore runs only code that its own generator wrote; pyplot's global
  state never meets the threads of an env server.
"""

from __future__ import annotations

import atexit
import builtins
import io
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.charts.code_guard import UnsafeCodeError, check_plotting_code

CHART_TYPES: dict[str, str] = {
    "grouped_bar": "bar",
    "stacked_bar": "bar",
    "horizontal_bar": "bar",
    "percentage_bar": "bar",
    "line": "line",
    "annotated_line": "line",
    "errorbar_line": "line",
    "pie": "pie",
    "donut": "pie",
    "scatter": "scatter",
    "stacked_area": "area",
    "histogram": "histogram",
    "box": "box",
    "heatmap": "heatmap",
    "radar": "radar",
    "bar_line": "overlay",
    "area_line": "overlay",
    "subplots": "subplots",
}
MINOR_TYPES = tuple(CHART_TYPES)
SPLIT_IDS = {"train": 0, "test": 1}
FIGSIZE = (4.8, 3.6)
DPI = 100
IMAGE_SHAPE = (360, 480)  # (height, width) of every rendered chart
PALETTE = {
    "tab:blue": "blue",
    "tab:orange": "orange",
    "tab:green": "green",
    "tab:red": "red",
    "tab:purple": "purple",
    "tab:brown": "brown",
    "tab:pink": "pink",
    "tab:gray": "gray",
}
HEATMAP_SHARE = 0.65  # of the plot width left to a heatmap beside its colorbar
CMAPS = ("YlGnBu", "OrRd", "Blues", "Greens", "PuRd")


@dataclass
class Panel:
    """One axes of a chart and the data it draws.

    `kind` is the minor type of the axes. Table kinds (bars, lines, areas, pie, heatmap,
    radar, overlays) use `labels` (x categories, slices, spokes, heatmap columns) and
    `data` (series name -> one value per label). Scatter uses `points` (name, x, y, group);
    histogram uses `samples` (one entry) and `bins` (edges); box uses `samples` (group ->
    observations). `colors` maps what a legend names (series, slices, groups) to a colour.
    """

    kind: str
    title: str
    metric: str
    unit: str
    label_noun: str
    series_noun: str = "series"
    labels: list[str] = field(default_factory=list)
    data: dict[str, list[float]] = field(default_factory=dict)
    ordered: bool = False
    decimals: int = 1
    colors: dict[str, str] = field(default_factory=dict)
    errors: dict[str, list[float]] = field(default_factory=dict)
    bars: list[str] = field(default_factory=list)  # overlay: series drawn as bars (or area); others as lines
    points: list[tuple[str, float, float, str]] = field(default_factory=list)
    x_metric: str = ""
    x_unit: str = ""
    samples: dict[str, list[float]] = field(default_factory=dict)
    bins: list[float] = field(default_factory=list)
    value_labels: bool = False
    cmap: str = "YlGnBu"


@dataclass
class Chart:
    """A synthesised chart: its types, topic, title and panels (one, or two for subplots)."""

    minor: str
    major: str
    topic: str
    title: str
    panels: list[Panel]
    split: str = "train"
    index: int = 0
    seed: int = 0


# ---- topics ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TableTopic:
    """A subject for labelled series: `axis` names the labels, `series_noun` the series."""

    name: str
    metric: str
    unit: str
    axis: str
    labels: tuple[str, ...]
    series_noun: str
    series: tuple[str, ...]
    low: float
    high: float
    decimals: int = 1
    ordered: bool = False  # the labels are a sequence in time: trends make sense


@dataclass(frozen=True)
class ScatterTopic:
    name: str
    entity: str
    entities: tuple[str, ...]
    x_metric: str
    x_unit: str
    x_range: tuple[float, float]
    y_metric: str
    y_unit: str
    y_range: tuple[float, float]
    groups: tuple[str, ...]
    decimals: int = 1


@dataclass(frozen=True)
class HistogramTopic:
    name: str
    metric: str
    unit: str
    item: str
    low: float
    high: float
    width: float
    decimals: int = 0


@dataclass(frozen=True)
class BoxTopic:
    name: str
    metric: str
    unit: str
    group: str
    groups: tuple[str, ...]
    low: float
    high: float
    decimals: int = 1


# fmt: off
YEARS = tuple(str(year) for year in range(2012, 2025))
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
QUARTERS = tuple(f"Q{q} {y}" for y in (2021, 2022, 2023, 2024) for q in (1, 2, 3, 4))
WEEKS = tuple(f"Week {w}" for w in range(1, 13))
HOURS = tuple(f"{h}:00" for h in range(6, 21, 2))
COUNTRIES = ("Germany", "France", "Spain", "Italy", "Poland", "Sweden", "Japan", "Brazil", "Canada", "India",
             "Kenya", "Mexico")
CITIES = ("Lisbon", "Oslo", "Cairo", "Lima", "Seoul", "Dublin", "Madrid", "Nairobi", "Quito", "Perth", "Boston",
          "Delhi")
REGIONS = ("North", "South", "East", "West", "Central")
DEPARTMENTS = ("Sales", "R&D", "Support", "Marketing", "Finance", "HR", "Operations", "Legal")
BRANDS = ("Apex", "Nimbus", "Orion", "Vertex", "Zenith", "Lumen")
PLATFORMS = ("Flixo", "Vidly", "Showbox", "Reelz", "Streamr")
RECENT_YEARS = ("2020", "2021", "2022", "2023", "2024")
CRITERIA = ("Taste", "Service", "Price", "Ambience", "Cleanliness", "Speed", "Menu")
SKILLS = ("Speed", "Strength", "Stamina", "Agility", "Technique", "Tactics", "Focus")
SPECS = ("CPU", "GPU", "Memory", "Storage", "Battery", "Camera", "Display")

TABLE_TOPICS = (
    TableTopic("Renewable electricity generation", "Generation", "TWh", "country", COUNTRIES, "source",
               ("Solar", "Wind", "Hydro", "Biomass", "Geothermal"), 5, 150),
    TableTopic("Coffee shop sales", "Cups sold", "thousand", "month", MONTHS, "drink",
               ("Espresso", "Latte", "Cappuccino", "Mocha", "Americano"), 2, 40, ordered=True),
    TableTopic("Smartphone shipments", "Shipments", "million units", "quarter", QUARTERS, "brand",
               BRANDS, 10, 80, ordered=True),
    TableTopic("University enrolment", "Students", "thousand", "year", YEARS, "faculty",
               ("Engineering", "Medicine", "Law", "Arts", "Science"), 1, 30, ordered=True),
    TableTopic("Website traffic", "Visits", "thousand", "month", MONTHS, "channel",
               ("Search", "Social", "Direct", "Email", "Referral"), 5, 120, ordered=True),
    TableTopic("Crop yields", "Yield", "t/ha", "region", REGIONS, "crop",
               ("Wheat", "Maize", "Rice", "Barley", "Soybean"), 1, 12),
    TableTopic("Public transport ridership", "Passengers", "million trips", "year", YEARS, "mode",
               ("Bus", "Metro", "Tram", "Rail", "Ferry"), 2, 90, ordered=True),
    TableTopic("Hospital admissions", "Admissions", "patients", "month", MONTHS, "department",
               ("Cardiology", "Oncology", "Pediatrics", "Neurology", "Orthopedics"), 50, 400, 0, True),
    TableTopic("Online course completions", "Completions", "learners", "course",
               ("Python", "Statistics", "Design", "Marketing", "Finance", "Writing", "Spanish"), "year",
               RECENT_YEARS, 100, 900, 0),
    TableTopic("Household spending", "Spending", "USD per month", "category",
               ("Housing", "Food", "Transport", "Health", "Leisure", "Education", "Clothing"), "area",
               ("Urban", "Suburban", "Rural"), 50, 1500, 0),
    TableTopic("Air pollution (PM2.5)", "PM2.5", "µg/m³", "city", CITIES, "season",
               ("Winter", "Spring", "Summer", "Autumn"), 5, 80),
    TableTopic("Museum visitors", "Visitors", "thousand", "month", MONTHS, "venue",
               ("Art Museum", "Science Center", "History Museum", "Aquarium"), 10, 150, ordered=True),
    TableTopic("Electric vehicle sales", "Sales", "thousand units", "year", YEARS, "country",
               COUNTRIES[:8], 5, 400, ordered=True),
    TableTopic("Employee headcount", "Employees", "people", "department", DEPARTMENTS, "year",
               RECENT_YEARS, 10, 300, 0),
    TableTopic("Water use", "Consumption", "million m³", "quarter", QUARTERS, "sector",
               ("Households", "Industry", "Agriculture", "Services"), 20, 300, ordered=True),
    TableTopic("Box office revenue", "Revenue", "million USD", "genre",
               ("Action", "Comedy", "Drama", "Horror", "Animation", "Sci-Fi", "Documentary"), "year",
               RECENT_YEARS, 20, 900),
    TableTopic("Library loans", "Loans", "thousand", "genre",
               ("Fiction", "Biography", "History", "Science", "Children's", "Poetry"), "branch",
               ("Central", "Riverside", "Hillcrest", "Oakwood"), 1, 60),
    TableTopic("Cloud service revenue", "Revenue", "billion USD", "quarter", QUARTERS, "provider",
               ("Stratus", "Cirrus", "Altus", "Nimbo"), 1, 30, ordered=True),
    TableTopic("Bird sightings", "Sightings", "birds", "month", MONTHS, "species",
               ("Robin", "Sparrow", "Finch", "Heron", "Owl"), 5, 250, 0, True),
    TableTopic("Restaurant ratings", "Rating", "points", "criterion", CRITERIA, "restaurant",
               ("Bistro Blue", "Casa Verde", "Golden Wok", "Le Petit"), 1, 5),
    TableTopic("Smartphone benchmark scores", "Score", "points", "component", SPECS, "phone",
               BRANDS, 40, 100, 0),
    TableTopic("Athlete assessment", "Score", "points", "skill", SKILLS, "athlete",
               ("Ava", "Ben", "Chloe", "Dev", "Eli"), 50, 100, 0),
    TableTopic("Solar panel output", "Output", "kWh", "hour", HOURS, "roof",
               ("Roof A", "Roof B", "Roof C"), 0.5, 9, ordered=True),
    TableTopic("Fish catch", "Catch", "thousand tonnes", "year", YEARS, "species",
               ("Cod", "Herring", "Mackerel", "Tuna", "Salmon"), 5, 200, ordered=True),
    TableTopic("Broadband subscribers", "Subscribers", "million", "year", YEARS, "technology",
               ("Fiber", "Cable", "DSL", "Satellite", "Fixed 5G"), 0.5, 40, ordered=True),
    TableTopic("Warehouse shipments", "Shipments", "pallets", "day",
               ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), "warehouse",
               ("Hub North", "Hub South", "Hub East"), 100, 900, 0, True),
    TableTopic("Tourist arrivals", "Arrivals", "million", "year", YEARS, "region",
               ("Europe", "Asia", "Americas", "Africa", "Oceania"), 1, 80, ordered=True),
    TableTopic("Carbon emissions", "Emissions", "Mt CO2", "sector",
               ("Energy", "Transport", "Industry", "Buildings", "Agriculture", "Waste"), "country",
               COUNTRIES[:6], 5, 400),
    TableTopic("Streaming hours", "Hours watched", "million hours", "month", MONTHS, "platform",
               PLATFORMS, 20, 500, ordered=True),
    TableTopic("Monthly rainfall", "Rainfall", "mm", "month", MONTHS, "city", CITIES[:6], 5, 250,
               ordered=True),
    TableTopic("Game downloads", "Downloads", "thousand", "week", WEEKS, "platform",
               ("iOS", "Android", "PC", "Console"), 5, 120, ordered=True),
    TableTopic("Retail store revenue", "Revenue", "thousand USD", "store", CITIES, "product line",
               ("Apparel", "Electronics", "Home", "Toys", "Sports"), 20, 600),
    TableTopic("Energy use by building", "Energy use", "MWh", "building",
               ("Library", "Gym", "Lab A", "Lab B", "Dorm 1", "Dorm 2", "Cafeteria"), "utility",
               ("Electricity", "Heating", "Cooling", "Hot water"), 10, 250),
)
SCATTER_TOPICS = (
    ScatterTopic("Income and life expectancy", "country", COUNTRIES, "GDP per capita", "thousand USD",
                 (5, 70), "Life expectancy", "years", (62, 84), ("OECD", "non-OECD")),
    ScatterTopic("Engine power and fuel use", "car",
                 ("Falcon", "Comet", "Pulse", "Drift", "Nova", "Ridge", "Sable", "Tempo", "Vista", "Bolt",
                  "Atlas", "Cruz"),
                 "Power", "kW", (50, 250), "Fuel use", "l/100 km", (4, 14), ("Petrol", "Diesel", "Hybrid")),
    ScatterTopic("Study time and exam results", "student",
                 ("Ana", "Ben", "Caro", "Dan", "Eva", "Finn", "Gia", "Hugo", "Ivy", "Jon", "Kai", "Lea"),
                 "Study time", "hours per week", (1, 25), "Exam score", "points", (35, 98),
                 ("Morning class", "Evening class")),
    ScatterTopic("Price and rating of appliances", "product",
                 ("Kettle", "Toaster", "Blender", "Mixer", "Fan", "Heater", "Lamp", "Router", "Speaker",
                  "Camera", "Drone", "Tablet"),
                 "Price", "USD", (20, 400), "Rating", "stars", (2.0, 5.0), ("Budget", "Premium")),
    ScatterTopic("City size and rent", "city", CITIES, "Population", "million", (0.5, 12), "Median rent",
                 "USD per month", (400, 2600), ("Coastal", "Inland", "Highland")),
    ScatterTopic("Startup funding and staff", "startup",
                 ("Quanta", "Brightly", "Mosaic", "Tidal", "Kernel", "Sprout", "Helix", "Pylon", "Vireo", "Wren",
                  "Ember", "Lattice"),
                 "Funding", "million USD", (1, 120), "Staff", "people", (5, 400), ("Fintech", "Health", "Climate"),
                 0),
)
HISTOGRAM_TOPICS = (
    HistogramTopic("Exam scores", "Score", "points", "student", 30, 100, 10),
    HistogramTopic("Commute times", "Commute time", "minutes", "employee", 0, 80, 10),
    HistogramTopic("Daily step counts", "Steps", "thousand steps", "day", 0, 20, 2.5, 1),
    HistogramTopic("Patient ages", "Age", "years", "patient", 0, 90, 15),
    HistogramTopic("Package weights", "Weight", "kg", "package", 0, 30, 5, 1),
    HistogramTopic("Call durations", "Duration", "minutes", "call", 0, 40, 5, 1),
    HistogramTopic("House sizes", "Floor area", "m²", "house", 40, 200, 20),
    HistogramTopic("Battery lifetimes", "Lifetime", "hours", "battery", 4, 16, 2, 1),
)
BOX_TOPICS = (
    BoxTopic("Delivery times by courier", "Delivery time", "hours", "courier",
             ("SwiftGo", "ParcelPro", "QuickShip", "RoadRunner", "ExpressLine"), 12, 96, 0),
    BoxTopic("Salaries by department", "Salary", "thousand USD", "department", DEPARTMENTS, 35, 140),
    BoxTopic("Battery life by phone", "Battery life", "hours", "phone", BRANDS, 8, 30),
    BoxTopic("Reaction times by age group", "Reaction time", "ms", "age group",
             ("18-29", "30-44", "45-59", "60-74", "75+"), 180, 520, 0),
    BoxTopic("Exam scores by class", "Score", "points", "class",
             ("Class A", "Class B", "Class C", "Class D", "Class E"), 35, 100, 0),
    BoxTopic("House prices by district", "Price", "thousand USD", "district",
             ("Old Town", "Harbor", "Uptown", "Parkside", "Riverside"), 150, 900, 0),
    BoxTopic("Fuel efficiency by vehicle type", "Efficiency", "km/l", "vehicle type",
             ("Sedan", "SUV", "Hatchback", "Pickup", "Van"), 6, 25),
)
# fmt: on


# ---- numbers --------------------------------------------------------------------------
def format_number(value: float, decimals: int = 2) -> str:
    """`value` rounded to `decimals`, without trailing zeros: 15.10 -> '15.1', 3.0 -> '3'."""
    text = f"{round(float(value), decimals):.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _round(value: float, decimals: int) -> float:
    return float(round(float(value), decimals))


def _literal(values: list[float], decimals: int) -> str:
    return "[" + ", ".join(format_number(v, decimals) for v in values) + "]"


def plural(noun: str) -> str:
    if noun.endswith(("species", "series")):
        return noun
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def bin_label(low: float, high: float) -> str:
    return f"{format_number(low)}-{format_number(high)}"


def box_stats(samples: list[float]) -> dict[str, Any]:
    """Matplotlib's box statistics (linear quartiles, whiskers at 1.5 IQR) of `samples`."""
    x = np.asarray(samples, dtype=float)
    q1, median, q3 = np.percentile(x, [25, 50, 75])
    iqr = q3 - q1
    low_whisker = float(x[x >= q1 - 1.5 * iqr].min())
    high_whisker = float(x[x <= q3 + 1.5 * iqr].max())
    outliers = sorted(float(v) for v in x if v < low_whisker or v > high_whisker)
    return {
        "q1": float(q1),
        "median": float(median),
        "q3": float(q3),
        "iqr": float(iqr),
        "low": low_whisker,
        "high": high_whisker,
        "outliers": outliers,
    }


def histogram_counts(samples: list[float], bins: list[float]) -> list[int]:
    counts, _ = np.histogram(np.asarray(samples, dtype=float), bins=np.asarray(bins, dtype=float))
    return [int(c) for c in counts]


# ---- data -----------------------------------------------------------------------------
def _distinct(draw, n: int, tries: int = 20) -> list[float]:
    """`draw()` until its n values are distinct (ties make 'which is largest' ambiguous)."""
    values = draw()
    for _ in range(tries):
        if len(set(values)) == n:
            break
        values = draw()
    return values


def _series(rng: np.random.Generator, topic: TableTopic, n: int, ordered: bool) -> list[float]:
    span = topic.high - topic.low

    def draw() -> list[float]:
        if not ordered:
            return [_round(v, topic.decimals) for v in rng.uniform(topic.low, topic.high, n)]
        value = rng.uniform(topic.low + 0.15 * span, topic.high - 0.15 * span)
        drift = rng.normal(0.0, 0.05)
        values = []
        for _ in range(n):
            values.append(_round(value, topic.decimals))
            value = float(np.clip(value * (1 + drift + rng.normal(0.0, 0.09)), topic.low, topic.high))
        return values

    return _distinct(draw, n)


def _pick_labels(rng: np.random.Generator, pool: tuple[str, ...], n: int, ordered: bool) -> list[str]:
    n = min(n, len(pool))
    if ordered:
        start = int(rng.integers(0, len(pool) - n + 1))
        return list(pool[start : start + n])
    return [pool[i] for i in sorted(rng.choice(len(pool), n, replace=False))]


def _colors(rng: np.random.Generator, keys: list[str]) -> dict[str, str]:
    names = list(PALETTE)
    order = rng.permutation(len(names))
    return {key: names[order[i % len(names)]] for i, key in enumerate(keys)}


def _table_panel(
    rng: np.random.Generator,
    kind: str,
    topic: TableTopic,
    n_labels: tuple[int, int],
    n_series: tuple[int, int],
    ordered: bool | None = None,
) -> Panel:
    ordered = topic.ordered if ordered is None else ordered
    labels = _pick_labels(rng, topic.labels, int(rng.integers(n_labels[0], n_labels[1] + 1)), ordered)
    series = _pick_labels(rng, topic.series, int(rng.integers(n_series[0], n_series[1] + 1)), False)
    data = {name: _series(rng, topic, len(labels), ordered) for name in series}
    return Panel(
        kind=kind,
        title=topic.name,
        metric=topic.metric,
        unit=topic.unit,
        label_noun=topic.axis,
        series_noun=topic.series_noun,
        labels=labels,
        data=data,
        ordered=ordered,
        decimals=topic.decimals,
        colors=_colors(rng, series),
        value_labels=bool(rng.random() < 0.5),
    )


def _table_chart(rng: np.random.Generator, minor: str) -> tuple[str, str, list[Panel]]:
    ordered_topics = [t for t in TABLE_TOPICS if t.ordered]
    topics = ordered_topics if minor in ("stacked_area", "area_line", "errorbar_line") else TABLE_TOPICS
    topic = topics[int(rng.integers(len(topics)))]
    shapes = {  # (labels, series) ranges per minor type
        "grouped_bar": ((4, 6), (2, 3)),
        "stacked_bar": ((4, 7), (2, 4)),
        "horizontal_bar": ((4, 7), (1, 3)),
        "percentage_bar": ((4, 6), (2, 4)),
        "line": ((5, 9), (2, 4)),
        "annotated_line": ((5, 8), (1, 3)),
        "errorbar_line": ((5, 8), (1, 2)),
        "stacked_area": ((6, 10), (2, 4)),
        "heatmap": ((4, 7), (3, 5)),
        "radar": ((5, 7), (2, 3)),
        "bar_line": ((4, 7), (2, 3)),
        "area_line": ((5, 9), (2, 2)),
    }
    if minor in ("pie", "donut"):
        # Slices are the topic's series (the parts) of one label (the whole).
        whole = topic.labels[int(rng.integers(len(topic.labels)))]
        slices = _pick_labels(rng, topic.series, int(rng.integers(3, 6)), False)
        values = _distinct(
            lambda: [_round(v, topic.decimals) for v in rng.uniform(topic.low, topic.high, len(slices))],
            len(slices),
        )
        panel = Panel(
            kind=minor,
            title=f"{topic.name}: {whole}",
            metric=topic.metric,
            unit=topic.unit,
            label_noun=topic.series_noun,
            series_noun=topic.axis,
            labels=slices,
            data={whole: values},
            decimals=topic.decimals,
            colors=_colors(rng, slices),
        )
        return topic.name, panel.title, [panel]
    if minor == "subplots":
        return _subplots(rng, topic)
    labels_range, series_range = shapes[minor]
    panel = _table_panel(rng, minor, topic, labels_range, series_range)
    if minor == "errorbar_line":
        panel.errors = {
            name: [
                max(_round(v * rng.uniform(0.04, 0.12), topic.decimals), 10.0**-topic.decimals)
                for v in values
            ]
            for name, values in panel.data.items()
        }
    if minor in ("bar_line", "area_line"):
        panel.bars = list(panel.data)[:-1]
    if minor == "heatmap":
        panel.cmap = CMAPS[int(rng.integers(len(CMAPS)))]
    if minor == "radar":
        panel.title = f"{topic.name} by {topic.axis}"
    return topic.name, panel.title, [panel]


def _subplots(rng: np.random.Generator, topic: TableTopic) -> tuple[str, str, list[Panel]]:
    """Two panels over the same labels; each draws its own series of the topic."""
    full = _table_panel(rng, "grouped_bar", topic, (4, 5), (2, 4))
    names = list(full.data)
    split_at = int(rng.integers(1, len(names)))
    kinds = [str(k) for k in rng.permutation(["grouped_bar", "line", "pie"])[:2]]
    panels = []
    for kind, group in zip(kinds, (names[:split_at], names[split_at:])):
        if kind == "pie" and len(group) > 1:
            kind = "line" if "line" not in kinds else "grouped_bar"
        panel = Panel(
            kind=kind,
            title=group[0] if len(group) == 1 else ", ".join(group[:-1]) + " and " + group[-1],
            metric=topic.metric,
            unit=topic.unit,
            label_noun=topic.axis,
            series_noun=topic.series_noun,
            labels=list(full.labels),
            data={name: full.data[name] for name in group},
            ordered=full.ordered,
            decimals=topic.decimals,
            colors=_colors(rng, list(full.labels)) if kind == "pie" else {n: full.colors[n] for n in group},
        )
        panels.append(panel)
    return topic.name, topic.name, panels


def _scatter(rng: np.random.Generator) -> tuple[str, str, list[Panel]]:
    topic = SCATTER_TOPICS[int(rng.integers(len(SCATTER_TOPICS)))]
    names = _pick_labels(rng, topic.entities, int(rng.integers(7, 12)), False)
    groups = list(topic.groups[: int(rng.integers(2, len(topic.groups) + 1))])
    (x_low, x_high), (y_low, y_high) = topic.x_range, topic.y_range
    slope = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.9)

    def draw() -> list[float]:
        return [_round(v, topic.decimals) for v in rng.uniform(x_low, x_high, len(names))]

    xs = _distinct(draw, len(names))
    ys_raw = [
        (y_low + y_high) / 2 + slope * (x - (x_low + x_high) / 2) * (y_high - y_low) / (x_high - x_low)
        for x in xs
    ]
    ys = _distinct(
        lambda: [
            _round(np.clip(y + rng.normal(0, 0.15 * (y_high - y_low)), y_low, y_high), topic.decimals)
            for y in ys_raw
        ],
        len(names),
    )
    group_of = [groups[i % len(groups)] for i in rng.permutation(len(names))]
    panel = Panel(
        kind="scatter",
        title=topic.name,
        metric=topic.y_metric,
        unit=topic.y_unit,
        label_noun=topic.entity,
        series_noun="group",
        labels=list(names),
        points=[(n, x, y, g) for n, x, y, g in zip(names, xs, ys, group_of)],
        x_metric=topic.x_metric,
        x_unit=topic.x_unit,
        decimals=topic.decimals,
        colors=_colors(rng, groups),
    )
    return topic.name, topic.name, [panel]


def _histogram(rng: np.random.Generator) -> tuple[str, str, list[Panel]]:
    topic = HISTOGRAM_TOPICS[int(rng.integers(len(HISTOGRAM_TOPICS)))]
    bins = [_round(v, 2) for v in np.arange(topic.low, topic.high + topic.width / 2, topic.width)]
    n = int(rng.integers(40, 90))
    center = rng.uniform(
        topic.low + 0.3 * (topic.high - topic.low), topic.high - 0.3 * (topic.high - topic.low)
    )
    spread = rng.uniform(0.15, 0.25) * (topic.high - topic.low)
    # Why the margin: a value exactly at the top edge falls in the last bin in numpy but reads ambiguously.
    top = topic.high - 10.0**-topic.decimals
    samples = [_round(np.clip(v, topic.low, top), topic.decimals) for v in rng.normal(center, spread, n)]
    panel = Panel(
        kind="histogram",
        title=f"{topic.name} ({n} {plural(topic.item)})",
        metric=topic.metric,
        unit=topic.unit,
        label_noun="bin",
        series_noun=topic.item,
        labels=[bin_label(a, b) for a, b in zip(bins[:-1], bins[1:])],
        samples={topic.item: samples},
        bins=bins,
        decimals=topic.decimals,
        colors={topic.item: list(PALETTE)[int(rng.integers(len(PALETTE)))]},
    )
    return topic.name, panel.title, [panel]


def _box(rng: np.random.Generator) -> tuple[str, str, list[Panel]]:
    topic = BOX_TOPICS[int(rng.integers(len(BOX_TOPICS)))]
    groups = _pick_labels(rng, topic.groups, int(rng.integers(3, 6)), False)
    span = topic.high - topic.low
    samples = {}
    for group in groups:
        center = rng.uniform(topic.low + 0.3 * span, topic.high - 0.3 * span)
        spread = rng.uniform(0.04, 0.1) * span
        values = list(rng.normal(center, spread, int(rng.integers(12, 25))))
        values += list(center + rng.choice([-1, 1], int(rng.integers(0, 3))) * rng.uniform(4, 6) * spread)
        samples[group] = [_round(np.clip(v, topic.low, topic.high), topic.decimals) for v in values]
    panel = Panel(
        kind="box",
        title=topic.name,
        metric=topic.metric,
        unit=topic.unit,
        label_noun=topic.group,
        series_noun=topic.group,
        labels=groups,
        samples=samples,
        decimals=topic.decimals,
        colors=_colors(rng, groups),
    )
    return topic.name, topic.name, [panel]


def make_chart(index: int, split: str = "train", chart_type: str | None = None, seed: int = 0) -> Chart:
    """Chart `index` of `split` (type `MINOR_TYPES[index % 18]` unless `chart_type` names one).

    The same arguments give the same chart everywhere; train and test draw from disjoint
    random streams; `seed` selects another family of charts (0 is the env's).
    """
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {list(SPLIT_IDS)}, got {split!r}")
    minor = chart_type or MINOR_TYPES[index % len(MINOR_TYPES)]
    if minor not in CHART_TYPES:
        raise ValueError(f"unknown chart type {minor!r}; known: {', '.join(MINOR_TYPES)}")
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index, MINOR_TYPES.index(minor)])
    if minor == "scatter":
        topic, title, panels = _scatter(rng)
    elif minor == "histogram":
        topic, title, panels = _histogram(rng)
    elif minor == "box":
        topic, title, panels = _box(rng)
    else:
        topic, title, panels = _table_chart(rng, minor)
    return Chart(minor, CHART_TYPES[minor], topic, title, panels, split, index, seed)


# ---- plotting code --------------------------------------------------------------------
def _axis_title(metric: str, unit: str) -> str:
    return f"{metric} ({unit})" if unit else metric


def _tick_style(labels: list[str], width: float) -> str:
    """Rotate x tick labels when they would not fit side by side in `width` (figure fraction)."""
    if sum(len(label) + 2 for label in labels) * 0.0125 > width:
        return ', rotation=30, ha="right"'
    return ""


def _legend(panel: Panel, outside: bool) -> str:
    if outside:
        return 'ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)'
    return 'ax.legend(fontsize=6, loc="best")'


def _data_lines(panel: Panel, s: str) -> list[str]:
    """The literal data of one panel (variable names end with `s`)."""
    d = panel.decimals
    lines = [f"# {panel.title}: {_axis_title(panel.metric, panel.unit)}"]
    if panel.kind == "scatter":
        lines.append(f"# points: ({panel.label_noun}, {panel.x_metric}, {panel.metric}, group)")
        lines.append(f"points{s} = [")
        lines += [
            f"    ({name!r}, {format_number(x, d)}, {format_number(y, d)}, {g!r}),"
            for name, x, y, g in panel.points
        ]
        lines.append("]")
    elif panel.kind == "histogram":
        (samples,) = panel.samples.values()
        lines.append(f"samples{s} = {_literal(samples, d)}")
        lines.append(f"bins{s} = {_literal(panel.bins, 2)}")
    elif panel.kind == "box":
        lines.append(f"samples{s} = {{")
        lines += [f"    {name!r}: {_literal(values, d)}," for name, values in panel.samples.items()]
        lines.append("}")
    else:
        lines.append(f"labels{s} = {panel.labels!r}")
        lines.append(f"data{s} = {{")
        lines += [f"    {name!r}: {_literal(values, d)}," for name, values in panel.data.items()]
        lines.append("}")
        if panel.errors:
            lines.append(f"errors{s} = {{")
            lines += [f"    {name!r}: {_literal(values, d)}," for name, values in panel.errors.items()]
            lines.append("}")
    if panel.colors and panel.kind not in ("heatmap", "histogram"):
        lines.append(f"colors{s} = {panel.colors!r}")
    return lines


def _draw_lines(panel: Panel, s: str, width: float, outside_legend: bool) -> list[str]:
    """Code drawing one panel on the axes `ax`."""
    k, d = panel.kind, panel.decimals
    fmt = f'"%.{d}f"'
    y_title = repr(_axis_title(panel.metric, panel.unit))
    ticks = _tick_style(panel.labels, width * HEATMAP_SHARE if panel.kind == "heatmap" else width)
    many = len(panel.data) > 1
    out: list[str] = []
    if k in ("grouped_bar", "horizontal_bar"):
        bar, pos = ("barh", "y") if k == "horizontal_bar" else ("bar", "x")
        out += [
            f"{pos} = np.arange(len(labels{s}))",
            f"size = 0.8 / len(data{s})",
            f"for i, (name, values) in enumerate(data{s}.items()):",
            f"    offset = (i - (len(data{s}) - 1) / 2) * size",
            f"    bars = ax.{bar}({pos} + offset, values, size, label=name, color=colors{s}[name])",
        ]
        if panel.value_labels:
            out.append(f"    ax.bar_label(bars, fmt={fmt}, fontsize=6, padding=1)")
        if k == "horizontal_bar":
            out += [f"ax.set_yticks(y, labels{s})", "ax.invert_yaxis()", f"ax.set_xlabel({y_title})"]
        else:
            out += [f"ax.set_xticks(x, labels{s}{ticks})", f"ax.set_ylabel({y_title})"]
    elif k == "stacked_bar":
        out += [
            f"x = np.arange(len(labels{s}))",
            f"bottom = np.zeros(len(labels{s}))",
            f"for name, values in data{s}.items():",
            f"    bars = ax.bar(x, values, 0.6, bottom=bottom, label=name, color=colors{s}[name])",
        ]
        if panel.value_labels:
            out.append(f'    ax.bar_label(bars, fmt={fmt}, label_type="center", fontsize=6)')
        out += [
            "    bottom += np.array(values)",
            f"ax.set_xticks(x, labels{s}{ticks})",
            f"ax.set_ylabel({y_title})",
        ]
    elif k == "percentage_bar":
        out += [
            f"x = np.arange(len(labels{s}))",
            f"values = np.array(list(data{s}.values()), dtype=float)",
            "shares = values / values.sum(axis=0) * 100",
            f"bottom = np.zeros(len(labels{s}))",
            f"for name, share in zip(data{s}, shares):",
            f"    bars = ax.bar(x, share, 0.6, bottom=bottom, label=name, color=colors{s}[name])",
            '    ax.bar_label(bars, fmt="%.1f%%", label_type="center", fontsize=6)',
            "    bottom += share",
            f"ax.set_xticks(x, labels{s}{ticks})",
            "ax.set_ylim(0, 100)",
            f"ax.set_ylabel({'Share of ' + panel.metric.lower() + ' (%)'!r})",
        ]
    elif k in ("line", "annotated_line", "errorbar_line"):
        out += [f"x = np.arange(len(labels{s}))", f"for name, values in data{s}.items():"]
        if k == "errorbar_line":
            out.append(
                f'    ax.errorbar(x, values, yerr=errors{s}[name], marker="o", markersize=3, capsize=3, '
                f"label=name, color=colors{s}[name])"
            )
        else:
            out.append(f'    ax.plot(x, values, marker="o", markersize=3, label=name, color=colors{s}[name])')
        if k == "annotated_line":
            if many:
                out += [
                    "    peak = int(np.argmax(values))",
                    f'    ax.annotate(f"peak {{values[peak]:.{d}f}}", (x[peak], values[peak]), '
                    'textcoords="offset points", xytext=(0, 6), ha="center", fontsize=6, color=colors'
                    f"{s}[name])",
                ]
            else:
                out += [
                    "    for xi, value in zip(x, values):",
                    f'        ax.annotate(f"{{value:.{d}f}}", (xi, value), textcoords="offset points", '
                    'xytext=(0, 5), ha="center", fontsize=6)',
                ]
        out += [f"ax.set_xticks(x, labels{s}{ticks})", f"ax.set_ylabel({y_title})"]
        if k == "annotated_line":
            out.append("ax.margins(x=0.08, y=0.15)")
    elif k == "stacked_area":
        out += [
            f"x = np.arange(len(labels{s}))",
            f"ax.stackplot(x, *data{s}.values(), labels=list(data{s}), "
            f"colors=[colors{s}[name] for name in data{s}], alpha=0.85)",
            f"ax.set_xticks(x, labels{s}{ticks})",
            f"ax.set_xlim(0, len(labels{s}) - 1)",
            f"ax.set_ylabel({y_title})",
        ]
    elif k in ("bar_line", "area_line"):
        out += [f"x = np.arange(len(labels{s}))", f"under = {panel.bars!r}"]
        if k == "bar_line":
            out += [
                "size = 0.8 / len(under)",
                "for i, name in enumerate(under):",
                "    offset = (i - (len(under) - 1) / 2) * size",
                f"    bars = ax.bar(x + offset, data{s}[name], size, label=name, color=colors{s}[name])",
            ]
            if panel.value_labels:
                out.append(f"    ax.bar_label(bars, fmt={fmt}, fontsize=6, padding=1)")
        else:
            out += [
                "for name in under:",
                f"    ax.fill_between(x, data{s}[name], alpha=0.4, label=name, color=colors{s}[name])",
            ]
        out += [
            f"for name, values in data{s}.items():",
            "    if name not in under:",
            f'        ax.plot(x, values, marker="o", linewidth=2, label=name, color=colors{s}[name])',
            f"ax.set_xticks(x, labels{s}{ticks})",
            f"ax.set_ylabel({y_title})",
        ]
    elif k in ("pie", "donut"):
        (whole,) = panel.data
        ring = ", wedgeprops={'width': 0.45}, pctdistance=0.78" if k == "donut" else ""
        out += [
            f"ax.pie(data{s}[{whole!r}], labels=labels{s}, colors=[colors{s}[label] for label in labels{s}], "
            f'autopct="%1.1f%%", startangle=90, counterclock=False, textprops={{"fontsize": 7}}{ring})',
            'ax.axis("equal")',
        ]
        if k == "donut":
            out.append(
                f'ax.text(0, 0, f"Total\\n{{sum(data{s}[{whole!r}]):.{d}f}} {panel.unit}", '
                'ha="center", va="center", fontsize=8)'
            )
    elif k == "heatmap":
        out += [
            f"matrix = np.array(list(data{s}.values()), dtype=float)",
            f'image = ax.imshow(matrix, cmap="{panel.cmap}", aspect="auto")',
            f"ax.set_xticks(range(len(labels{s})), labels{s}{ticks})",
            f"ax.set_yticks(range(len(data{s})), list(data{s}))",
            "dark = matrix.min() + 0.6 * (matrix.max() - matrix.min())",
            "for i, row in enumerate(matrix):",
            "    for j, value in enumerate(row):",
            f'        ax.text(j, i, f"{{value:.{d}f}}", ha="center", va="center", fontsize=6, '
            'color="white" if value > dark else "black")',
            f"fig.colorbar(image, ax=ax, label={y_title})",
        ]
    elif k == "radar":
        out += [
            f"angles = np.linspace(0, 2 * np.pi, len(labels{s}), endpoint=False).tolist()",
            f"for name, values in data{s}.items():",
            "    ax.plot(angles + angles[:1], values + values[:1], linewidth=1.5, label=name, "
            f"color=colors{s}[name])",
            f"    ax.fill(angles + angles[:1], values + values[:1], alpha=0.12, color=colors{s}[name])",
            "ax.set_theta_offset(np.pi / 2)",
            "ax.set_theta_direction(-1)",
            f"ax.set_xticks(angles, labels{s})",
            'ax.tick_params(axis="y", labelsize=6)',
        ]
    elif k == "scatter":
        out += [
            f"for group in colors{s}:",
            f"    xs = [p[1] for p in points{s} if p[3] == group]",
            f"    ys = [p[2] for p in points{s} if p[3] == group]",
            f"    ax.scatter(xs, ys, s=25, label=group, color=colors{s}[group])",
            f"for name, xv, yv, _ in points{s}:",
            '    ax.annotate(name, (xv, yv), textcoords="offset points", xytext=(3, 3), fontsize=6)',
            f"ax.set_xlabel({_axis_title(panel.x_metric, panel.x_unit)!r})",
            f"ax.set_ylabel({y_title})",
        ]
    elif k == "histogram":
        (color,) = panel.colors.values()
        out += [
            f'counts, edges, bars = ax.hist(samples{s}, bins=bins{s}, color="{color}", edgecolor="white")',
            "ax.bar_label(bars, fontsize=7)",
            "ax.yaxis.get_major_locator().set_params(integer=True)",
            f"ax.set_xticks(bins{s})",
            f"ax.set_xlabel({_axis_title(panel.metric, panel.unit)!r})",
            f"ax.set_ylabel({'Number of ' + plural(panel.series_noun)!r})",
        ]
    elif k == "box":
        out += [
            f"parts = ax.boxplot(list(samples{s}.values()), patch_artist=True, widths=0.5)",
            f"for box, name in zip(parts['boxes'], samples{s}):",
            f"    box.set_facecolor(colors{s}[name])",
            "    box.set_alpha(0.7)",
            f"ax.set_xticks(range(1, len(samples{s}) + 1), list(samples{s}){ticks})",
            f"ax.set_ylabel({y_title})",
        ]
    else:
        raise ValueError(f"no drawing code for panel kind {k!r}")
    legend = (many and k not in ("pie", "donut", "heatmap")) or (k == "scatter" and len(panel.colors) > 1)
    if legend:
        out.append(_legend(panel, outside_legend))
    if k not in ("pie", "donut") and k != "radar":
        out.append('ax.grid(axis="y", alpha=0.3)' if k != "heatmap" else "ax.grid(False)")
    return out


def _margins(chart: Chart) -> dict[str, float]:
    panel = chart.panels[0]
    if len(chart.panels) > 1:
        return {"left": 0.1, "right": 0.97, "top": 0.84, "bottom": 0.24, "wspace": 0.35}
    if panel.kind in ("pie", "donut"):
        return {"left": 0.05, "right": 0.95, "top": 0.88, "bottom": 0.05}
    if panel.kind == "radar":
        return {"left": 0.08, "right": 0.72, "top": 0.82, "bottom": 0.08}
    right = 0.97
    keys = list(panel.colors) if panel.kind == "scatter" else list(panel.data)
    if len(keys) > 1 and panel.kind not in ("heatmap",):
        right = 0.97 - (0.1 + 0.0125 * max(len(key) for key in keys))  # room for the legend outside
    left = 0.12
    if panel.kind in ("horizontal_bar", "heatmap"):
        names = panel.labels if panel.kind == "horizontal_bar" else list(panel.data)
        left = min(0.4, 0.06 + 0.013 * max(len(name) for name in names))
        if panel.kind == "heatmap":
            right = 0.98
    labels = [bin_label(a, b) for a, b in zip(panel.bins, panel.bins[1:])] if panel.bins else panel.labels
    width = (right - left) * (HEATMAP_SHARE if panel.kind == "heatmap" else 1.0)  # as `_draw_lines` decides
    rotated = bool(_tick_style(labels, width)) and panel.kind not in (
        "horizontal_bar",
        "scatter",
        "histogram",
    )
    bottom = 0.12 + (0.01 * max(len(label) for label in labels) if rotated else 0.0)
    return {"left": left, "right": right, "top": 0.9, "bottom": min(bottom, 0.3)}


def plotting_code(chart: Chart) -> str:
    """The matplotlib script that draws `chart` (it builds `fig`; the data are literals)."""
    lines = [
        "import matplotlib.pyplot as plt",
        "import numpy as np",
        "",
        'plt.rcParams.update({"font.size": 8})',
        "",
    ]
    multi = len(chart.panels) > 1
    suffixes = [f"_{i + 1}" if multi else "" for i in range(len(chart.panels))]
    for panel, s in zip(chart.panels, suffixes):
        lines += _data_lines(panel, s) + [""]
    size = f"figsize={FIGSIZE}, dpi={DPI}"
    margins = _margins(chart)
    if multi:
        lines.append(f"fig, axes = plt.subplots(1, {len(chart.panels)}, {size})")
        lines.append(f"fig.suptitle({chart.title!r}, fontsize=10)")
        width = (margins["right"] - margins["left"]) / len(chart.panels)
        for i, (panel, s) in enumerate(zip(chart.panels, suffixes)):
            lines += ["", f"ax = axes[{i}]", f"ax.set_title({panel.title!r}, fontsize=8)"]
            lines += _draw_lines(panel, s, width, outside_legend=False)
    else:
        (panel,) = chart.panels
        if panel.kind == "radar":
            lines += [f"fig = plt.figure({size})", 'ax = fig.add_subplot(projection="polar")']
        else:
            lines.append(f"fig, ax = plt.subplots({size})")
        pad = ", pad=14" if panel.kind == "radar" else ""
        lines.append(f"ax.set_title({chart.title!r}, fontsize=10{pad})")
        lines += _draw_lines(panel, "", margins["right"] - margins["left"], outside_legend=True)
    adjust = ", ".join(f"{key}={value:.3f}" for key, value in margins.items())
    lines += ["", f"fig.subplots_adjust({adjust})", ""]
    return "\n".join(lines)


# ---- the data as a table --------------------------------------------------------------
def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def chart_table(chart: Chart) -> str:
    """The chart's data as Markdown tables: what a chart-to-table reader would extract.

    Table kinds list every value (rows = labels, columns = series); scatter lists the
    points; histogram the bin counts; box the five-number summary and outliers of each group.
    """
    parts = [f"Chart: {chart.title} ({chart.major} chart, {chart.minor.replace('_', ' ')})"]
    for i, panel in enumerate(chart.panels):
        if len(chart.panels) > 1:
            parts.append(
                f"Subplot {i + 1} of {len(chart.panels)} ({panel.kind.replace('_', ' ')}): {panel.title}"
            )
        unit = f" ({panel.unit})" if panel.unit else ""
        d = panel.decimals
        if panel.kind == "scatter":
            header = [
                panel.label_noun,
                _axis_title(panel.x_metric, panel.x_unit),
                panel.metric + unit,
                "group",
            ]
            rows = [[n, format_number(x, d), format_number(y, d), g] for n, x, y, g in panel.points]
        elif panel.kind == "histogram":
            (samples,) = panel.samples.values()
            header = [f"{panel.metric}{unit} bin", f"number of {plural(panel.series_noun)}"]
            counts = histogram_counts(samples, panel.bins)
            rows = [[label, str(c)] for label, c in zip(panel.labels, counts)]
        elif panel.kind == "box":
            header = [panel.label_noun, "lower whisker", "Q1", "median", "Q3", "upper whisker", "outliers"]
            rows = []
            for name, values in panel.samples.items():
                st = box_stats(values)
                stats = [format_number(st[key]) for key in ("low", "q1", "median", "q3", "high")]
                rows.append([name, *stats, ", ".join(format_number(v) for v in st["outliers"]) or "none"])
            parts.append(f"{panel.metric}{unit}")
        else:
            header = [panel.label_noun, *(f"{name}{unit}" for name in panel.data)]
            rows = [
                [label, *(format_number(values[j], d) for values in panel.data.values())]
                for j, label in enumerate(panel.labels)
            ]
            if panel.errors:
                header += [f"{name} error (±)" for name in panel.errors]
                for j, row in enumerate(rows):
                    row += [format_number(values[j], d) for values in panel.errors.values()]
            if panel.bars:
                drawn = "area" if panel.kind == "area_line" else "bars"
                parts.append(f"Drawn as {drawn}: {', '.join(panel.bars)}; the rest as lines.")
        parts.append(_markdown(header, rows))
    return "\n\n".join(parts)


# ---- running the code -----------------------------------------------------------------
SAFE_BUILTINS = {
    name: getattr(builtins, name)
    for name in (
        "abs",
        "dict",
        "enumerate",
        "float",
        "int",
        "isinstance",
        "len",
        "list",
        "max",
        "min",
        "range",
        "round",
        "sorted",
        "str",
        "sum",
        "tuple",
        "zip",
    )
}


class RenderError(RuntimeError):
    """Plotting code failed, ran past its time limit, or its worker died."""


def _guarded_import(name: str, globals=None, locals=None, fromlist=(), level: int = 0):
    # Any submodule: numpy's C code imports its own lazily through the running frame's
    # builtins. The code's own imports are held to `ALLOWED_MODULES` by `check_plotting_code`.
    if level == 0 and name.split(".")[0] in ("matplotlib", "numpy"):
        return __import__(name, globals, locals, fromlist, level)
    raise ImportError(f"plotting code may import only matplotlib and numpy, not {name!r}")


def run_plotting_code(code: str) -> Any:
    """Run plotting code in a namespace without file, network or process access; return `fig`.

    The code must first pass `check_plotting_code` (a whitelist of syntax, modules and
    names: no dunders, no imports beyond numpy and pyplot's kin, no `getattr`/`eval`/`open`,
    no file-writing attributes); it then runs with restricted builtins and a guarded
    import. Not a sandbox on its own (see `envs.charts.code_guard`): the platform runs
    only what `plotting_code` wrote, in a render worker under a time limit.
    """
    try:
        check_plotting_code(code)
    except UnsafeCodeError as error:
        raise RenderError(f"plotting code refused: {error}") from None
    namespace: dict[str, Any] = {
        "__builtins__": {**SAFE_BUILTINS, "__import__": _guarded_import},
        "__name__": "chart",
    }
    exec(compile(code, "<chart>", "exec"), namespace)
    if "fig" not in namespace:
        raise RenderError("plotting code did not build `fig`")
    return namespace["fig"]


def render_png(chart: Chart, timeout: float | None = None) -> bytes:
    """Write and run `chart`'s plotting code here (the Agg backend) and return the PNG.

    With `timeout`, a signal alarm bounds the run; signals work in the main thread only,
    so elsewhere the timeout is not armed (render workers call this from their main thread,
    and their caller's deadline kills a stuck worker).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    def expire(signum: int, frame: Any) -> None:
        raise RenderError(f"rendering ran past its {timeout} s limit")

    if threading.current_thread() is not threading.main_thread():
        timeout = None
    if timeout:
        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        fig = run_plotting_code(plotting_code(chart))
        try:
            fig.canvas.draw()
            pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        finally:
            plt.close(fig)
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


_HEADER = struct.Struct("!I")


def _write_message(stream: Any, payload: Any) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def serve_renders() -> None:
    """A render worker's loop: charts in on stdin, `("ok", png)` or `("error", text)` out."""
    os.environ["MPLBACKEND"] = "Agg"
    source, sink = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints must not corrupt the protocol
    import matplotlib.pyplot  # noqa: F401 (loaded once, before the first chart)

    _write_message(sink, ("ready", None))
    while True:
        header = source.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return  # the parent closed the pipe or died
        (size,) = _HEADER.unpack(header)
        chart, timeout = pickle.loads(source.read(size))
        try:
            answer = ("ok", render_png(chart, timeout))
        except Exception as error:
            answer = ("error", f"{type(error).__name__}: {error}")
        _write_message(sink, answer)


class _Worker:
    def __init__(self, start_timeout: float):
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from envs.charts.synth import serve_renders; serve_renders()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        status, _ = self.receive(time.monotonic() + start_timeout)
        if status != "ready":
            raise RenderError("render worker failed to start")

    def _read(self, n: int, deadline: float) -> bytes:
        fd = self.process.stdout.fileno()
        chunks = []
        while n:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(fd, n)
            if not chunk:
                raise RenderError(f"render worker exited with code {self.process.poll()}")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def receive(self, deadline: float) -> tuple[str, Any]:
        (size,) = _HEADER.unpack(self._read(_HEADER.size, deadline))
        return pickle.loads(self._read(size, deadline))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()


class ChartRenderer:
    """Renders charts to PNG in up to `processes` worker subprocesses, each call under `timeout`.

    Thread-safe: each call takes an idle worker (starting one while fewer than
    `processes` run). The worker's alarm stops code that runs past `timeout`; a worker
    still silent `grace` seconds later is killed (and replaced on demand).
    """

    def __init__(
        self, processes: int = 1, timeout: float = 10.0, grace: float = 5.0, start_timeout: float = 60.0
    ):
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self.processes = processes
        self.timeout = timeout
        self.grace = grace  # beyond the worker's own alarm, before the worker is killed
        self.start_timeout = start_timeout
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()

    def _take(self) -> _Worker:
        while True:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                start = len(self._all) < self.processes
                if start:
                    self._all.append(None)  # reserve the slot while the worker starts
            if start:
                break
            try:  # all busy: wait, and look again in case a killed worker freed a slot
                return self._idle.get(timeout=0.2)
            except queue.Empty:
                continue
        try:
            worker = _Worker(self.start_timeout)
        except BaseException:
            with self._lock:
                self._all.remove(None)
            raise
        with self._lock:
            self._all[self._all.index(None)] = worker
        return worker

    def _drop(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.remove(worker)

    def render(self, chart: Chart) -> bytes:
        """The PNG of `chart` (raises `RenderError` on failure or timeout)."""
        worker = self._take()
        try:
            _write_message(worker.process.stdin, (chart, self.timeout))
            status, payload = worker.receive(time.monotonic() + self.timeout + self.grace)
        except TimeoutError:
            self._drop(worker)
            raise RenderError(
                f"rendering chart {chart.index} ({chart.minor}) ran past {self.timeout} s"
            ) from None
        except (OSError, RenderError) as error:
            self._drop(worker)
            raise RenderError(f"render worker failed: {error}") from None
        self._idle.put(worker)
        if status != "ok":
            raise RenderError(f"chart {chart.index} ({chart.minor}): {payload}")
        return payload

    def close(self) -> None:
        with self._lock:
            workers, self._all = [w for w in self._all if w is not None], []
        for worker in workers:
            worker.kill()
        self._idle = queue.LifoQueue()


_shared: ChartRenderer | None = None
_shared_lock = threading.Lock()


def shared_renderer() -> ChartRenderer:
    """The process's renderer (`EVOL_CHART_RENDERERS` worker processes, default 2)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ChartRenderer(processes=int(os.environ.get("EVOL_CHART_RENDERERS", "2")))
            atexit.register(_shared.close)
        return _shared
