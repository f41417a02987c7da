"""The chat page in a real browser: Debian's chromium driven by Playwright, against the agent service and the
backend as real processes (scripted model, slowed so the reply visibly streams), with AGENT_API_KEYS set.

`UPDATE_SCREENSHOT=1` also writes the page's screenshot to docs/web-page.png (shown in the README).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from test_session_agent.testing import scripted_agent_env

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY = "web-test-key-0123456789"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "web-page.png"

if not CHROMIUM.exists():
    pytest.skip(
        f"no chromium at {CHROMIUM}: install Debian's (apt-get install chromium; .ci/run does) or set CHROMIUM_PATH",
        allow_module_level=True,
    )
if importlib.util.find_spec("playwright") is None:
    pytest.skip("the playwright package is missing: uv sync (it is in the dev group)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def agent_url(
    backend_url: str, service_runner: Any, port_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env, url = scripted_agent_env(
        backend_url, port_factory(), SCRIPTED_TOKEN_DELAY_MS="60", AGENT_API_KEYS=f"{KEY}:web-user"
    )
    log = tmp_path_factory.mktemp("agent") / "agent.log"
    with service_runner("test-session-agent", env, url, log=log):
        yield url


@pytest.fixture(scope="module")
def browser(agent_url: str) -> Iterator[Browser]:
    # After the services (their fixtures run asyncio.run, impossible once Playwright's loop runs in this thread).
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def assistant_replies(page: Page) -> list[str]:
    return [t.strip() for t in page.locator(".msg.assistant .text").all_inner_texts()]


def send_and_watch_stream(page: Page, expected: str) -> None:
    """Press Enter in the prompt box; the reply must be seen growing before it is complete."""
    page.locator("#prompt").press("Enter")
    streaming = page.locator(".msg.assistant.streaming .text")
    expect(streaming).not_to_have_text("", timeout=20_000)
    partial = streaming.inner_text()
    expect(page.locator(".msg.assistant.streaming")).to_have_count(0, timeout=30_000)
    final = assistant_replies(page)[-1]
    assert expected in final
    assert partial and len(partial.strip()) < len(final), f"no partial reply seen: {partial!r} / {final!r}"


def test_chat_in_a_browser(page: Page, agent_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    page.goto(agent_url)
    # Without a key the page says so and asks for one.
    expect(page.locator("#error")).to_contain_text("needs an API key")
    expect(page.locator("#key-form")).to_be_visible()
    page.locator("#key").fill(KEY)
    page.locator("#key-form button[type=submit]").click()
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#no-sessions")).to_be_visible()

    page.locator("#new-session").click()
    page.locator("#prompt").fill("Hello, my name is Alice")
    send_and_watch_stream(page, "you said: Hello, my name is Alice")
    session_id = page.evaluate("decodeURIComponent(location.hash.slice('#session='.length))")
    assert session_id
    expect(page.locator("#session-list li")).to_have_count(1)

    # Shift+Enter is a new line, Enter sends.
    page.locator("#prompt").type("What is")
    page.locator("#prompt").press("Shift+Enter")
    page.locator("#prompt").type("my name?")
    assert page.locator("#prompt").input_value() == "What is\nmy name?"
    send_and_watch_stream(page, "first: Hello, my name is Alice")
    assert "turn 2" in assistant_replies(page)[-1]

    # After a reload: the key is still in sessionStorage, the session and its history come back from PostgreSQL.
    page.reload()
    expect(page.locator(".msg")).to_have_count(4)
    assert [r.split(";")[0] for r in assistant_replies(page)] == ["turn 1", "turn 2"]
    expect(page.locator("#session-list li")).to_have_count(1)
    expect(page.locator("#session-list [aria-current=true]")).to_contain_text("Hello, my name is Alice")
    page.screenshot(path=str(tmp_path / "web-page.png"))
    if os.environ.get("UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copy(tmp_path / "web-page.png", SCREENSHOT)

    # 400 px wide: nothing overflows sideways; the session list folds behind a button.
    page.set_viewport_size({"width": 400, "height": 700})
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    expect(page.locator("#sessions")).to_be_hidden()
    page.locator("#toggle-sessions").click()
    expect(page.locator("#sessions")).to_be_visible()
    page.locator("#toggle-sessions").click()
    expect(page.locator("#prompt")).to_be_visible()
    page.set_viewport_size({"width": 1000, "height": 700})

    # Delete, after confirming.
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.locator("#delete-session").click()
    expect(page.locator("#session-list li")).to_have_count(0)
    expect(page.locator(".msg")).to_have_count(0)
    assert dialogs and "Delete session" in dialogs[0]
    r = httpx.get(f"{agent_url}/sessions/{session_id}/history", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 404
    print(f"\nbrowser test: {time.monotonic() - started:.1f} s")


def test_errors_are_shown(page: Page, agent_url: str) -> None:
    page.goto(agent_url)
    page.evaluate(f"sessionStorage.setItem('agentApiKey', {KEY!r})")
    page.goto(f"{agent_url}/#session=nobody-has-this")
    page.reload()  # a new hash alone is no new page load
    expect(page.locator("#error")).to_contain_text("Not found")
    # A wrong key: told to enter one.
    page.evaluate("sessionStorage.setItem('agentApiKey', 'wrong')")
    page.reload()
    expect(page.locator("#error")).to_contain_text("needs an API key")
    expect(page.locator("#key-form")).to_be_visible()


def test_a_slow_page_start_leaves_a_streaming_turn_alone(page: Page, agent_url: str) -> None:
    """The page's start (sessions, then profiles, then the address's session) still loading when a first turn is sent:
    it must not reload a session the turn made current, which would wipe the streaming reply (a CI failure: the
    history read of the session being created answered 404 and took the reply off the page)."""
    held: list[Any] = []
    page.route("**/api/v1/agents", lambda route: held.append(route))  # answered later, by hand
    page.add_init_script(f"sessionStorage.setItem('agentApiKey', {KEY!r})")
    page.goto(agent_url)
    expect(page.locator("#no-sessions")).to_be_visible()
    for _ in range(200):  # the route's handler runs while Playwright waits
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the profiles request was not held"
    page.locator("#prompt").fill("Hello, slow page")
    page.locator("#prompt").press("Enter")
    expect(page.locator(".msg.assistant.streaming .text")).not_to_have_text("", timeout=20_000)
    held[0].continue_()  # the page's start goes on, mid-turn
    expect(page.locator(".msg.assistant.streaming")).to_have_count(0, timeout=30_000)
    expect(page.locator("#error")).to_be_hidden()
    assert "you said: Hello, slow page" in assistant_replies(page)[-1]
    expect(page.locator(".msg")).to_have_count(2)
