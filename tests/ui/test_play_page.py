"""The page at /ui in a real browser (Debian's Chromium, driven by Playwright) against a real
`evol serve`: a person plays BabyAI to success with the expert, sees a chart, is safe from
what an env echoes back, uses the token, and lets the server's agent take turns."""

from __future__ import annotations

import pytest

from tests.conftest import ServerProcess

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

BABYAI, CHART = "evol/BabyAI-v0", "evol/ChartQA-v0"
TOKEN = "s3cret"
AGENT = "random:0"  # no model: without listed actions in its conversation it plays `look`


@pytest.fixture(scope="module")
def server():
    """One server for the module: a token, two envs (text and image) and an agent."""
    served = ServerProcess([BABYAI, CHART], "--workers", "1", "--token", TOKEN, "--ui-agent", AGENT)
    yield served
    served.stop()


def open_page(page, server) -> None:
    """Load /ui with the token already typed in this tab (the page keeps it in sessionStorage;
    typing it is the first test's), and wait for the env list."""
    page.add_init_script(f"sessionStorage.setItem('evol-ui-token', {TOKEN!r})")
    page.goto(f"{server.url}/ui")
    expect(page.locator(".env-pick")).to_have_count(2)
    expect(page.locator("#token")).to_have_value(TOKEN)


def reset(page, env_id: str, task: int, **options: str) -> None:
    """Pick `env_id`, set its task index (and other option fields by name), reset."""
    page.click(f".env-pick[data-env='{env_id}']")
    page.fill("#opt-task", str(task))
    for name, value in options.items():
        page.select_option(f"#opt-{name}", label=value)
    page.click("#reset")
    expect(page.locator("#turns li")).to_have_count(1)


def play(page, button: str) -> None:
    """Click a turn's button and wait for the turn it played."""
    turns = page.locator("#turns li").count()
    page.click(button)
    expect(page.locator("#turns li")).to_have_count(turns + 1)


def test_page_without_the_token_shows_the_401_and_works_once_it_is_typed(page, server):
    page.goto(f"{server.url}/ui")
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("401 unauthorized")
    expect(page.locator(".env-pick")).to_have_count(0)
    page.fill("#token", "wrong")
    page.click("#token-save")
    expect(error).to_contain_text("401 unauthorized")
    page.fill("#token", TOKEN)
    page.click("#token-save")
    expect(page.locator(".env-pick")).to_have_count(2)
    expect(error).to_be_hidden()
    expect(page.locator("#status")).to_contain_text(AGENT)


def test_expert_plays_babyai_to_success(page, server):
    open_page(page, server)
    page.click(f".env-pick[data-env='{BABYAI}']")
    expect(page.locator("#env-card-text")).to_contain_text("## Task options")
    expect(page.locator("#opt-split option")).to_have_text(["(default)", "train", "test"])
    reset(page, BABYAI, 5, split="test")
    expect(page.locator("#instruction")).to_contain_text("Your goal:")
    expect(page.locator(".valid-action").first).to_be_visible()
    for _ in range(20):
        if page.locator("#outcome").is_visible():
            break
        play(page, "#expert-play")
    outcome = page.locator("#outcome")
    expect(outcome).to_have_attribute("data-outcome", "success")
    expect(outcome).to_contain_text("SUCCESS")
    expect(page.locator("#turns li").last).to_contain_text("success")  # the info fields, as text
    expect(page.locator("#step")).to_be_disabled()
    assert page.console_errors == []


def test_typed_and_listed_actions_are_played_and_the_expert_fills_the_box(page, server):
    open_page(page, server)
    reset(page, BABYAI, 3)
    page.click("#expert-fill")
    expect(page.locator("#action")).not_to_have_value("")
    page.fill("#action", "turn left")
    play(page, "#step")
    expect(page.locator("#turns li").last.locator(".action")).to_have_text("you: turn left")
    play(page, ".valid-action >> text='turn right'")
    expect(page.locator("#turns li").last.locator(".reward")).to_contain_text("reward 0")
    assert page.console_errors == []


def test_chart_observation_is_rendered_as_an_image(page, server):
    open_page(page, server)
    reset(page, CHART, 3)
    image = page.locator("#turns li img.observation-image")
    expect(image).to_have_count(1)
    page.wait_for_function("() => document.querySelector('img.observation-image').complete")
    assert image.evaluate("img => img.naturalWidth") == 480
    assert image.evaluate("img => img.src").startswith("data:image/png;base64,")
    play(page, "#expert-play")
    expect(page.locator("#outcome")).to_have_attribute("data-outcome", "success")
    assert page.console_errors == []


def test_observation_with_script_is_shown_as_text(page, server):
    open_page(page, server)
    reset(page, BABYAI, 3)
    payload = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b>'
    page.fill("#action", payload)
    play(page, "#step")
    observation = page.locator("#turns li").last.locator("pre.observation")
    expect(observation).to_contain_text(payload)  # BabyAI echoes the invalid action, verbatim
    assert page.locator("#turns script, #turns img:not(.observation-image), #turns b").count() == 0
    assert page.evaluate("() => window.pwned") is None
    expect(page.locator("#turns li").last.locator(".info")).to_contain_text("invalid")


def test_api_error_is_shown_with_its_type_and_message(page, server):
    open_page(page, server)
    page.click(f".env-pick[data-env='{BABYAI}']")
    page.fill("#opt-task", "20000")  # past the test split's 10,000 tasks
    page.select_option("#opt-split", label="test")
    page.click("#reset")
    expect(page.locator("#error")).to_contain_text("400 bad_options: options.task must be below 10000")
    expect(page.locator("#episode")).to_be_hidden()
    page.fill("#opt-task", "3")
    page.click("#task-form summary")
    page.fill("#kwargs", "{oops")
    page.click("#reset")
    expect(page.locator("#error")).to_contain_text("bad_input: env kwargs are not JSON")
    page.fill("#kwargs", '{"max_turns": "many"}')
    page.click("#reset")
    expect(page.locator("#error")).to_contain_text("400 bad_env_kwargs")


def test_agent_takes_a_turn_and_plays_to_the_end(page, server):
    open_page(page, server)
    reset(page, BABYAI, 3)
    expect(page.locator("#agent-controls")).to_be_visible()
    play(page, "#agent-turn")
    expect(page.locator("#turns li").last.locator(".action")).to_have_text("agent: look")
    page.click("#agent-run")
    outcome = page.locator("#outcome")
    expect(outcome).to_have_attribute("data-outcome", "truncated")  # 20 turns of an invalid `look`
    expect(page.locator("#turns li")).to_have_count(21)
    expect(page.locator("#error")).to_be_hidden()
    assert page.console_errors == []
