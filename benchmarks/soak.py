"""Soak an env server: N clients for T seconds over a mix of envs, some sessions abandoned.

Each client thread loops: create a session of a random env of the mix, play episodes with
the env's expert (`POST /expert`, then `POST /step`) and reset, and either delete the
session after 1-3 episodes or, for `--abandon` of the sessions, walk away mid-episode and
leave it to the server's reaper (`--ttl`). Meanwhile the server's memory (RSS summed over
the server process and its children, the env workers), open file descriptors and threads
are sampled; after the load, the soak waits until every session is closed or reaped and
samples once more ("after"), so a leak shows as after > before.

Prints episodes, steps, errors by type and the samples; writes benchmarks/results/soak.json
and a PNG of the memory curve. Any 5xx answer fails the soak (exit code 1), loudly.

    python benchmarks/soak.py [--clients 16] [--seconds 60] [--abandon 0.2] [--ttl 5]
        [--envs evol/BabyAI-v0 ...] [--url http://127.0.0.1:8000 --pid PID]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import requests
from tqdm import tqdm

from server.launch import LaunchedServer

ROOT = Path(__file__).resolve().parent.parent

MIX = [
    "evol/BabyAI-v0",
    "evol/Maze-v0",
    "evol/Wordle-v0",
    "evol/ToolUse-v0",
    "evol/MathCritique-v0",
    "evol/WebShop-v0",
    "evol/TextCraft-v0",
]
MAX_STEPS = 100  # an episode longer than this is cut (the env truncates well before)


@dataclass
class Tally:
    """What the clients did, shared by all client threads."""

    episodes: int = 0
    steps: int = 0
    sessions: int = 0
    abandoned: int = 0
    deleted: int = 0
    episodes_by_env: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # "status type" -> count
    server_errors: list[str] = field(default_factory=list)  # 5xx, one reproduction each
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


class Client:
    """One client thread's HTTP: every answer but the expected ones is tallied by type."""

    def __init__(self, url: str, token: str | None, tally: Tally):
        self.url = url
        self.tally = tally
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: dict | None = None) -> dict | None:
        """The JSON answer, or None after an error (tallied; a 5xx is also kept to reproduce)."""
        try:
            answer = self.http.request(method, self.url + path, json=body, timeout=120)
        except requests.RequestException as error:
            with self.tally.lock:
                self.tally.errors[f"connection {type(error).__name__}"] += 1
            time.sleep(0.2)
            return None
        if answer.status_code < 400:
            return answer.json() if answer.content else {}
        try:
            kind = answer.json()["error"]["type"]
        except (ValueError, KeyError, TypeError):
            kind = "not_json"
        with self.tally.lock:
            self.tally.errors[f"{answer.status_code} {kind}"] += 1
            if answer.status_code >= 500:
                shown = json.dumps(body)[:200] if body is not None else ""
                self.tally.server_errors.append(
                    f"{answer.status_code} {answer.text[:200]!r} <- {method} {path} {shown}"
                )
        if answer.status_code == 429:
            time.sleep(float(answer.headers.get("Retry-After", "1")))
        return None


def client_loop(
    url: str, token: str | None, mix: list[str], abandon: float, deadline: float, seed: int, tally: Tally
) -> None:
    rng = random.Random(seed)
    client = Client(url, token, tally)
    while time.monotonic() < deadline:
        env_id = rng.choice(mix)
        created = client.call("POST", "/sessions", {"env": env_id})
        if created is None:
            continue
        sid = created["session"]
        tally.add(sessions=1)
        walk_away = rng.random() < abandon
        episodes = rng.randint(1, 3)
        for episode in range(episodes):
            if time.monotonic() >= deadline:
                break
            if client.call("POST", f"/sessions/{sid}/reset", {"seed": rng.randrange(1 << 31)}) is None:
                break
            # An abandoned session stops in the middle of its last episode.
            stop_at = rng.randint(1, 4) if walk_away and episode == episodes - 1 else MAX_STEPS
            done = False
            for _ in range(stop_at):
                expert = client.call("POST", f"/sessions/{sid}/expert")
                if expert is None:
                    break
                result = client.call("POST", f"/sessions/{sid}/step", {"action": expert["action"]})
                if result is None:
                    break
                tally.add(steps=1)
                if result["terminated"] or result["truncated"]:
                    done = True
                    break
            if done:
                tally.add(episodes=1)
                with tally.lock:
                    tally.episodes_by_env[env_id] += 1
            elif walk_away:
                break
        if walk_away:
            tally.add(abandoned=1)
        elif client.call("DELETE", f"/sessions/{sid}") is not None:
            tally.add(deleted=1)
    client.http.close()


def server_process(url: str, pid: int | None) -> psutil.Process | None:
    """The server's process: `pid`, or the one listening on the URL's port on this machine."""
    if pid is not None:
        return psutil.Process(pid)
    port = urlsplit(url).port
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
            return psutil.Process(connection.pid)
    return None


def sample(process: psutil.Process | None, url: str, started: float) -> dict:
    """RSS and PSS (MB), open FDs and threads of the server and its children (summed: RSS counts
    pages shared between processes once per process, PSS splits them); its live sessions and how
    long `/health` took to answer (a server that stalls shows here)."""
    row: dict = {"t": round(time.monotonic() - started, 2)}
    if process is not None:
        rss = pss = fds = threads = 0
        members = [process]
        try:
            members += process.children(recursive=True)
        except psutil.Error:
            pass
        for member in members:
            try:
                with member.oneshot():
                    memory = member.memory_full_info()  # PSS: shared pages split among the processes
                    rss += memory.rss
                    pss += getattr(memory, "pss", memory.rss)
                    fds += member.num_fds()
                    threads += member.num_threads()
            except psutil.Error:
                continue  # a worker that just ended
        row.update(
            rss_mb=round(rss / 2**20, 1),
            pss_mb=round(pss / 2**20, 1),
            fds=fds,
            threads=threads,
            processes=len(members),
        )
    try:
        asked = time.perf_counter()
        answer = requests.get(url + "/health", timeout=10)
        row["health_ms"] = round((time.perf_counter() - asked) * 1000, 1)
        health = answer.json()
        row["health_status"] = answer.status_code
        row["sessions"] = health.get("sessions")
        row["health"] = health.get("status") or f"{answer.status_code} {answer.text[:200]}"
    except (requests.RequestException, ValueError):
        row["health"] = "unreachable"
    return row


def wait_for_no_sessions(url: str, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/health", timeout=10).json().get("sessions") == 0:
                return True
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.5)
    return False


def plot(samples: list[dict], load_end: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [s for s in samples if "rss_mb" in s]
    if not rows:
        return
    figure, memory = plt.subplots(figsize=(8, 4))
    memory.plot([s["t"] for s in rows], [s["rss_mb"] for s in rows], color="tab:blue", label="RSS, summed")
    memory.plot([s["t"] for s in rows], [s["pss_mb"] for s in rows], color="tab:green", label="PSS, summed")
    memory.set_xlabel("seconds")
    memory.set_ylabel("server memory, all processes (MB)")
    memory.legend(loc="upper left")
    memory.axvline(load_end, color="grey", linestyle="--", linewidth=1)
    memory.text(load_end, memory.get_ylim()[1], " load ends", va="top", color="grey")
    sessions = memory.twinx()
    sessions.plot(
        [s["t"] for s in rows], [s.get("sessions") or 0 for s in rows], color="tab:orange", label="sessions"
    )
    sessions.set_ylabel("live sessions", color="tab:orange")
    memory.set_title("Env server soak: memory and live sessions")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=16, help="client threads")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the clients run")
    parser.add_argument("--abandon", type=float, default=0.2, help="share of sessions left mid-episode")
    parser.add_argument("--envs", nargs="+", default=MIX, help="the env mix (each session picks one)")
    parser.add_argument(
        "--ttl", type=float, default=5.0, help="idle seconds before the launched server reaps"
    )
    parser.add_argument("--server-flags", default="", help="more `evol serve` flags for the launched server")
    parser.add_argument("--url", help="soak this running server instead of launching one")
    parser.add_argument(
        "--pid", type=int, help="with --url: the server's process id (else found by its port)"
    )
    parser.add_argument("--token", default=os.environ.get("EVOL_TOKEN"), help="bearer token (or EVOL_TOKEN)")
    parser.add_argument("--sample-every", type=float, default=1.0, help="seconds between samples")
    parser.add_argument(
        "--drain", type=float, default=120.0, help="seconds to wait for sessions to close after"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/soak.json"))
    args = parser.parse_args()

    server = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        log = Path(tempfile.gettempdir()) / f"evol-soak-server-{os.getpid()}.log"
        flags = [
            "--ttl",
            str(args.ttl),
            "--capacity",
            str(max(256, 4 * args.clients)),
            *args.server_flags.split(),
        ]
        if args.token:
            flags += ["--token", args.token]
        server = LaunchedServer(args.envs, *flags, log_path=log)
        url = server.url
        print(f"server: {url} (log {log})")
    try:
        return soak(args, url, server)
    finally:
        if server is not None:
            server.stop()


def run_load(
    args: argparse.Namespace, url: str, process, started: float, samples: list, tally: Tally
) -> float:
    """Run the clients until their time is up, sampling the server; returns when the load started."""
    deadline = time.monotonic() + args.seconds
    clients = [
        threading.Thread(
            target=client_loop,
            args=(url, args.token, args.envs, args.abandon, deadline, args.seed * 1000 + i, tally),
            daemon=True,
        )
        for i in range(args.clients)
    ]
    for client in clients:
        client.start()
    load_started = time.monotonic()
    with tqdm(total=int(args.seconds), unit="s", desc="soak", dynamic_ncols=True) as bar:
        while any(client.is_alive() for client in clients):
            time.sleep(args.sample_every)
            row = sample(process, url, started)
            samples.append(row)
            if row.get("health_status", 200) >= 500:
                with tally.lock:
                    tally.server_errors.append(f"{row['health']} <- GET /health")
            elapsed = max(time.monotonic() - load_started, 1e-9)
            bar.n = min(int(elapsed), int(args.seconds))
            bar.set_postfix(
                episodes=tally.episodes,
                eps_s=f"{tally.episodes / elapsed:.1f}",
                steps_s=f"{tally.steps / elapsed:.0f}",
                errors=sum(tally.errors.values()),
                rss_mb=row.get("rss_mb"),
                sessions=row.get("sessions"),
            )
            bar.refresh()
    return load_started


def soak(args: argparse.Namespace, url: str, server: LaunchedServer | None) -> int:
    process = server_process(url, server.process.pid if server else args.pid)
    if process is None:
        print("warning: the server's process was not found (give --pid); memory is not sampled")
    started = time.monotonic()
    time.sleep(1.0)  # let the server settle after start
    before = sample(process, url, started)
    samples = [before]
    tally = Tally()
    load_started = run_load(args, url, process, started, samples, tally)
    load_end = time.monotonic() - started
    load_seconds = time.monotonic() - load_started
    drained = wait_for_no_sessions(url, args.drain)
    while time.monotonic() - started < load_end + 3:  # a few samples of the idle server
        time.sleep(args.sample_every)
        samples.append(sample(process, url, started))
    after = sample(process, url, started)
    samples.append(after)
    peak = max((s["rss_mb"] for s in samples if "rss_mb" in s), default=None)
    # Warm-up (env modules and data loaded once per worker) vs growth: RSS at mid-load and at its end.
    during = [s for s in samples if "rss_mb" in s and s["t"] <= load_end]
    mid_load = min(during, key=lambda s: abs(s["t"] - (load_end - load_seconds / 2)), default={})
    end_load = during[-1] if during else {}
    peak_pss = max((s["pss_mb"] for s in samples if "pss_mb" in s), default=None)

    result = {
        "config": {
            "clients": args.clients,
            "seconds": args.seconds,
            "abandon": args.abandon,
            "envs": args.envs,
            "ttl": args.ttl if server else None,
            "url": args.url,
        },
        "load_seconds": load_seconds,
        "episodes": tally.episodes,
        "episodes_per_s": tally.episodes / load_seconds,
        "steps": tally.steps,
        "steps_per_s": tally.steps / load_seconds,
        "sessions": tally.sessions,
        "sessions_abandoned": tally.abandoned,
        "sessions_deleted": tally.deleted,
        "episodes_by_env": dict(tally.episodes_by_env),
        "errors": dict(tally.errors),
        "server_errors": sorted(set(tally.server_errors))[:50],
        "all_sessions_closed_after": drained,
        "before": before,
        "after": after,
        "peak_rss_mb": peak,
        "peak_pss_mb": peak_pss,
        "rss_mid_load_mb": mid_load.get("rss_mb"),
        "rss_end_load_mb": end_load.get("rss_mb"),
        "samples": samples,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    png = out.with_suffix(".png")
    plot(samples, load_end, png)

    print_report(result, tally, args, out, png)
    return verdict(tally, after)


def print_report(result: dict, tally: Tally, args: argparse.Namespace, out: Path, png: Path) -> None:
    """The soak's figures: load, errors, and memory before, at its peak and after."""
    load_seconds = result["load_seconds"]
    before, after, drained = result["before"], result["after"], result["all_sessions_closed_after"]
    peak, peak_pss = result["peak_rss_mb"], result["peak_pss_mb"]
    mid_load = {"rss_mb": result["rss_mid_load_mb"]} if result["rss_mid_load_mb"] is not None else {}
    end_load = {"rss_mb": result["rss_end_load_mb"]} if result["rss_end_load_mb"] is not None else {}
    print(
        f"\n{tally.episodes} episodes ({result['episodes_per_s']:.1f}/s), {tally.steps} steps "
        f"({result['steps_per_s']:.0f}/s), {tally.sessions} sessions "
        f"({tally.abandoned} abandoned, {tally.deleted} deleted) in {load_seconds:.0f} s, {args.clients} clients"
    )
    print(
        "episodes by env: "
        + ", ".join(f"{k.split('/')[-1]} {v}" for k, v in sorted(tally.episodes_by_env.items()))
    )
    print("errors: " + (", ".join(f"{k}: {v}" for k, v in tally.errors.most_common()) or "none"))
    print(f"{'':>8} {'RSS MB':>8} {'PSS MB':>8} {'FDs':>6} {'threads':>8} {'procs':>6} {'sessions':>9}")
    for name, row in (("before", before), ("peak", {"rss_mb": peak, "pss_mb": peak_pss}), ("after", after)):
        print(
            f"{name:>8} {row.get('rss_mb', '-')!s:>8} {row.get('pss_mb', '-')!s:>8} {row.get('fds', '-')!s:>6}"
            f" {row.get('threads', '-')!s:>8} {row.get('processes', '-')!s:>6} {row.get('sessions', '-')!s:>9}"
        )
    print(
        f"RSS at mid-load {mid_load.get('rss_mb', '-')} MB, at the end of the load {end_load.get('rss_mb', '-')} MB"
    )
    if not drained:
        print(f"warning: sessions still open {args.drain:.0f} s after the load (is --ttl short?)")
    print(f"wrote {out} and {png}")


def verdict(tally: Tally, after: dict) -> int:
    """1, loudly, when any answer was a 5xx or the server is unhealthy after the soak."""
    if tally.server_errors:
        print("\n" + "!" * 78, file=sys.stderr)
        print(f"SOAK FAILED: {len(tally.server_errors)} answers were 5xx:", file=sys.stderr)
        for line in sorted(set(tally.server_errors))[:20]:
            print("  " + line, file=sys.stderr)
        print("!" * 78, file=sys.stderr)
        return 1
    if after.get("health") != "ok":
        print(f"SOAK FAILED: /health after the soak: {after.get('health')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
