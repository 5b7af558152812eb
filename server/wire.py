"""The wire format, kept under its old path: it lives in `envs.wire` (shared with `envs.remote`)."""

from envs.wire import DATA_URL_PREFIX, decode_image, encode_image, observation_from_wire, to_wire

__all__ = ["DATA_URL_PREFIX", "decode_image", "encode_image", "observation_from_wire", "to_wire"]
