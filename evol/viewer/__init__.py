"""`evol view PATH`: a local web page over trajectories (a JSONL file) or a training run (a run
directory): the episode table, one episode as a conversation, two stages side by side on one
task, and a run's learning curve and phase timings, following files while they grow.

`evol.viewer.index` indexes the files (offsets and summaries, episodes read on demand);
`evol.viewer.app` serves the API and the page (`static/`: plain HTML, CSS and JavaScript).
"""

from __future__ import annotations

from evol.viewer.app import ViewedPath, create_viewer_app
from evol.viewer.index import JsonlRows, Query, TrajectoryIndex

__all__ = ["JsonlRows", "Query", "TrajectoryIndex", "ViewedPath", "create_viewer_app"]
