"""A run of episodes into a trajectory file: resumable, with what a user reads about its faults.

`run_specs(engine, specs, path)` runs the episodes of `specs` that the file does not hold yet
(a rerun resumes) and closes the engine; the `RunOutcome` says which episodes could not be
completed. `evol rollout`, `evol eval` and the trainers' evaluation (`evol.evaluate.evaluate`)
run through it. `prefix_cache_size` is the one place the hf agents' KV-cache default is set.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evol.trajectory import Trajectory, TrajectoryWriter

if TYPE_CHECKING:  # the engine's module loads agents and the env client: not for building `evol`'s parser
    from evol.rollout import EpisodeSpec, RolloutEngine, RolloutStats

CACHED_CONVERSATIONS_PER_EPISODE = 2  # an episode's conversation and, after it ends, its successor's


def prefix_cache_size(setting: int | bool | None, conversations: int) -> int:
    """How many conversations' KV cache an hf agent keeps between turns: `setting` when it is a
    number, 0 when False, and by default (None or True) twice the `conversations` in flight."""
    if setting is None or setting is True:
        return CACHED_CONVERSATIONS_PER_EPISODE * conversations
    return int(setting)


@dataclass
class RunOutcome:
    """What a run did: the trajectories it wrote (`finished`, failed attempts included), the
    episodes of `specs` the file still lacks (`incomplete`), and the engine's `stats`."""

    path: Path
    specs: list[EpisodeSpec]
    finished: list[Trajectory]
    incomplete: list[EpisodeSpec]
    stats: RolloutStats


def resume_note(specs: list[EpisodeSpec], writer: TrajectoryWriter) -> str | None:
    """What a rerun finds in the file, or None for a fresh run."""
    done = sum(spec.key in writer.done for spec in specs)
    failed = sum(spec.key in writer.failed for spec in specs)
    if not (done or failed):
        return None
    retried = f"; {failed} failed attempts are run again" if failed else ""
    return f"evol: resuming; {done} of {len(specs)} episodes are already in {writer.path}{retried}"


def run_specs(
    engine: RolloutEngine,
    specs: list[EpisodeSpec],
    path: str | Path,
    log: Callable[[str], Any] | None = None,
) -> RunOutcome:
    """Run the episodes of `specs` not yet in the trajectory file `path` (`log` hears the resume
    note), then close `engine`."""
    with TrajectoryWriter(path) as writer:
        note = resume_note(specs, writer)
        if note and log:
            log(note)
        try:
            finished = engine.run(specs, writer)
        finally:
            engine.close()
        incomplete = [spec for spec in specs if spec.key not in writer.done]
    return RunOutcome(Path(path), specs, finished, incomplete, engine.stats)


def fault_lines(outcome: RunOutcome) -> list[str]:
    """Why some episodes could not be completed (none when all were), with an example of each fault."""
    if not outcome.incomplete:
        return []
    lines = [
        f"evol: {len(outcome.incomplete)} of {len(outcome.specs)} episodes could not be completed "
        f"(failed attempts this run: {outcome.stats.fault_summary()}); they are in {outcome.path} as "
        "failed attempts, and rerunning this command retries them"
    ]
    seen = set()
    for trajectory in outcome.finished:
        if trajectory.fault and trajectory.fault not in seen:
            seen.add(trajectory.fault)
            lines.append(f"evol: e.g. {trajectory.fault} fault: {trajectory.error}")
    return lines


def keep_settings(out: Path, settings: dict[str, Any]) -> None:
    """Write `settings` to `out/settings.json`, or refuse (SystemExit naming the differing
    settings) when `out` holds runs made with other ones: a resumed benchmark must not mix
    figures of two settings."""
    path = out / "settings.json"
    if path.exists():
        earlier = json.loads(path.read_text())
        changed = sorted(k for k in set(earlier) | set(settings) if earlier.get(k) != settings.get(k))
        if changed:
            raise SystemExit(
                f"{out} holds runs made with other settings ({', '.join(changed)} differ): "
                "choose another --out or delete it"
            )
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2))
