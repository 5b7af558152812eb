"""The page's routes over HTTP (no browser): the page is open, its agent route is not, bad
conversations are refused, and `--no-ui` takes it all away. Real `evol serve` servers."""

from __future__ import annotations

import pytest
import requests

from envs.wire import DATA_URL_PREFIX, encode_image
from tests.conftest import ServerProcess, free_port

COUNTER = "acme/Counter-v0"  # the test plugin's env: light, so these servers start fast
TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONVERSATION = [
    {"role": "system", "content": "Reach the target with one of: inc, dec, submit."},
    {"role": "user", "content": "Counter: 0. Target: 3."},
]


def error_of(answer: requests.Response) -> str:
    return answer.json()["error"]["type"]


@pytest.fixture(scope="module")
def agent_server():
    """A server with a token and an agent (`random:0`: no model, plays `look` without listed actions)."""
    server = ServerProcess([COUNTER], "--workers", "1", "--token", TOKEN, "--ui-agent", "random:0")
    yield server
    server.stop()


def test_page_is_open_without_a_token_and_sent_with_a_strict_policy(agent_server):
    page = requests.get(f"{agent_server.url}/ui")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "img-src 'self' data:" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert requests.get(f"{agent_server.url}/ui/page/").content == page.content
    assert b"<script>" not in page.content  # no inline script: the policy would block it anyway
    for name, kind in [("play.js", "text/javascript"), ("play.css", "text/css")]:
        answer = requests.get(f"{agent_server.url}/ui/page/{name}")
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(kind)
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name", ["nope.js", "__init__.py", "static/play.js", "..%2F__init__.py"])
def test_page_serves_only_its_own_files(agent_server, name):
    answer = requests.get(f"{agent_server.url}/ui/page/{name}")
    assert answer.status_code == 404 and error_of(answer) == "not_found"


def test_agent_route_needs_the_token(agent_server):
    assert requests.get(f"{agent_server.url}/ui/agent").status_code == 401
    answer = requests.post(f"{agent_server.url}/ui/agent", json={"messages": CONVERSATION})
    assert answer.status_code == 401 and error_of(answer) == "unauthorized"
    assert requests.get(f"{agent_server.url}/ui/agent", headers=AUTH).json() == {"agent": "random:0"}


def test_agent_turn_answers_an_action(agent_server):
    answer = requests.post(f"{agent_server.url}/ui/agent", json={"messages": CONVERSATION}, headers=AUTH)
    assert answer.status_code == 200 and answer.json() == {"action": "look"}


def test_agent_turn_takes_an_observation_with_an_image(agent_server):
    import numpy as np

    image = encode_image(np.full((8, 8, 3), 200, dtype=np.uint8))
    content = [{"type": "text", "text": "What colour?"}, {"type": "image_url", "image_url": {"url": image}}]
    messages = [*CONVERSATION, {"role": "assistant", "content": "inc"}, {"role": "user", "content": content}]
    answer = requests.post(f"{agent_server.url}/ui/agent", json={"messages": messages}, headers=AUTH)
    assert answer.status_code == 200 and answer.json() == {"action": "look"}


def image_request(url: str) -> dict:
    """An agent request whose observation is an image at `url`."""
    return {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}


MALFORMED = {
    "no messages": {},
    "messages not a list": {"messages": "hello"},
    "empty conversation": {"messages": []},
    "unknown field": {"messages": CONVERSATION, "temperature": 1},
    "message not an object": {"messages": ["hello"]},
    "unknown role": {"messages": [{"role": "tool", "content": "x"}]},
    "extra key": {"messages": [{"role": "user", "content": "x", "name": "me"}]},
    "system message late": {"messages": [*CONVERSATION, {"role": "system", "content": "x"}]},
    "last is the agent's": {"messages": [*CONVERSATION, {"role": "assistant", "content": "inc"}]},
    "content a number": {"messages": [{"role": "user", "content": 3}]},
    "parts for the assistant": {
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "text", "text": "inc"}]},
            {"role": "user", "content": "y"},
        ]
    },
    "unknown part": {"messages": [{"role": "user", "content": [{"type": "audio", "data": "x"}]}]},
    "image by URL": image_request("http://x/a.png"),
    "image not a PNG": image_request(DATA_URL_PREFIX + "AAAA"),
    "image not base64": image_request(DATA_URL_PREFIX + "%%%"),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_agent_request_is_400(agent_server, body):
    answer = requests.post(f"{agent_server.url}/ui/agent", json=body, headers=AUTH)
    assert answer.status_code == 400 and error_of(answer) in {"bad_request", "malformed_body"}
    assert answer.json()["error"]["message"]


def test_agent_request_that_is_not_json_is_refused(agent_server):
    url = f"{agent_server.url}/ui/agent"
    json_type = {**AUTH, "Content-Type": "application/json"}
    assert requests.post(url, data="{not json", headers=json_type).status_code == 400
    assert requests.post(url, data="x", headers={**AUTH, "Content-Type": "text/plain"}).status_code == 415


def test_agent_turn_without_an_agent_is_409_and_no_ui_hides_the_page(start_server):
    plain = start_server([COUNTER], "--workers", "1")
    assert requests.get(f"{plain.url}/ui/agent").json() == {"agent": None}
    answer = requests.post(f"{plain.url}/ui/agent", json={"messages": CONVERSATION})
    assert answer.status_code == 409 and error_of(answer) == "no_agent"
    hidden = start_server([COUNTER], "--workers", "1", "--no-ui", "--token", TOKEN)
    for path in ("/ui", "/ui/page/", "/ui/page/play.js"):
        assert requests.get(hidden.url + path).status_code == 401  # not even open without the page
        assert requests.get(hidden.url + path, headers=AUTH).status_code == 404
    assert requests.get(hidden.url + "/ui/agent", headers=AUTH).status_code == 404


def test_agent_failure_is_a_502_with_its_message(start_server):
    # The agent is an OpenAI endpoint that is this env server itself: it has no /v1/chat/completions (404).
    port = free_port()
    server = start_server(
        [COUNTER], "--workers", "1", "--ui-agent", f"openai:http://127.0.0.1:{port}/v1#none", port=port
    )
    answer = requests.post(f"{server.url}/ui/agent", json={"messages": CONVERSATION})
    assert answer.status_code == 502 and error_of(answer) == "agent_error"
    assert "404" in answer.json()["error"]["message"]
    # the failure freed the agent: the next call fails the same way instead of waiting
    assert requests.post(f"{server.url}/ui/agent", json={"messages": CONVERSATION}).status_code == 502


def test_serve_refuses_an_agent_that_needs_the_env():
    from evol.ui_agent import ui_agent_from_spec

    with pytest.raises(ValueError, match="Expert buttons"):
        ui_agent_from_spec("expert")
    with pytest.raises(ValueError, match="unknown agent spec"):
        ui_agent_from_spec("nonsense:thing")


def test_agent_sees_images_as_the_rollout_engine_gives_them():
    import numpy as np

    from evol.rollout import user_content
    from evol.ui_agent import agent_content

    chart = np.zeros((6, 8, 3), dtype=np.uint8)
    chart[2, 3] = (255, 0, 0)
    blank = np.zeros_like(chart)
    for image in (chart, blank):
        page_parts = [
            {"type": "text", "text": "Question?"},
            {"type": "image_url", "image_url": {"url": encode_image(image)}},
        ]
        assert agent_content(page_parts) == user_content({"text": "Question?", "image": image})
    assert agent_content("plain text") == "plain text"
