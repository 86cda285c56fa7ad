"""The certificate renderer loads packaged assets only: markup in names is printed as text, and
no URL outside `lms_live/certificates/assets/` is ever fetched (a local HTTP server counts)."""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lms_live import keys
from lms_live.certificates import render
from lms_live.certificates.render import (
    ASSETS,
    AssetsOnlyFetcher,
    CertificateContent,
    RefusedResource,
)
from lms_live.paths import ROOT
from tests.authkit import Api
from tests.test_certificates import completed_enrollment, issued, pdf_text, squeeze

GREEK = "Ελληνικά για αρχάριους"  # noqa: RUF001 (Greek on purpose: glyph coverage)


class Spy:
    """A local HTTP server that records every request it gets."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        spy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                spy.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/svg+xml")
                self.end_headers()
                self.wfile.write(b'<svg xmlns="http://www.w3.org/2000/svg"/>')

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def spy() -> Iterator[Spy]:
    server = Spy()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_the_spy_does_count_requests(spy: Spy) -> None:
    """Control: a plain fetch does reach the spy, so a zero count below means something."""
    import urllib.request

    with urllib.request.urlopen(spy.url("/control"), timeout=5) as response:  # noqa: S310
        assert response.status == 200
    assert spy.paths == ["/control"]


async def test_markup_in_the_name_is_printed_literally_and_nothing_is_fetched(
    api: Api, spy: Spy, tmp_path: Path
) -> None:
    name = f'<b>Ada</b> & "Bob" <img src={spy.url("/x")}>'
    world = await completed_enrollment(
        api, learner_name=name, course_title=f"<style>@import url({spy.url('/css')});</style>"
    )
    certificate = await issued(world)
    assert certificate.storage_key is not None
    pdf = await api.app[keys.STORAGE].get(certificate.storage_key)
    text = squeeze(pdf_text(pdf, tmp_path))
    assert squeeze(name) in text
    assert squeeze(f"<style>@import url({spy.url('/css')});</style>") in text
    assert spy.paths == []


def test_injected_html_fetches_nothing_outside_the_assets(
    spy: Spy, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Even HTML that reached the renderer unescaped could not make it fetch anything."""
    html = f"""<!doctype html><html><head>
      <link rel="stylesheet" href="{spy.url("/link.css")}">
      <style>
        @import url("{spy.url("/import.css")}");
        @font-face {{ font-family: X; src: url("{spy.url("/font.ttf")}"); }}
        body {{ background: url("{spy.url("/bg.png")}"); font-family: X; }}
        p {{ background: url("file:///etc/hostname"); }}
      </style></head><body>
      <p>Hello</p>
      <img src="{spy.url("/img.png")}">
      <img src="file:///etc/passwd">
      <img src="../render.py">
      <img src="//127.0.0.1:{spy.port}/scheme-relative.png">
      <object data="{spy.url("/object")}"></object>
      <iframe src="{spy.url("/frame")}"></iframe>
    </body></html>"""
    fetcher = AssetsOnlyFetcher()
    with caplog.at_level(logging.WARNING, logger="lms_live.certificates"):
        pdf = render.html_to_pdf(html, fetcher=fetcher)
    assert "Hello" in squeeze(pdf_text(pdf, tmp_path))
    assert spy.paths == []
    assert any("/img.png" in url for url in fetcher.refused)
    assert any("/import.css" in url for url in fetcher.refused)
    assert "file:///etc/passwd" in fetcher.refused
    assert "refused to fetch" in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x.png",
        "https://example.org/font.ttf",
        "ftp://example.org/x",
        "file:///etc/passwd",
        f"file://evil.example{ASSETS.as_posix()}/seal.svg",
        (ASSETS / ".." / "render.py").as_uri(),
        (ASSETS / "fonts").as_uri(),
        (ASSETS / "missing.svg").as_uri(),
        (ROOT / "templates" / "certificates" / "certificate.html").as_uri(),
        "data-not-a-scheme",
    ],
)
def test_fetcher_refuses_everything_but_assets_and_data(url: str) -> None:
    fetcher = AssetsOnlyFetcher()
    with pytest.raises(RefusedResource):
        fetcher.fetch(url)
    assert fetcher.refused == [url]


def test_fetcher_serves_assets_and_data_uris() -> None:
    fetcher = AssetsOnlyFetcher()
    seal = fetcher.fetch((ASSETS / "seal.svg").as_uri())
    assert seal.content_type == "image/svg+xml"
    assert seal.read() == (ASSETS / "seal.svg").read_bytes()
    font = fetcher.fetch((ASSETS / "fonts" / "DejaVuSerif.ttf").as_uri())
    assert font.read()[:4] == b"\x00\x01\x00\x00"
    qr = fetcher.fetch(render.qr_data_uri("http://127.0.0.1/certificates/LMS-2026-7K3Q-9XWM"))
    assert qr.content_type == "image/svg+xml"
    assert qr.read().startswith(b"<svg")
    plain = fetcher.fetch("data:text/plain;base64,aGk=")
    assert plain.read() == b"hi"
    assert fetcher.refused == []


def test_each_render_has_its_own_bytes_and_uses_packaged_fonts_only(tmp_path: Path) -> None:
    content = CertificateContent(
        number="LMS-2026-7K3Q-9XWM",
        learner_name="Zoë Ångström-Łukasiewicz",
        course_title=GREEK,
        instructor_name="Jürgen",
        completed_at=datetime(2026, 1, 2, tzinfo=UTC),
        verify_url="http://127.0.0.1/certificates/LMS-2026-7K3Q-9XWM",
        issued_at=datetime(2026, 1, 3, tzinfo=UTC),
    )
    fetcher = AssetsOnlyFetcher()
    first = render.html_to_pdf(render.certificate_html(content), fetcher=fetcher)
    assert fetcher.refused == []  # the template needs nothing but its assets
    second = render.render_pdf(content)
    assert first != second
    text = squeeze(pdf_text(first, tmp_path))
    assert squeeze("Zoë Ångström-Łukasiewicz") in text
    assert squeeze(GREEK) in text
    path = tmp_path / "fonts.pdf"
    path.write_bytes(first)
    fonts = subprocess.run(
        ["pdffonts", str(path)], capture_output=True, text=True, check=True
    ).stdout
    names = [line.split()[0] for line in fonts.splitlines()[2:]]
    assert names
    assert all(name.split("+", 1)[-1].startswith("Certificate-") for name in names), fonts


def test_the_longest_names_stay_on_one_page(tmp_path: Path) -> None:
    longest = "W" * 200  # the widest letter, at each field's maximum length
    content = CertificateContent(
        number="LMS-2026-7K3Q-9XWM",
        learner_name=longest,
        course_title=longest,
        instructor_name=longest,
        completed_at=datetime(2026, 1, 2, tzinfo=UTC),
        verify_url="https://lms.example.org/certificates/LMS-2026-7K3Q-9XWM",
        issued_at=datetime(2026, 1, 3, tzinfo=UTC),
    )
    path = tmp_path / "long.pdf"
    path.write_bytes(render.render_pdf(content))
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    assert re.search(r"^Pages:\s+1$", info.stdout, re.MULTILINE), info.stdout
    text = squeeze(pdf_text(path.read_bytes(), tmp_path))
    assert text.count(longest) >= 3
    assert "LMS-2026-7K3Q-9XWM" in text
