"""Screenshots of the three pages for the README, made again with one command:

    python benchmarks/ui_screenshots.py [--run runs/quickstart] [--out docs/img]

1. `play.png`: the page at /ui of `evol serve evol/BabyAI-v0 evol/ChartQA-v0`, a BabyAI test
   task played by the expert button to its end; `play_chart.png`: a ChartQA task (its image).
2. `trajectories.png`: `evol view` on the run's held-out trajectories after behaviour cloning.
3. `run.png`: `evol view` on the run directory (learning curve, phase timings, files).

The run directory is `--run` (default runs/quickstart); when it does not exist,
`evol quickstart --fast --out RUN` makes one first (about 2 minutes on 2 cores). Needs
Chromium (`apt-get install -y chromium`) and Playwright (the test extra).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from server.launch import LaunchedServer

VIEWPORT = {"width": 1280, "height": 900}


class EvolServe(LaunchedServer):
    command = (sys.executable, "-m", "evol.cli", "serve")


class EvolView(LaunchedServer):
    """`evol view PATH`: LaunchedServer passes PATH where a server takes env ids."""

    command = (sys.executable, "-m", "evol.cli", "view")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise SystemExit("needs Chromium: apt-get install -y chromium")
    return path


def ensure_run(run: Path) -> None:
    if (run / "metrics.jsonl").exists():
        return
    print(f"{run} holds no run: making one with evol quickstart --fast", flush=True)
    subprocess.run([sys.executable, "-m", "evol.cli", "quickstart", "--fast", "--out", str(run)], check=True)


def shoot_play(page, out: Path) -> None:
    with EvolServe(["evol/BabyAI-v0", "evol/ChartQA-v0"], "--workers", "1") as server:
        page.goto(f"{server.url}/ui")
        page.click(".env-pick[data-env='evol/BabyAI-v0']")
        page.fill("#opt-task", "3")
        page.select_option("#opt-split", label="test")
        page.click("#reset")
        expect(page.locator("#turns li")).to_have_count(1)
        for turn in range(2, 30):
            if page.locator("#outcome").is_visible():
                break
            page.click("#expert-play")
            expect(page.locator("#turns li")).to_have_count(turn)
        page.screenshot(path=str(out / "play.png"))
        page.click(".env-pick[data-env='evol/ChartQA-v0']")
        page.fill("#opt-task", "1")
        page.click("#reset")
        expect(page.locator("#turns li img").first).to_be_visible()
        page.screenshot(path=str(out / "play_chart.png"))


def shoot_viewer(page, run: Path, out: Path) -> None:
    with EvolView([str(run)]) as viewer:
        page.goto(f"{viewer.url}/")
        page.wait_for_selector("svg")
        page.wait_for_timeout(500)  # the curve's last redraw
        page.screenshot(path=str(out / "run.png"))
    trajectories = run / "eval" / "bc" / "trajectories.jsonl"
    if not trajectories.exists():
        trajectories = next(run.glob("eval/*/trajectories.jsonl"))
    with EvolView([str(trajectories)]) as viewer:
        page.goto(f"{viewer.url}/")
        page.wait_for_selector("table tbody tr")
        page.wait_for_timeout(300)
        page.screenshot(path=str(out / "trajectories.png"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, default=Path("runs/quickstart"), help="a run directory")
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="where the PNGs go")
    args = parser.parse_args()
    ensure_run(args.run)
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.set_default_timeout(30_000)
        shoot_play(page, args.out)
        shoot_viewer(page, args.run, args.out)
        browser.close()
    for name in ("play.png", "play_chart.png", "trajectories.png", "run.png"):
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
