"""A whole live quiz in Chromium (Playwright): a host and three learners (two signed in
through /login, one guest with a nickname) in separate browser contexts play three questions
on the real PostgreSQL and Redis; one learner reloads mid-question and keeps its answer and
score. Asserts what people see; screenshots go to test-artifacts/live/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import unused_port
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    async_playwright,
    expect,
)
from redis.asyncio import Redis
from sqlalchemy import update

from lms_live import keys
from lms_live.app import create_app
from lms_live.auth.models import User
from lms_live.auth.service import new_password_hash
from lms_live.web.live_pages import setup_live_pages
from tests.conftest import make_settings
from tests.livekit import LiveWorld

pytestmark = [pytest.mark.shared_db, pytest.mark.timeout(90)]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "live"
PASSWORD = "correct horse battery staple"
WAIT = 10_000  # ms: the longest anything on screen may take to appear
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
async def world(
    aiohttp_server: Any,
    tmp_path: Path,
    worker_id: str,
    pg_url: str,
    redis_url: str,
    redis: Redis,
    database: None,
) -> AsyncIterator[LiveWorld]:
    port = unused_port()
    settings = make_settings(
        tmp_path,
        worker_id,
        pg_url=pg_url,
        redis_url=redis_url,
        task_broker="memory",
        public_url=f"http://127.0.0.1:{port}",
        live_sweep_interval=0.05,
        live_dashboard_interval=0.1,
    )
    app = create_app(settings)
    if "host_page" not in app.router.named_resources():
        setup_live_pages(app)
    server = await aiohttp_server(app, host="127.0.0.1", port=port)
    async with aiohttp.ClientSession() as http:
        yield LiveWorld([server], http)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not at {CHROMIUM}: install Debian's chromium package")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        await launched.close()


async def with_password(world: LiveWorld, *users: User) -> None:
    hashed = await new_password_hash(world.app[keys.AUTH], PASSWORD)
    async with world.app[keys.DATABASE].transaction() as session:
        await session.execute(
            update(User).where(User.id.in_([u.id for u in users])).values(password_hash=hashed)
        )


def watched(page: Page, problems: list[str]) -> Page:
    """Script errors and console errors (CSP violations among them) end up in `problems`
    (the browser's own favicon request, which the app does not serve, aside)."""

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            problems.append(f"{page.url}: {message.text} ({message.location})")

    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
    page.on("console", console)
    return page


async def signed_in(
    browser: Browser, world: LiveWorld, user: User, problems: list[str], width: int = 420
) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": width, "height": 860})
    page = watched(await context.new_page(), problems)
    await page.goto(world.url(0, "/login"))
    await page.fill("#email", user.email)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(world.url(0, "/"))
    return context, page


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def answer(page: Page, question: str, choice: str | None = None, typed: str = "") -> None:
    await expect(page.locator("#q-prompt")).to_have_text(question, timeout=WAIT)
    if typed:
        await page.fill("#q-input", typed)
        await page.click("text=Submit answer")
    else:
        await page.locator(".live-option", has_text=choice).click()
    await expect(page.locator("#q-locked")).to_contain_text("Answer locked in", timeout=WAIT)


async def verdicts(players: list[Page], texts: list[str]) -> None:
    for page, text in zip(players, texts, strict=True):
        await expect(page.locator("#r-verdict")).to_have_text(text, timeout=WAIT)


async def host_next(host: Page) -> None:
    await host.locator("[data-action=next]").click()


async def test_a_live_quiz_in_the_browser(world: LiveWorld, browser: Browser) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    made = await world.quiz(learners=2)
    await with_password(world, made.owner, *made.learners)
    live = await world.session(made, guests=True, scoring="correctness", streaks=False, points=100)

    problems: list[str] = []
    host_context, host = await signed_in(browser, world, made.owner, problems, width=1280)
    await host.goto(world.url(0, f"/live/host/{live['id']}"))
    await expect(host.locator("#h-code")).to_have_text(live["code"])
    await expect(host.locator("#live-status")).to_have_text("Connected", timeout=WAIT)
    await expect(host.locator(".live-qr svg")).to_be_visible()

    ann_context, ann = await signed_in(browser, world, made.learners[0], problems)
    bob_context, bob = await signed_in(browser, world, made.learners[1], problems)
    for page in (ann, bob):
        await page.goto(live["join_url"])
        await expect(page.locator("#view-lobby")).to_contain_text("You are in!", timeout=WAIT)
    await expect(ann.locator("#lobby-nickname")).to_have_text("Learner 1")

    gus_context = await browser.new_context(viewport={"width": 390, "height": 844})
    gus = watched(await gus_context.new_page(), problems)
    await gus.goto(world.url(0, "/live"))
    await gus.fill("#code", live["code"].lower())
    await gus.click("button[type=submit]")
    await expect(gus.locator("h1")).to_contain_text(live["code"])
    await gus.fill("#nickname", "Gus <b>the guest</b>")
    await gus.click("button[type=submit]")
    await gus.wait_for_url(world.url(0, f"/live/play/{live['id']}"))
    await expect(gus.locator("#lobby-nickname")).to_have_text(
        "Gus <b>the guest</b>", timeout=WAIT
    )  # shown as text, never as markup
    players = [ann, bob, gus]

    await expect(host.locator("#h-players")).to_have_text("3", timeout=WAIT)
    await expect(host.locator("#h-player-list")).to_contain_text("Gus <b>the guest</b> (guest)")
    await shot(host, "host-1-lobby")
    await shot(gus, "learner-1-lobby")

    # Question 1: Ann answers, reloads (same player, answer still locked in), then the others.
    await host.locator("[data-action=start]").click()
    await answer(ann, "Capital of France?", "Paris")
    await expect(ann.locator("#q-countdown")).to_have_text(
        re.compile(r"^(1\d|20|\d)$"), timeout=WAIT
    )
    await ann.reload()
    await expect(ann.locator("#q-locked")).to_have_text("Answer locked in: Paris", timeout=WAIT)
    await expect(ann.locator(".live-option.live-chosen")).to_contain_text("Paris")
    await shot(ann, "learner-2-question")
    await expect(host.locator("#h-answered")).to_have_text("1", timeout=WAIT)
    await expect(host.locator("#h-right")).to_have_text("Right answer: Paris")
    await shot(host, "host-2-question")
    await answer(bob, "Capital of France?", "Lyon")
    await answer(gus, "Capital of France?", "Paris")
    await verdicts(players, ["Correct!", "Wrong", "Correct!"])
    await expect(ann.locator("#r-points")).to_have_text("+100 points")
    await expect(bob.locator(".live-reveal-option.live-right")).to_have_text("Paris ✓ right answer")
    await expect(bob.locator(".live-reveal-option.live-yours")).to_contain_text("Lyon")
    await shot(bob, "learner-3-reveal")
    await shot(host, "host-3-reveal")

    await host_next(host)  # the leaderboard after each question
    await expect(bob.locator("#view-board")).to_contain_text("Leaderboard", timeout=WAIT)
    await expect(bob.locator("#b-rank")).to_have_text("You are #3 with 0 points")
    await host_next(host)

    # Question 2 (true/false), then a reload of the guest's play page keeps the guest.
    await answer(ann, "The Earth is round.", "True")
    await gus.reload()
    await expect(gus.locator("#q-prompt")).to_have_text("The Earth is round.", timeout=WAIT)
    await expect(gus.locator("#live-score")).to_have_text("100")
    await answer(gus, "The Earth is round.", "False")
    await answer(bob, "The Earth is round.", "True")
    await verdicts(players, ["Correct!", "Correct!", "Wrong"])
    await host_next(host)
    await host_next(host)

    # Question 3 (numeric).
    await answer(ann, "3 + 4?", typed="7")
    await answer(bob, "3 + 4?", typed="7")
    await answer(gus, "3 + 4?", typed="8")
    await verdicts(players, ["Correct!", "Correct!", "Wrong"])
    await expect(gus.locator("#r-answer")).to_contain_text("Right answer: 7")
    await expect(ann.locator("#live-score")).to_have_text("300")
    await host_next(host)
    await host_next(host)  # after the last question: finished

    for page, text in zip(
        players,
        [
            "You finished #1 with 300 points",
            "You finished #2 with 200 points",
            "You finished #3 with 100 points",
        ],
        strict=True,
    ):
        await expect(page.locator("#f-result")).to_have_text(text, timeout=WAIT)
    podium = ann.locator("#f-podium li")
    await expect(podium).to_have_count(3)
    await expect(podium.nth(0)).to_have_text("#1 Learner 1 300 points")
    await expect(podium.nth(2)).to_have_text("#3 Gus <b>the guest</b> 100 points")
    await expect(host.locator("#h-podium li").nth(1)).to_have_text(
        "#2 Learner 2 200 points", timeout=WAIT
    )
    await shot(ann, "learner-4-podium")
    await shot(host, "host-4-podium")

    csv = await host_context.request.get(world.url(0, f"/live/host/{live['id']}/results.csv"))
    assert csv.status == 200
    assert "Learner 1" in await csv.text()
    assert problems == []
    for context in (host_context, ann_context, bob_context, gus_context):
        await context.close()
