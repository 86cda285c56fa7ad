"""Certificate rendering benchmark: how many certificate PDFs one process renders per minute.

Run by hand (`.venv/bin/python bench/certificates.py`, `--help` for the options). It renders
`--count` certificates one after another in this process through the same code the issue task
uses (`lms_live.certificates.render.render_pdf`: Jinja2 template, QR code, WeasyPrint with the
packaged fonts and the assets-only URL fetcher), each with its own number and a learner name
and course title of varying length, and hashes each PDF (SHA-256) as the task does. No
database, storage or email: only the CPU-bound part the worker pays per certificate.
`--warmup` renders first are discarded (imports, font loading, template compilation).

Progress goes to stderr (one line, rewritten); the results go to stdout: renders/minute,
the per-render p50/p95/max in ms, the mean PDF size and the process's peak RSS.
"""

from __future__ import annotations

import os
import sys

# `python bench/certificates.py` puts bench/ first on sys.path, where bench/http.py would
# shadow the standard library's `http` package (which urllib, hence WeasyPrint, imports).
if os.path.abspath(sys.path[0] or os.curdir) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.remove(sys.path[0])
if os.path.dirname(os.path.dirname(os.path.abspath(__file__))) not in sys.path:
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import hashlib
import platform
import resource
import statistics
import time
from datetime import UTC, datetime, timedelta

from lms_live.certificates.render import CertificateContent, render_pdf
from lms_live.certificates.service import new_number, verify_url

NAMES = [
    "Ada Lovelace",
    "Zoë Ångström-Łukasiewicz",
    "Maria Salomea Skłodowska-Curie",
    "Srinivasa Ramanujan Aiyangar",
    "Grace Brewster Murray Hopper " * 3,
]
TITLES = [
    "Analytical Engines",
    "Introduction to Distributed Systems: Consensus, Replication and Failure",
    "Ελληνικά για αρχάριους",  # noqa: RUF001 (Greek on purpose)
]


def content(index: int) -> CertificateContent:
    """The index-th certificate of the run (names and titles vary in length)."""
    number = new_number(2026)
    now = datetime.now(UTC)
    return CertificateContent(
        number=number,
        learner_name=NAMES[index % len(NAMES)].strip(),
        course_title=TITLES[index % len(TITLES)],
        instructor_name="Charles Babbage",
        completed_at=now - timedelta(days=index % 300),
        verify_url=verify_url("https://lms.example.org", number),
        issued_at=now,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="certificates measured")
    parser.add_argument("--warmup", type=int, default=5, help="renders first, not measured")
    args = parser.parse_args()
    if args.count < 1 or args.warmup < 0:
        parser.error("--count must be >= 1 and --warmup >= 0")

    for index in range(args.warmup):
        render_pdf(content(index))
    timings: list[float] = []
    sizes: list[int] = []
    started = time.perf_counter()
    for index in range(args.count):
        item = content(index)
        began = time.perf_counter()
        pdf = render_pdf(item)
        hashlib.sha256(pdf).hexdigest()
        timings.append(time.perf_counter() - began)
        sizes.append(len(pdf))
        elapsed = time.perf_counter() - started
        print(
            f"\rrendered {index + 1}/{args.count}  {60 * (index + 1) / elapsed:,.0f}/min",
            end="",
            file=sys.stderr,
            flush=True,
        )
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)

    ms = sorted(t * 1000 for t in timings)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {os.cpu_count()} CPUs; Python {platform.python_version()}; one process")
    print(f"certificates rendered: {args.count} in {elapsed:.1f} s (after {args.warmup} warm-up)")
    print(f"renders/minute: {60 * args.count / elapsed:,.0f}")
    print(
        f"per render ms: p50 {statistics.median(ms):.1f}, "
        f"p95 {ms[max(0, round(0.95 * len(ms)) - 1)]:.1f}, max {ms[-1]:.1f}"
    )
    print(f"mean PDF size: {statistics.fmean(sizes) / 1024:.1f} KiB")
    print(f"peak RSS: {peak_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
