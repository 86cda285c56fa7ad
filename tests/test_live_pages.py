"""Live quiz pages over HTTP (no browser): entering a code, joining signed in or as a guest
(nickname form with CSRF, redirect, the same player on reload), friendly refusals with their
status, and the host's page and results CSV only for the course's instructors."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import update

from lms_live import keys
from lms_live.auth.models import User
from lms_live.auth.service import new_password_hash
from lms_live.core.middleware import content_security_policy
from tests.livekit import (
    LiveWorld,
    world_fixture,  # noqa: F401 (the `world` fixture)
)

pytestmark = pytest.mark.shared_db

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TOKEN = re.compile(r'data-player-token="([^"]*)"')
INLINE_CODE = re.compile(r"<script>|<style|\sstyle=|\son[a-z]+=|javascript:", re.IGNORECASE)


@pytest.fixture
def live_instances() -> int:
    return 1


class Browser:
    """One visitor: a cookie jar, pages fetched without following redirects."""

    def __init__(self, world: LiveWorld) -> None:
        self.world = world
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def get(self, path: str, status: int = 200) -> str:
        async with self.http.get(self.world.url(0, path), allow_redirects=False) as response:
            text = await response.text()
            assert response.status == status, text
            if response.content_type == "text/html":
                assert response.headers["Content-Security-Policy"] == content_security_policy()
                assert not INLINE_CODE.search(text), text
            return text

    async def post(self, path: str, form: dict[str, str], status: int = 303) -> tuple[str, str]:
        async with self.http.post(
            self.world.url(0, path), data=form, allow_redirects=False
        ) as response:
            text = await response.text()
            assert response.status == status, text
            return response.headers.get("Location", ""), text

    async def sign_in(self, user: User) -> None:
        token = CSRF.search(await self.get("/login"))
        assert token is not None
        form = {"email": user.email, "password": PASSWORD, "csrf_token": token.group(1)}
        location, _ = await self.post("/login", form)
        assert location == "/"

    async def close(self) -> None:
        await self.http.close()


@pytest.fixture
async def visitors(world: LiveWorld) -> AsyncIterator[list[Browser]]:
    made = [Browser(world) for _ in range(3)]
    yield made
    for visitor in made:
        await visitor.close()


async def with_password(world: LiveWorld, *users: User) -> None:
    hashed = await new_password_hash(world.app[keys.AUTH], PASSWORD)
    async with world.app[keys.DATABASE].transaction() as session:
        await session.execute(
            update(User).where(User.id.in_([u.id for u in users])).values(password_hash=hashed)
        )


def player_of(world: LiveWorld, page: str) -> str:
    found = TOKEN.search(page)
    assert found is not None, page
    assert found.group(1), page
    return str(world.app[keys.LIVE].tokens.decode(found.group(1)).player_id)


async def test_entering_a_code(world: LiveWorld, visitors: list[Browser]) -> None:
    visitor = visitors[0]
    page = await visitor.get("/live")
    assert 'action="/live/join"' in page
    assert 'name="code"' in page
    assert "Enter the 6-character code" in await visitor.get("/live/join?code=nope", status=400)
    async with visitor.http.get(
        world.url(0, "/live/join?code=ab-cd 23"), allow_redirects=False
    ) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/live/join/ABCD23"
    assert "No live quiz has this code" in await visitor.get("/live/join/ABCD23", status=404)


async def test_a_guest_joins_with_a_nickname_and_keeps_the_player(
    world: LiveWorld, visitors: list[Browser]
) -> None:
    made = await world.quiz(learners=1)
    live = await world.session(made, guests=True)
    guest, other = visitors[0], visitors[1]
    form = await guest.get(f"/live/join/{live['code']}")
    assert 'name="nickname"' in form
    assert f'action="/live/join/{live["code"]}"' in form
    token = CSRF.search(form)
    assert token is not None

    _, refused = await guest.post(
        f"/live/join/{live['code']}", {"nickname": "Gus"}, status=403
    )  # no form token: refused before anything happens
    assert "did not come from this site" in refused
    location, _ = await guest.post(
        f"/live/join/{live['code']}", {"nickname": "Gus", "csrf_token": token.group(1)}
    )
    assert location == f"/live/play/{live['id']}"
    play = await guest.get(location)
    assert f'data-session-id="{live["id"]}"' in play
    assert "/static/js/live-play.js" in play
    assert player_of(world, play) == player_of(world, await guest.get(location))  # reload

    # Someone else's browser has no token for this session (its script shows "not joined").
    assert 'data-player-token=""' in await other.get(location)
    other_form = CSRF.search(await other.get(f"/live/join/{live['code']}"))
    assert other_form is not None
    _, taken = await other.post(
        f"/live/join/{live['code']}",
        {"nickname": "gus", "csrf_token": other_form.group(1)},
        status=409,
    )
    assert "already uses this nickname" in taken
    assert 'value="gus"' in taken
    _, empty = await other.post(
        f"/live/join/{live['code']}", {"nickname": " ", "csrf_token": other_form.group(1)}, 400
    )
    assert "Pick a nickname" in empty


async def test_signed_in_learners_join_on_the_link_others_are_told_why_not(
    world: LiveWorld, visitors: list[Browser]
) -> None:
    made = await world.quiz(learners=2)
    outsider = await world.user(name="Olga Outsider")
    await with_password(world, made.owner, *made.learners, outsider)
    live = await world.session(made, late_join=False)
    learner, anonymous, stranger = visitors
    await learner.sign_in(made.learners[0])
    first = await learner.get(f"/live/join/{live['code']}")
    assert player_of(world, first) == player_of(
        world, await learner.get(f"/live/join/{live['code'].lower()}")
    )  # the same player again

    refused = await anonymous.get(f"/live/join/{live['code']}", status=401)
    assert "Sign in to join" in refused
    assert 'href="/login"' in refused
    await stranger.sign_in(outsider)
    assert "Enroll in the course" in await stranger.get(f"/live/join/{live['code']}", 403)

    host = await world.host(made, live)
    assert (await host.call("start"))["ok"]
    await anonymous.sign_in(made.learners[1])
    late = await anonymous.get(f"/live/join/{live['code']}", status=409)
    assert "does not take late joiners" in late


async def test_the_host_page_is_for_the_course_instructors(
    world: LiveWorld, visitors: list[Browser]
) -> None:
    made = await world.quiz(learners=1)
    await with_password(world, made.owner, made.learners[0])
    live = await world.session(made)
    teacher, learner, anonymous = visitors
    path = f"/live/host/{live['id']}"
    assert "Sign in to host" in await anonymous.get(path, status=401)
    await learner.sign_in(made.learners[0])
    assert "Not your live quiz" in await learner.get(path, status=403)
    assert "Not your live quiz" in await learner.get(f"{path}/results.csv", status=403)

    await teacher.sign_in(made.owner)
    page = await teacher.get(path)
    assert f'<strong id="h-code">{live["code"]}</strong>' in page
    assert live["join_url"] in page
    assert "<svg" in page  # the QR code inline
    assert "<img" not in page
    assert f'href="{path}/results.csv"' in page
    await teacher.get("/live/host/not-a-uuid", status=404)
    await teacher.get("/live/host/00000000-0000-0000-0000-000000000000", status=404)

    await world.player(live, made.learners[0])
    async with teacher.http.get(world.url(0, f"{path}/results.csv")) as response:
        assert response.status == 200
        assert response.content_type == "text/csv"
        assert "Learner 1" in await response.text()
