"""The OpenAPI 3.1 document of the env server's HTTP API.

`openapi_document(env_ids, token_required)` describes exactly what the server accepts and
answers: request schemas built from each env's declared kwargs and options (`envs.env_spec`),
every error status of the error contract on each route, bearer auth only when the server has
a token, and OpenAPI links (create -> reset -> step -> expert -> delete through the session
id) so that a stateful fuzzer such as schemathesis can chain the calls of one session.
"""

from __future__ import annotations

import json
from typing import Any

import envs

MAX_SEED = 2**63 - 1  # the largest reset seed a client may send
# Error types each status may carry (the server's error contract).
ERROR_TYPES: dict[int, tuple[str, ...]] = {
    400: ("malformed_body", "missing_field", "bad_request", "unknown_env", "bad_env_kwargs", "bad_options"),
    401: ("unauthorized",),
    403: ("host_not_allowed",),
    404: ("unknown_session", "not_found"),
    405: ("method_not_allowed",),
    409: ("reset_needed", "episode_over"),
    410: ("session_lost",),
    413: ("too_large",),
    415: ("unsupported_media_type",),
    429: ("at_capacity",),
    500: ("env_error", "internal_error"),
    503: ("worker_busy", "unavailable"),
    504: ("step_timeout",),
}
_ERROR_TEXT = {
    400: "malformed body, missing field, unknown env, or kwargs/options outside their declared schema",
    401: "missing or wrong bearer token",
    403: "the Host header names no host this server answers to (DNS rebinding guard)",
    404: "unknown session: never created, deleted, expired, or the server restarted",
    405: "the path names no route for this method (a session id, once decoded, that holds a '/')",
    409: "step or expert before reset, or after the episode ended",
    410: "session lost: the worker process holding it died; start a fresh session",
    413: "request body, batch or action too large",
    415: "the body is not application/json",
    429: "at capacity (see Retry-After)",
    500: "the env raised on a valid request (env_error) or the server failed (internal_error); details in its log",
    503: "the session's worker stayed busy, or no worker is alive (see Retry-After)",
    504: "the call ran past the time limit; its worker was replaced and the session is gone",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "string"}}
}
_ANY = (403, 500)  # any route: the Host check, and a server fault
_BODY_ERRORS = (400, 413, 415)  # any route that reads a JSON body
_SESSION_ERRORS = (404, 405, 410, 503, 504)  # any route of a session (a path with its id)


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any], required: bool) -> dict[str, Any]:
    return {"required": required, **_json(schema)}


def _errors(*codes: int) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for code in sorted({*codes, *_ANY}):
        answer = {"description": _ERROR_TEXT[code], **_json({"$ref": f"#/components/schemas/Error{code}"})}
        if code in (429, 503):
            answer["headers"] = _RETRY_AFTER
        answers[str(code)] = answer
    return answers


def _error_schema(code: int) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {
                    "type": {"type": "string", "enum": list(ERROR_TYPES[code])},
                    "message": {"type": "string"},
                },
            }
        },
    }


def _unique(schemas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for schema in schemas:
        seen.setdefault(json.dumps(schema, sort_keys=True), schema)
    return list(seen.values())


def _create_schema(specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One branch per env (`env` as a constant), each with that env's declared kwargs."""
    branches = []
    for env_id, spec in specs.items():
        branches.append(
            {
                "type": "object",
                "title": env_id,
                "required": ["env"],
                "properties": {
                    "env": {"const": env_id},
                    "kwargs": {"anyOf": [spec.get("kwargs_schema") or {"type": "object"}, {"type": "null"}]},
                },
                "additionalProperties": False,
            }
        )
    return branches[0] if len(branches) == 1 else {"oneOf": branches}


def _options_schema(specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Reset options: a session's env is not in the path, so any served env's options schema."""
    declared = _unique([spec["options_schema"] for spec in specs.values() if spec.get("options_schema")])
    if not declared:
        return {"type": "object"}
    return declared[0] if len(declared) == 1 else {"anyOf": declared}


_SAME_SESSION = {"sid": "$request.path.sid"}
_NEW_SESSION = {"sid": "$response.body#/session"}


def _link(operation_id: str, parameters: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": parameters, **extra}


def _session_links(parameters: dict[str, str]) -> dict[str, Any]:
    """Links to every call on the session whose id `parameters` locates."""
    return {
        "Reset": _link("resetSession", parameters),
        "Step": _link("stepSession", parameters),
        "Expert": _link("expertAction", parameters),
        "Delete": _link("deleteSession", parameters),
    }


def _sid_parameters() -> list[dict[str, Any]]:
    return [
        {
            "name": "sid",
            "in": "path",
            "required": True,
            "description": "a session id, as `POST /sessions` answered it",
            "schema": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
        }
    ]


def _action_schema(specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A text action, no longer than the longest any served env accepts."""
    max_action = max((int(spec["max_action_length"]) for spec in specs.values()), default=None)
    return {"type": "string", **({"maxLength": max_action} if max_action else {})}


def _observation_schemas() -> dict[str, Any]:
    """A text observation, or text with an image."""
    return {
        "MultimodalObservation": {
            "type": "object",
            "required": ["text"],
            "properties": {
                "text": {"type": "string"},
                "image": {"type": "string", "description": "data:image/png;base64,..."},
            },
        },
        "Observation": {
            "oneOf": [{"type": "string"}, {"$ref": "#/components/schemas/MultimodalObservation"}]
        },
    }


def _batch_schemas(action: dict[str, Any]) -> dict[str, Any]:
    """One entry of a batch request (a step or a reset) and one result."""
    return {
        "BatchEntry": {
            "oneOf": [
                {
                    "type": "object",
                    "title": "step",
                    "required": ["session", "action"],
                    "properties": {"session": {"type": "string"}, "action": action},
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "title": "reset",
                    "required": ["session", "reset"],
                    "properties": {
                        "session": {"type": "string"},
                        "reset": {"$ref": "#/components/schemas/ResetRequest"},
                    },
                    "additionalProperties": False,
                },
            ]
        },
        "BatchResult": {
            "type": "object",
            "required": ["status"],
            "description": "a step result, a reset result, or an error, with the status it would have had alone",
            "properties": {
                "status": {"type": "integer"},
                "observation": {"$ref": "#/components/schemas/Observation"},
                "reward": {"type": "number"},
                "terminated": {"type": "boolean"},
                "truncated": {"type": "boolean"},
                "info": {"type": "object"},
                "error": {
                    "type": "object",
                    "required": ["type", "message"],
                    "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }


def _component_schemas(specs: dict[str, dict[str, Any]], action: dict[str, Any]) -> dict[str, Any]:
    """`components/schemas`: the error shapes, then the request and result bodies."""
    reset_schema = {
        "type": "object",
        "properties": {
            "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
            "options": {"$ref": "#/components/schemas/ResetOptions"},
        },
        "additionalProperties": False,
    }
    return {
        **{f"Error{code}": _error_schema(code) for code in ERROR_TYPES},
        **_observation_schemas(),
        "ResetOptions": _options_schema(specs),
        "ResetRequest": reset_schema,
        "ResetResult": {
            "type": "object",
            "required": ["observation", "info"],
            "properties": {
                "observation": {"$ref": "#/components/schemas/Observation"},
                "info": {"type": "object"},
            },
        },
        "StepResult": {
            "type": "object",
            "required": ["observation", "reward", "terminated", "truncated", "info"],
            "properties": {
                "observation": {"$ref": "#/components/schemas/Observation"},
                "reward": {"type": "number"},
                "terminated": {"type": "boolean"},
                "truncated": {"type": "boolean"},
                "info": {"type": "object"},
            },
        },
        **_batch_schemas(action),
    }


def _health_path() -> dict[str, Any]:
    health = {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string"},
            "sessions": {"type": "integer"},
            "capacity": {"type": "integer"},
            "workers": {},
        },
    }
    return {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness, live sessions, capacity and workers (no token needed)",
                "security": [],
                "responses": {
                    code: {"description": text, **_json(health)}
                    for code, text in (("200", "ok"), ("503", "degraded: the server cannot take work"))
                }
                | _errors(),
            }
        }
    }


def _envs_path(auth: tuple[int, ...]) -> dict[str, Any]:
    return {
        "/envs": {
            "get": {
                "operationId": "listEnvs",
                "summary": "Specs of the served envs (id, card, reward range, max turns, kwargs and options)",
                "responses": {
                    "200": {
                        "description": "env specs",
                        **_json({"type": "array", "items": {"type": "object", "required": ["id"]}}),
                    },
                    **_errors(*auth),
                },
            }
        }
    }


def _create_path(specs: dict[str, dict[str, Any]], auth: tuple[int, ...]) -> dict[str, Any]:
    created = {
        "type": "object",
        "required": ["session"],
        "properties": {"session": {"type": "string"}, "env": {"type": "string"}},
    }
    batch_reset = {"steps": [{"session": "$response.body#/session", "reset": {"seed": 0}}]}
    return {
        "/sessions": {
            "post": {
                "operationId": "createSession",
                "summary": "Create a session running one env, with that env's declared kwargs",
                "requestBody": _body(_create_schema(specs), required=True),
                "responses": {
                    "201": {
                        "description": "created",
                        **_json(created),
                        "links": {
                            **_session_links(_NEW_SESSION),
                            "BatchReset": _link("batchStep", {}, requestBody=batch_reset),
                        },
                    },
                    **_errors(*_BODY_ERRORS, *auth, 410, 429, 503, 504),
                },
            }
        }
    }


def _episode_paths(auth: tuple[int, ...], action: dict[str, Any]) -> dict[str, Any]:
    """Reset, step and expert on one session."""
    sid = _sid_parameters()
    session_links = _session_links(_SAME_SESSION)
    expert = {"type": "object", "required": ["action"], "properties": {"action": {"type": "string"}}}
    step_with_expert = _link("stepSession", _SAME_SESSION, requestBody={"action": "$response.body#/action"})
    return {
        "/sessions/{sid}/reset": {
            "post": {
                "operationId": "resetSession",
                "summary": "Start an episode; options (task, split, ...) select a reproducible task",
                "parameters": sid,
                "requestBody": _body({"$ref": "#/components/schemas/ResetRequest"}, required=False),
                "responses": {
                    "200": {
                        "description": "observation and info (info.instruction)",
                        **_json({"$ref": "#/components/schemas/ResetResult"}),
                        "links": session_links,
                    },
                    **_errors(*_BODY_ERRORS, *auth, *_SESSION_ERRORS),
                },
            }
        },
        "/sessions/{sid}/step": {
            "post": {
                "operationId": "stepSession",
                "summary": "Take one text action",
                "parameters": sid,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["action"],
                        "properties": {"action": action},
                        "additionalProperties": False,
                    },
                    required=True,
                ),
                "responses": {
                    "200": {
                        "description": "step result",
                        **_json({"$ref": "#/components/schemas/StepResult"}),
                        "links": session_links,
                    },
                    **_errors(*_BODY_ERRORS, *auth, 409, *_SESSION_ERRORS),
                },
            }
        },
        "/sessions/{sid}/expert": {
            "post": {
                "operationId": "expertAction",
                "summary": "The env's expert (scripted solver) action for the current state",
                "parameters": sid,
                "responses": {
                    "200": {
                        "description": "the action",
                        **_json(expert),
                        "links": {**session_links, "StepWithExpert": step_with_expert},
                    },
                    **_errors(*auth, 409, *_SESSION_ERRORS),
                },
            }
        },
    }


def _delete_path(auth: tuple[int, ...]) -> dict[str, Any]:
    return {
        "/sessions/{sid}": {
            "delete": {
                "operationId": "deleteSession",
                "summary": "Close a session",
                "parameters": _sid_parameters(),
                "responses": {"204": {"description": "closed"}, **_errors(*auth, 404, 405, 410)},
            }
        }
    }


def _batch_path(auth: tuple[int, ...]) -> dict[str, Any]:
    steps = {
        "type": "object",
        "required": ["steps"],
        "properties": {"steps": {"type": "array", "items": {"$ref": "#/components/schemas/BatchEntry"}}},
        "additionalProperties": False,
    }
    results = {
        "type": "object",
        "required": ["results"],
        "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/BatchResult"}}},
    }
    first_session = {"sid": "$request.body#/steps/0/session"}
    links = {
        name: _link(target, first_session)
        for name, target in (
            ("Step", "stepSession"),
            ("Expert", "expertAction"),
            ("Reset", "resetSession"),
            ("Delete", "deleteSession"),
        )
    }
    return {
        "/step": {
            "post": {
                "operationId": "batchStep",
                "summary": "Step or reset many sessions in one request; each result carries its own status",
                "requestBody": _body(steps, required=True),
                "responses": {
                    "200": {
                        "description": "one result per entry, in order",
                        **_json(results),
                        "links": links,
                    },
                    **_errors(*_BODY_ERRORS, *auth, 503),
                },
            }
        }
    }


def _openapi_path(auth: tuple[int, ...]) -> dict[str, Any]:
    return {
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {"description": "OpenAPI", **_json({"type": "object"})},
                    **_errors(*auth),
                },
            }
        }
    }


def openapi_document(env_ids: list[str], token_required: bool = False) -> dict[str, Any]:
    """The document for a server serving `env_ids`; `token_required` when it has a bearer token."""
    specs = {env_id: envs.env_spec(env_id) for env_id in env_ids}
    auth = (401,) if token_required else ()
    action = _action_schema(specs)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "EvolGym environment server",
            "version": "1",
            "description": "Uniform reset/step API over EvolGym envs. Served here: " + ", ".join(env_ids),
        },
        "components": {"schemas": _component_schemas(specs, action)},
        "paths": {
            **_health_path(),
            **_envs_path(auth),
            **_create_path(specs, auth),
            **_episode_paths(auth, action),
            **_delete_path(auth),
            **_batch_path(auth),
            **_openapi_path(auth),
        },
    }
    if token_required:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document
