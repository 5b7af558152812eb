"""The wire format shared by the env server (`server/`) and its client (`envs.remote`):
JSON-safe values, images as PNG data URLs."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from PIL import Image

DATA_URL_PREFIX = "data:image/png;base64,"


def encode_image(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG", optimize=False)
    return DATA_URL_PREFIX + base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_image(data_url: str) -> np.ndarray:
    if not data_url.startswith(DATA_URL_PREFIX):
        raise ValueError("an image must be a data:image/png;base64 URL")
    raw = base64.b64decode(data_url[len(DATA_URL_PREFIX) :])
    return np.array(Image.open(io.BytesIO(raw)).convert("RGB"), dtype=np.uint8)


def to_wire(value: Any) -> Any:
    """A JSON-safe copy of an observation or info value (arrays of pixels become PNG URLs)."""
    if isinstance(value, dict):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, np.ndarray):
        if value.dtype == np.uint8 and value.ndim == 3 and value.shape[-1] == 3:
            return encode_image(value)
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def observation_from_wire(value: Any) -> Any:
    """The client's view of an observation: `{"text", "image"}` images back to arrays."""
    if isinstance(value, dict) and isinstance(value.get("image"), str):
        return {**value, "image": decode_image(value["image"])}
    return value
