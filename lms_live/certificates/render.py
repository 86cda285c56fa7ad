"""Certificate PDFs: a Jinja2 template rendered by WeasyPrint from packaged fonts and assets.

Invariants:
- nothing is fetched from outside `lms_live/certificates/assets/`: the `AssetsOnlyFetcher`
  serves files under that folder and `data:` URIs (the QR code) and refuses every other URL
  (http, other files, hosts), logging each refusal;
- every value printed comes from the template's autoescaped context, so a learner name with
  markup is printed as text and never parsed as HTML;
- each render gets a fresh PDF identifier, so two renders never produce the same bytes (a
  reissue always has a new SHA-256);
- renders run one at a time per process, in a thread of their own (created on first use):
  layout is CPU-bound Python under the GIL, so parallel renders would only add memory,
  WeasyPrint/Pango do not promise thread safety, and queued renders must not occupy the
  default executor that password hashing and file I/O use.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import mimetypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit
from urllib.request import url2pathname

import jinja2
import segno
from weasyprint import HTML  # type: ignore[import-untyped]
from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped]
from weasyprint.urls import URLFetcher, URLFetcherResponse  # type: ignore[import-untyped]

from lms_live.certificates.service import completed_on
from lms_live.paths import TEMPLATES

log = logging.getLogger("lms_live.certificates")

ASSETS = Path(__file__).resolve().parent / "assets"
TEMPLATE_DIR = TEMPLATES / "certificates"
ISSUER = "lms_live"

_render_lock = threading.Lock()


class RefusedResource(ValueError):
    """A URL the certificate renderer must not load."""


class AssetsOnlyFetcher(URLFetcher):  # type: ignore[misc]
    """Serves `data:` URIs and files under `root`; refuses (raises, logs) everything else."""

    def __init__(self, root: Path = ASSETS) -> None:
        super().__init__(timeout=1, allowed_protocols=("data", "file"))
        self.root = root.resolve()
        self.refused: list[str] = []

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> URLFetcherResponse:
        """The resource at `url`, or RefusedResource."""
        scheme = url.partition(":")[0].lower()
        if scheme == "data":
            return self._data(url)
        if scheme == "file":
            path = self._asset(url)
            if path is not None:
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                return URLFetcherResponse(path.as_uri(), path.read_bytes(), {"Content-Type": kind})
        self.refused.append(url)
        log.warning("certificate renderer refused to fetch %.200s", url)
        raise RefusedResource(f"certificates load packaged assets only, not {url[:200]}")

    def _asset(self, url: str) -> Path | None:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            return None
        path = Path(url2pathname(parts.path)).resolve()
        return path if path.is_relative_to(self.root) and path.is_file() else None

    def _data(self, url: str) -> URLFetcherResponse:
        header, comma, payload = url[len("data:") :].partition(",")
        if not comma:
            raise RefusedResource("malformed data: URI")
        kind, *params = header.split(";")
        if params and params[-1].lower() == "base64":
            body = base64.b64decode(payload)
        else:
            body = unquote_to_bytes(payload)
        return URLFetcherResponse(
            "data:", body, {"Content-Type": kind or "text/plain;charset=US-ASCII"}
        )


@dataclass(frozen=True, slots=True)
class CertificateContent:
    """What one certificate prints."""

    number: str
    learner_name: str
    course_title: str
    instructor_name: str
    completed_at: datetime
    verify_url: str
    issued_at: datetime


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def qr_data_uri(url: str) -> str:
    """The QR code of `url` as an SVG data: URI."""
    return segno.make_qr(url, error="m").svg_data_uri(scale=4, border=2)


def certificate_html(content: CertificateContent) -> str:
    """The certificate's HTML (every value autoescaped)."""
    return (
        _templates()
        .get_template("certificate.html")
        .render(
            issuer=ISSUER,
            number=content.number,
            learner_name=content.learner_name,
            course_title=content.course_title,
            instructor_name=content.instructor_name,
            completed_on=completed_on(content.completed_at),
            verify_url=content.verify_url,
            qr_code=qr_data_uri(content.verify_url),
            issued_at=content.issued_at.isoformat(timespec="seconds"),
        )
    )


@functools.cache
def _fonts() -> FontConfiguration:
    # One per process: a FontConfiguration loads every system font and copies each
    # @font-face file to a temporary folder; a fresh one per render leaked ~0.25 MiB each.
    return FontConfiguration()


def html_to_pdf(html: str, *, fetcher: AssetsOnlyFetcher | None = None) -> bytes:
    """Render HTML to PDF bytes with assets-only fetching (blocking, CPU-bound)."""
    options: dict[str, Any] = {"pdf_identifier": os.urandom(16).hex().encode()}
    with _render_lock:
        pdf: bytes = HTML(
            string=html,
            base_url=ASSETS.as_uri() + "/",
            url_fetcher=fetcher or AssetsOnlyFetcher(),
        ).write_pdf(font_config=_fonts(), **options)
    return pdf


def render_pdf(content: CertificateContent) -> bytes:
    """One certificate's PDF (blocking)."""
    return html_to_pdf(certificate_html(content))


@functools.cache
def _render_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="certificate-render")


async def render_certificate(content: CertificateContent) -> bytes:
    """One certificate's PDF, rendered in the render thread so the event loop keeps serving."""
    return await asyncio.get_running_loop().run_in_executor(_render_thread(), render_pdf, content)
