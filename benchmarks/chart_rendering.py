"""Chart rendering: charts per second with N worker processes, and observation size per chart.

Renders charts 0..n-1 of the test split (all 18 chart types in turn) through
`ChartRenderer` (plotting code written and run in worker subprocesses, under the time
limit) from as many threads as workers, after a warm-up that starts the workers. Sizes:
the PNG the renderer writes, and the PNG data URL an env server sends for the observation
(`server.wire.encode_image`). Targets: >= 20 charts/s with 2 processes, <= 100 KB a chart.

    python benchmarks/chart_rendering.py [--charts 180] [--processes 1 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from envs.charts.chart import MINOR_TYPES  # noqa: E402
from envs.charts.render_workers import ChartRenderer  # noqa: E402
from envs.charts.synth import make_chart  # noqa: E402
from server.wire import encode_image  # noqa: E402


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes `pids` have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def throughput(charts: list, processes: int) -> tuple[float, float, list[bytes]]:
    """Charts per second rendering `charts` with `processes` workers (started before the clock),
    and the workers' CPU milliseconds per chart (what the rate would be bound by on idle cores)."""
    renderer = ChartRenderer(processes=processes)
    try:
        with ThreadPoolExecutor(processes) as pool:
            list(pool.map(renderer.render, charts[: processes * 4]))  # start every worker
            pids = [worker.process.pid for worker in renderer._all]
            cpu = cpu_seconds(pids)
            started = time.perf_counter()
            pngs = list(pool.map(renderer.render, charts))
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(pids) - cpu
    finally:
        renderer.close()
    return len(charts) / elapsed, cpu / len(charts) * 1000, pngs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charts", type=int, default=180)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args(argv)

    charts = [make_chart(index, "test") for index in range(args.charts)]
    results: dict = {"charts": args.charts, "throughput": {}}
    pngs: list[bytes] = []
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (others' work counts)")
    for processes in args.processes:
        rate, cpu_ms, pngs = throughput(charts, processes)
        results["throughput"][processes] = {
            "charts_per_s": round(rate, 1),
            "cpu_ms_per_chart": round(cpu_ms, 1),
        }
        print(
            f"{processes} process{'es' if processes > 1 else ''}: {rate:6.1f} charts/s "
            f"({cpu_ms:.1f} ms of worker CPU a chart: {processes * 1000 / cpu_ms:.0f}/s on idle cores)"
        )

    sizes: dict[str, list[int]] = defaultdict(list)
    wire: list[int] = []
    for chart, png in zip(charts, pngs):
        sizes[chart.minor].append(len(png))
    for png in pngs[: len(MINOR_TYPES) * 2]:
        wire.append(len(encode_image(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))))
    every = [len(png) for png in pngs]
    print(f"\nPNG bytes per chart: mean {np.mean(every) / 1024:.1f} KB, max {max(every) / 1024:.1f} KB")
    print(f"as a data URL on the wire: mean {np.mean(wire) / 1024:.1f} KB, max {max(wire) / 1024:.1f} KB")
    print("\n| chart type | mean KB | max KB |\n|---|---|---|")
    for minor in MINOR_TYPES:
        if sizes[minor]:
            print(f"| {minor} | {np.mean(sizes[minor]) / 1024:.1f} | {max(sizes[minor]) / 1024:.1f} |")
    results["png_kb"] = {"mean": round(np.mean(every) / 1024, 1), "max": round(max(every) / 1024, 1)}
    results["wire_kb"] = {"mean": round(np.mean(wire) / 1024, 1), "max": round(max(wire) / 1024, 1)}
    results["png_kb_by_type"] = {m: round(max(s) / 1024, 1) for m, s in sizes.items()}
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
