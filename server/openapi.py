"""The OpenAPI 3.1 document of the env server's HTTP API."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "malformed body, missing field, unknown env or bad options",
        401: "missing or wrong bearer token",
        404: "unknown or expired session",
        409: "step before reset, or after the episode ended",
        413: "request or action too large",
        429: "at capacity (see Retry-After)",
        504: "the env call went over the step time limit",
    }
    return {str(c): {"description": text[c], **_json(_ERROR)} for c in codes}


def openapi_document(env_ids: list[str]) -> dict[str, Any]:
    sid = [{"name": "sid", "in": "path", "required": True, "schema": {"type": "string"}}]
    observation = {"oneOf": [{"type": "string"}, {"$ref": "#/components/schemas/MultimodalObservation"}]}
    step_result = {
        "type": "object",
        "required": ["observation", "reward", "terminated", "truncated", "info"],
        "properties": {
            "observation": observation,
            "reward": {"type": "number"},
            "terminated": {"type": "boolean"},
            "truncated": {"type": "boolean"},
            "info": {"type": "object"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "EvolGym environment server",
            "version": "1",
            "description": "Uniform reset/step API over EvolGym envs. Served here: " + ", ".join(env_ids),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["type", "message"],
                            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
                        }
                    },
                },
                "MultimodalObservation": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "image": {"type": "string", "description": "data:image/png;base64,..."},
                    },
                },
                "StepResult": step_result,
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/health": {
                "get": {
                    "summary": "Liveness, live sessions and capacity (no token needed)",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "ok",
                            **_json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "status": {"type": "string"},
                                        "sessions": {"type": "integer"},
                                        "capacity": {"type": "integer"},
                                    },
                                }
                            ),
                        }
                    },
                }
            },
            "/envs": {
                "get": {
                    "summary": "Specs of the served envs (id, card, reward range, max turns, multimodal)",
                    "responses": {
                        "200": {"description": "env specs", **_json({"type": "array"})},
                        **_errors(401),
                    },
                }
            },
            "/sessions": {
                "post": {
                    "summary": "Create a session running one env",
                    "requestBody": _json(
                        {
                            "type": "object",
                            "required": ["env"],
                            "properties": {
                                "env": {"type": "string", "enum": env_ids},
                                "kwargs": {"type": "object"},
                            },
                        }
                    ),
                    "responses": {
                        "201": {
                            "description": "created",
                            **_json({"type": "object", "properties": {"session": {"type": "string"}}}),
                        },
                        **_errors(400, 401, 413, 429),
                    },
                }
            },
            "/sessions/{sid}/reset": {
                "post": {
                    "summary": "Start an episode; options {task, split, difficulty} select a reproducible task",
                    "parameters": sid,
                    "requestBody": _json(
                        {
                            "type": "object",
                            "properties": {"seed": {"type": "integer"}, "options": {"type": "object"}},
                        }
                    ),
                    "responses": {
                        "200": {
                            "description": "observation and info (info.instruction)",
                            **_json(
                                {
                                    "type": "object",
                                    "properties": {"observation": observation, "info": {"type": "object"}},
                                }
                            ),
                        },
                        **_errors(400, 401, 404, 504),
                    },
                }
            },
            "/sessions/{sid}/step": {
                "post": {
                    "summary": "Take one text action",
                    "parameters": sid,
                    "requestBody": _json(
                        {
                            "type": "object",
                            "required": ["action"],
                            "properties": {"action": {"type": "string"}},
                        }
                    ),
                    "responses": {
                        "200": {
                            "description": "step result",
                            **_json({"$ref": "#/components/schemas/StepResult"}),
                        },
                        **_errors(400, 401, 404, 409, 413, 504),
                    },
                }
            },
            "/sessions/{sid}/expert": {
                "post": {
                    "summary": "The env's expert (scripted solver) action for the current state",
                    "parameters": sid,
                    "responses": {
                        "200": {
                            "description": "the action",
                            **_json({"type": "object", "properties": {"action": {"type": "string"}}}),
                        },
                        **_errors(401, 404, 409, 504),
                    },
                }
            },
            "/sessions/{sid}": {
                "delete": {
                    "summary": "Close a session",
                    "parameters": sid,
                    "responses": {"204": {"description": "closed"}, **_errors(401, 404)},
                }
            },
            "/step": {
                "post": {
                    "summary": "Step many sessions in one request; each result is a step result or an error",
                    "requestBody": _json(
                        {
                            "type": "object",
                            "required": ["steps"],
                            "properties": {
                                "steps": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["session", "action"],
                                        "properties": {
                                            "session": {"type": "string"},
                                            "action": {"type": "string"},
                                        },
                                    },
                                }
                            },
                        }
                    ),
                    "responses": {
                        "200": {
                            "description": "one result per step, in order, each with its own 'status'",
                            **_json({"type": "object", "properties": {"results": {"type": "array"}}}),
                        },
                        **_errors(400, 401, 413),
                    },
                }
            },
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}
            },
        },
    }
