"""Authorization matrix: every identity and system endpoint x every kind of caller.

Six actors (anonymous, student, other student, instructor, other instructor, admin) call each
endpoint under /api/v1/auth, /api/v1/users/me, /api/v1/admin/users and /api/v1/system with a
valid body, so the status tells what the caller may do, not whether the body was well formed.
One test case per cell (`<actor>-<METHOD> <path>`), each on a fresh rolled-back database with
its own users and sign-ins. Error cells assert the error code too: a 403 `forbidden` is the role
check, a 403 `wrong_password` is the body; a 401 `unauthorized` is "sign in first".

Object-level rows use "the other student" as the victim: their session, their pending second
factor, their account record. For the other student themselves the same request is on their
own object, which is the positive control of that row.

`test_matrix_covers_every_endpoint` fails when the app gains an endpoint without a row here, in
the learning matrix (tests/test_authz_learning.py) or in the quiz matrix (tests/test_authz_quiz.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyotp
import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live import keys
from lms_live.auth import service
from lms_live.auth.models import MfaMethod, Role, User
from tests.authkit import PASSWORD, Api, code_in, token_in

ANONYMOUS = "anonymous"
VICTIM = "other_student"
ACTORS = ("anonymous", "student", "other_student", "instructor", "other_instructor", "admin")
SIGNED_IN = ACTORS[1:]
ROLES = {
    "student": Role.STUDENT,
    "other_student": Role.STUDENT,
    "instructor": Role.INSTRUCTOR,
    "other_instructor": Role.INSTRUCTOR,
    "admin": Role.ADMIN,
}
# Public probes the coverage check does not require (the clock has a row all the same).
NOT_REQUIRED = {
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/ready"),
    ("GET", "/api/v1/system/clock"),
}
NEW_PASSWORD = "a fresh and long passphrase 42"
WRONG_PASSWORD = "certainly not the password"

Expected = tuple[int, str | None]  # status, error code (None for a success)


# --------------------------------------------------------------------------- the actors


@dataclass(frozen=True)
class Member:
    """A signed-in actor: the user, the Authorization header and the session id."""

    user: User
    headers: dict[str, str]
    session_id: str


@dataclass
class World:
    """The actors of one test case, and a bystander: a student who is no actor, the subject of
    the public flows (login, refresh, reset...) so those never touch an actor's account."""

    api: Api
    members: dict[str, Member]
    bystander: User

    def headers(self, actor: str) -> dict[str, str]:
        return {} if actor == ANONYMOUS else self.members[actor].headers

    def id_of(self, actor: str) -> str:
        return str(self.members[actor].user.id)

    async def me(self, headers: dict[str, str]) -> tuple[Expected, Any]:
        """(status, error code) and body of GET /api/v1/users/me with these headers."""
        response = await self.api.client.get("/api/v1/users/me", headers=headers)
        body = await response.json()
        return (response.status, body.get("error")), body

    async def stored(self, actor: str) -> User:
        """The actor's row as committed now."""
        async with self.api.app[keys.DATABASE].sessions() as session:
            user = await session.get(User, self.members[actor].user.id)
        assert user is not None
        return user

    async def sessions_ended(self, ended: set[str]) -> None:
        """Exactly these actors' sessions are refused now; every other one still works."""
        for name in SIGNED_IN:
            expected = (401, "token_revoked") if name in ended else (200, None)
            assert (await self.me(self.headers(name)))[0] == expected, name


async def build_world(api: Api) -> World:
    """The five users signed in (a real session and token pair each, as POST /auth/login
    opens them) and the bystander, in one transaction: signing in over HTTP would add a
    fifth to the time of the matrix, and /auth/login has its own row."""
    kit = api.app[keys.AUTH]

    async def create(session: AsyncSession, name: str, role: Role) -> User:
        return await service.create_user(
            session,
            email=f"{name.replace('_', '-')}@example.org",
            full_name=f"Test {role.value}",
            password=PASSWORD,
            role=role,
            verified=True,
            bcrypt_rounds=kit.settings.bcrypt_rounds,
        )

    members: dict[str, Member] = {}
    async with api.app[keys.DATABASE].transaction() as session:
        for name in SIGNED_IN:
            user = await create(session, name, ROLES[name])
            pair = await service.open_session(session, kit=kit, user=user, client=service.Client())
            headers = {"Authorization": f"Bearer {pair.access_token}"}
            members[name] = Member(user, headers, str(pair.session_id))
        bystander = await create(session, "bystander", Role.STUDENT)
    return World(api, members, bystander)


async def enable_email_mfa(api: Api, user: User) -> None:
    async with api.app[keys.DATABASE].transaction() as session:
        stored = await session.get(User, user.id)
        assert stored is not None
        stored.mfa_method = MfaMethod.EMAIL.value


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Call:
    """What to send: JSON or form body, and the values of the path's {placeholders}."""

    json: Any = None
    form: dict[str, str] | None = None
    path: dict[str, str] = field(default_factory=dict)


Build = Callable[[World, str], Awaitable[Call]]
Check = Callable[[World, str, Any], Awaitable[None]]


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # as declared in the route table
    expect: Mapping[str, Expected]
    build: Build
    then: Check | None = None  # what must hold afterwards (given actor and response body)
    variant: str = ""

    def id_for(self, actor: str) -> str:
        suffix = f" ({self.variant})" if self.variant else ""
        return f"{actor}-{self.method} {self.path}{suffix}"


def public(status: int) -> dict[str, Expected]:
    """roles=None: a token, if any, changes nothing."""
    return dict.fromkeys(ACTORS, (status, None))


def signed_in(status: int, code: str | None = None, **cells: Expected) -> dict[str, Expected]:
    """roles=[]: anyone with a token; anonymous callers are told to sign in."""
    table: dict[str, Expected] = dict.fromkeys(SIGNED_IN, (status, code))
    table[ANONYMOUS] = (401, "unauthorized")
    table.update(cells)
    return table


def admin_only(status: int, code: str | None = None) -> dict[str, Expected]:
    """roles=["admin"]: signed-in non-admins are refused (403), anonymous told to sign in."""
    return signed_in(403, "forbidden", admin=(status, code))


def send(json: Any = None, form: dict[str, str] | None = None) -> Build:
    """A body that depends on nothing."""

    async def build(world: World, actor: str) -> Call:
        return Call(json=json, form=form)

    return build


# ---- builders: state arranged for one cell, then its request


async def register_body(world: World, actor: str) -> Call:
    email = f"newcomer-{actor}@example.org"
    return Call(json={"email": email, "full_name": "Newcomer", "password": PASSWORD})


async def verification_link(world: World, actor: str) -> Call:
    """The link emailed to a new, unverified account."""
    body = {"email": "unverified@example.org", "full_name": "Unverified", "password": PASSWORD}
    response = await world.api.client.post("/api/v1/auth/register", json=body)
    assert response.status == 202
    [mail] = await world.api.mails(1)
    return Call(json={"token": token_in(mail)})


async def bystander_email(world: World, actor: str) -> Call:
    return Call(json={"email": world.bystander.email})


async def bystander_login(world: World, actor: str) -> Call:
    return Call(json={"email": world.bystander.email, "password": PASSWORD})


async def bystander_challenge(world: World, actor: str) -> Call:
    """The bystander (email codes on) signed in with the password; the challenge and the code."""
    await enable_email_mfa(world.api, world.bystander)
    challenge = await world.api.login(world.bystander.email)
    assert challenge["mfa_required"] is True
    [mail] = await world.api.mails(1)
    return Call(json={"challenge_id": challenge["challenge_id"], "code": code_in(mail)})


async def bystander_refresh_token(world: World, actor: str) -> Call:
    tokens = await world.api.login(world.bystander.email)
    return Call(json={"refresh_token": tokens["refresh_token"]})


async def bystander_password_grant(world: World, actor: str) -> Call:
    form = {"grant_type": "password", "username": world.bystander.email, "password": PASSWORD}
    return Call(form=form)


async def reset_link(world: World, actor: str) -> Call:
    """The reset link emailed to the bystander, and an acceptable new password."""
    body = {"email": world.bystander.email}
    response = await world.api.client.post("/api/v1/auth/password/forgot", json=body)
    assert response.status == 202
    [mail] = await world.api.mails(1)
    return Call(json={"token": token_in(mail), "password": NEW_PASSWORD})


async def rename(world: World, actor: str) -> Call:
    return Call(json={"full_name": f"Renamed by {actor}"})


async def victims_session(world: World, actor: str) -> Call:
    return Call(path={"session_id": world.members[VICTIM].session_id})


async def victims_email_challenge(world: World, actor: str) -> Call:
    """The victim started turning on email codes; the caller sends the victim's right code."""
    headers = world.headers(VICTIM)
    response = await world.api.client.post("/api/v1/users/me/mfa/email", headers=headers)
    assert response.status == 200
    challenge = await response.json()
    [mail] = await world.api.mails(1)
    return Call(json={"challenge_id": challenge["challenge_id"], "code": code_in(mail)})


async def victims_totp_code(world: World, actor: str) -> Call:
    """The victim started setting up an authenticator app; the caller sends its current code."""
    headers = world.headers(VICTIM)
    response = await world.api.client.post("/api/v1/users/me/mfa/totp", headers=headers)
    assert response.status == 200
    secret = (await response.json())["secret"]
    return Call(json={"code": pyotp.TOTP(secret).now()})


async def password_with_victims_mfa_on(world: World, actor: str) -> Call:
    """The victim has email codes on; the caller sends its own (correct) password."""
    await enable_email_mfa(world.api, world.members[VICTIM].user)
    return Call(json={"password": PASSWORD})


async def victims_record(world: World, actor: str) -> Call:
    return Call(path={"user_id": world.id_of(VICTIM)})


async def promote_victim(world: World, actor: str) -> Call:
    return Call(json={"role": Role.INSTRUCTOR.value}, path={"user_id": world.id_of(VICTIM)})


async def change_own_role(world: World, actor: str) -> Call:
    """Non-admins try to make themselves admin; the only admin tries to step down."""
    me = "student" if actor == ANONYMOUS else actor
    role = Role.STUDENT if actor == "admin" else Role.ADMIN
    return Call(json={"role": role.value}, path={"user_id": world.id_of(me)})


# ---- checks: what must hold after the request


async def token_is_bystanders(world: World, actor: str, body: Any) -> None:
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    status, me = await world.me(headers)
    assert status == (200, None)
    assert me["id"] == str(world.bystander.id)


async def ends_callers_session_only(world: World, actor: str, body: Any) -> None:
    """Only the caller's own session ends."""
    await world.sessions_ended(set() if actor == ANONYMOUS else {actor})


async def victims_session_ends_for_owner_only(world: World, actor: str, body: Any) -> None:
    await world.sessions_ended({VICTIM} if actor == VICTIM else set())


async def answers_about_caller(world: World, actor: str, body: Any) -> None:
    if actor != ANONYMOUS:
        assert body["id"] == world.id_of(actor)
        assert body["role"] == ROLES[actor].value


async def renamed_caller_only(world: World, actor: str, body: Any) -> None:
    for name in SIGNED_IN:
        expected = f"Renamed by {name}" if name == actor else f"Test {ROLES[name].value}"
        assert (await world.stored(name)).full_name == expected, name


async def password_unchanged(world: World, actor: str, body: Any) -> None:
    await world.api.login(world.bystander.email)
    for name in SIGNED_IN:
        await world.api.login(world.members[name].user.email)


async def lists_callers_session_only(world: World, actor: str, body: Any) -> None:
    if actor != ANONYMOUS:
        items = [(item["id"], item["current"]) for item in body["items"]]
        assert items == [(world.members[actor].session_id, True)]


def victims_mfa_after(owner_result: str | None, others_result: str | None) -> Check:
    """The victim's MFA method afterwards (it differs when the victim was the caller); the
    caller's own MFA stays off."""

    async def check(world: World, actor: str, body: Any) -> None:
        expected = owner_result if actor == VICTIM else others_result
        assert (await world.stored(VICTIM)).mfa_method == expected
        for name in SIGNED_IN:
            if name != VICTIM:
                assert (await world.stored(name)).mfa_method is None, name
        await world.sessions_ended(set())

    return check


async def recovery_codes_for_victim_only(world: World, actor: str, body: Any) -> None:
    if actor == VICTIM:
        assert len(body["recovery_codes"]) == service.RECOVERY_CODES


async def lists_everyone(world: World, actor: str, body: Any) -> None:
    if actor == "admin":
        ids = {item["id"] for item in body["items"]}
        assert {world.id_of(name) for name in SIGNED_IN} | {str(world.bystander.id)} <= ids


async def reads_victims_record(world: World, actor: str, body: Any) -> None:
    if actor == "admin":
        assert body["id"] == world.id_of(VICTIM)
        assert body["email"] == world.members[VICTIM].user.email


async def victim_promoted_by_admin_only(world: World, actor: str, body: Any) -> None:
    promoted = actor == "admin"
    role = Role.INSTRUCTOR if promoted else Role.STUDENT
    assert (await world.stored(VICTIM)).role == role.value
    # A role change ends the sessions, so no token keeps the old role.
    await world.sessions_ended({VICTIM} if promoted else set())


async def roles_unchanged(world: World, actor: str, body: Any) -> None:
    for name in SIGNED_IN:
        assert (await world.stored(name)).role == ROLES[name].value, name
    await world.sessions_ended(set())


async def whoami_is_caller(world: World, actor: str, body: Any) -> None:
    if actor != ANONYMOUS:
        assert body["user_id"] == world.id_of(actor)
        assert body["role"] == ROLES[actor].value


# --------------------------------------------------------------------------- the matrix

ROWS: list[Row] = [
    # ---- /auth: public (roles=None), so a token changes nothing: same status for all six.
    # A new address: 202 (the answer is the same whether or not the address was free).
    Row("POST", "/api/v1/auth/register", public(202), register_body),
    # A valid, unused link of an unverified account: the link alone is the credential.
    Row("POST", "/api/v1/auth/verify-email", public(204), verification_link),
    # Always 202 (the same answer for any address).
    Row("POST", "/api/v1/auth/verify-email/resend", public(202), bystander_email),
    # The bystander's right credentials: tokens for the bystander, whoever sends them.
    Row("POST", "/api/v1/auth/login", public(200), bystander_login, token_is_bystanders),
    # The bystander's open login challenge and its emailed code.
    Row("POST", "/api/v1/auth/mfa/verify", public(200), bystander_challenge, token_is_bystanders),
    # A live refresh token of the bystander: the refresh token is the credential.
    Row("POST", "/api/v1/auth/refresh", public(200), bystander_refresh_token, token_is_bystanders),
    # OAuth2 password grant with the bystander's right credentials.
    Row("POST", "/api/v1/auth/token", public(200), bystander_password_grant, token_is_bystanders),
    # roles=[]: ends the caller's own session (204); nobody else's session ends.
    Row("POST", "/api/v1/auth/logout", signed_in(204), send(), ends_callers_session_only),
    # Always 202 (the same answer for any address).
    Row("POST", "/api/v1/auth/password/forgot", public(202), bystander_email),
    # A valid reset link of the bystander and an acceptable new password.
    Row("POST", "/api/v1/auth/password/reset", public(204), reset_link),
    # ---- /users/me: roles=[]; each caller acts on their own account only.
    # The caller's own account.
    Row("GET", "/api/v1/users/me", signed_in(200), send(), answers_about_caller),
    # A valid new name: only the caller's own name changes.
    Row("PATCH", "/api/v1/users/me", signed_in(200), rename, renamed_caller_only),
    # A wrong current password and a valid new one: 403 wrong_password for everyone signed in
    # (not 401: the caller is signed in); nobody's password changes.
    Row(
        "POST",
        "/api/v1/users/me/password",
        signed_in(403, "wrong_password"),
        send({"current_password": WRONG_PASSWORD, "new_password": NEW_PASSWORD}),
        password_unchanged,
    ),
    # The caller's sessions only (one each), never another user's.
    Row("GET", "/api/v1/users/me/sessions", signed_in(200), send(), lists_callers_session_only),
    # The other student's session id: 404 session_not_found for anyone else (admin included:
    # this is not an admin endpoint), and that session still works; 204 for its owner.
    Row(
        "DELETE",
        "/api/v1/users/me/sessions/{session_id}",
        signed_in(404, "session_not_found", other_student=(204, None)),
        victims_session,
        victims_session_ends_for_owner_only,
    ),
    # Ends all the caller's sessions (one each), nobody else's.
    Row(
        "DELETE",
        "/api/v1/users/me/sessions",
        signed_in(200),
        send(),
        ends_callers_session_only,
    ),
    # Starts the caller's own email-code setup (MFA is off for every actor).
    Row("POST", "/api/v1/users/me/mfa/email", signed_in(200), send()),
    # The other student's pending challenge with its right code: 403 mfa_challenge_invalid
    # for anyone else (the challenge is not theirs), 200 for its owner.
    Row(
        "POST",
        "/api/v1/users/me/mfa/email/confirm",
        signed_in(403, "mfa_challenge_invalid", other_student=(200, None)),
        victims_email_challenge,
        victims_mfa_after(MfaMethod.EMAIL.value, None),
    ),
    # Starts the caller's own authenticator setup.
    Row("POST", "/api/v1/users/me/mfa/totp", signed_in(200), send()),
    # A current code of the other student's pending secret: the caller has nothing pending
    # (409 mfa_not_pending), the owner turns TOTP on (200).
    Row(
        "POST",
        "/api/v1/users/me/mfa/totp/confirm",
        signed_in(409, "mfa_not_pending", other_student=(200, None)),
        victims_totp_code,
        victims_mfa_after(MfaMethod.TOTP.value, None),
    ),
    # The caller's right password (204 for everyone); the other student's MFA stays on unless
    # they are the caller.
    Row(
        "POST",
        "/api/v1/users/me/mfa/disable",
        signed_in(204),
        password_with_victims_mfa_on,
        victims_mfa_after(None, MfaMethod.EMAIL.value),
    ),
    # The caller's right password; only the other student has MFA on: 409 mfa_not_pending for
    # everyone else, 200 with new codes for them.
    Row(
        "POST",
        "/api/v1/users/me/mfa/recovery-codes",
        signed_in(409, "mfa_not_pending", other_student=(200, None)),
        password_with_victims_mfa_on,
        recovery_codes_for_victim_only,
    ),
    # ---- /admin/users: roles=["admin"]; the role check comes before any body or lookup.
    Row("GET", "/api/v1/admin/users", admin_only(200), send(), lists_everyone),
    # The other student's record (for the other student: their own, still admin only).
    Row(
        "GET",
        "/api/v1/admin/users/{user_id}",
        admin_only(200),
        victims_record,
        reads_victims_record,
    ),
    # Another user (the other student) made instructor: only the admin may; their sessions end.
    Row(
        "PATCH",
        "/api/v1/admin/users/{user_id}",
        admin_only(200),
        promote_victim,
        victim_promoted_by_admin_only,
        variant="another user",
    ),
    # The caller's own record: non-admins ask to become admin (403); the only admin asks to
    # step down (409 last_admin). Nobody's role or session changes.
    Row(
        "PATCH",
        "/api/v1/admin/users/{user_id}",
        admin_only(409, "last_admin"),
        change_own_role,
        roles_unchanged,
        variant="self",
    ),
    # ---- /system
    # Public: the clock.
    Row("GET", "/api/v1/system/clock", public(200), send()),
    # Instance details are for admins only.
    Row("GET", "/api/v1/system/info", admin_only(200), send()),
    # Any signed-in caller, told who they are.
    Row("GET", "/api/v1/system/whoami", signed_in(200), send(), whoami_is_caller),
    # A valid address: admins only may queue mail (202).
    Row("POST", "/api/v1/system/test-email", admin_only(202), send({"to": "ops@example.org"})),
]

CELLS = [pytest.param(actor, row, id=row.id_for(actor)) for row in ROWS for actor in ACTORS]


@pytest.mark.parametrize(("actor", "row"), CELLS)
async def test_authorization(api: Api, actor: str, row: Row) -> None:
    world = await build_world(api)
    call = await row.build(world, actor)
    kwargs: dict[str, Any] = {"headers": world.headers(actor)}
    if call.json is not None:
        kwargs["json"] = call.json
    if call.form is not None:
        kwargs["data"] = call.form
    response = await api.client.request(row.method, row.path.format(**call.path), **kwargs)
    body = await response.json() if response.content_type == "application/json" else None
    code = body.get("error") if response.status >= 400 and isinstance(body, dict) else None
    assert (response.status, code) == row.expect[actor], body
    if row.then is not None:
        await row.then(world, actor, body)


def test_matrix_covers_every_endpoint(app: web.Application) -> None:
    from tests.test_authz_learning import ROWS as LEARNING_ROWS
    from tests.test_authz_live import ROWS as LIVE_ROWS
    from tests.test_authz_quiz import ROWS as QUIZ_ROWS

    rows = ROWS + [row.as_row() for row in LEARNING_ROWS + QUIZ_ROWS + LIVE_ROWS]
    served = {(spec.method, spec.path) for spec in app[keys.ROUTES] if spec.in_schema}
    covered = {(row.method, row.path) for row in rows}
    assert served - NOT_REQUIRED - covered == set(), "endpoints without a row in a matrix"
    assert covered - served == set(), "rows for endpoints the app no longer serves"
    for row in rows:
        assert set(row.expect) == set(ACTORS), row.id_for("*")
