"""The public verification page, GET /certificates/{number}: the address printed on every
certificate and encoded in its QR code.

It shows whether the certificate is valid or revoked, and only the learner's name, the
course and the completion date (never the revocation reason); an unknown or malformed number
gets a 404 page. The number is matched case-insensitively (people type what they read).
Templates: `templates/certificates/verify_page.html`, extending the sign-in pages' layout, in
an aiohttp-jinja2 environment of its own (`PAGES`) so the pages' environment stays untouched.
"""

from __future__ import annotations

import re

import aiohttp_jinja2
import jinja2
from aiohttp import web

from lms_live import keys
from lms_live.certificates import service
from lms_live.certificates.exceptions import CertificateNotFound
from lms_live.certificates.models import Certificate
from lms_live.certificates.schemas import NUMBER_PATTERN
from lms_live.core.http import RouteTable
from lms_live.paths import TEMPLATES
from lms_live.web.pages import current_user, page

PAGES: web.AppKey[jinja2.Environment] = web.AppKey("certificate_pages", jinja2.Environment)

routes = RouteTable()
_NUMBER = re.compile(NUMBER_PATTERN)


def setup_certificate_pages(app: web.Application) -> None:
    """Add the verification page routes to the app (after `setup_sessions(app)`)."""
    aiohttp_jinja2.setup(
        app,
        app_key=PAGES,
        loader=jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader(TEMPLATES / "certificates"),
                jinja2.FileSystemLoader(TEMPLATES / "pages"),
            ]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        default_helpers=False,
    )
    routes.install(app)


async def _find(request: web.Request, number: str) -> Certificate | None:
    if not _NUMBER.fullmatch(number):
        return None
    async with request.app[keys.DATABASE].reads() as session:
        try:
            return await service.get_issued(session, number=number)
        except CertificateNotFound:
            return None


@routes.get(
    "/certificates/{number}",
    summary="Certificate verification page",
    tags=["pages"],
    media_type="text/html",
    in_schema=False,
    rate_limit=None,
)
@page
async def certificate_page(request: web.Request) -> web.StreamResponse:
    number = request.match_info["number"].strip().upper()
    certificate = await _find(request, number)
    context: dict[str, object] = {
        "user": current_user(request),
        "flash": None,
        "number": number[:40],
        "certificate": certificate,
    }
    if certificate is not None:
        context["completed_on"] = service.completed_on(certificate.completed_at)
        revoked_at = certificate.revoked_at
        context["revoked_on"] = service.completed_on(revoked_at) if revoked_at else ""
    return aiohttp_jinja2.render_template(
        "verify_page.html",
        request,
        context,
        status=200 if certificate is not None else 404,
        app_key=PAGES,
    )
