"""The page at /ui (placeholder until the page lands)."""

from __future__ import annotations

from typing import Any

from flask import Flask


def install_ui(app: Flask, ui_agent: Any = None) -> None:
    app.extensions["evol_ui_agent"] = ui_agent
