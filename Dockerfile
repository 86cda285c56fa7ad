# lms_live image: one image for every process (serve, worker, scheduler, migrate).
# Build: docker build -t lms-live:local .   (docker-compose.yml builds it for you)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LMS_ROOT=/app \
    DATA_DIR=/app/var

# Shared libraries WeasyPrint loads at run time (certificate PDFs) and a default font.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libpango-1.0-0 \
        libpangoft2-1.0-0 \
        libharfbuzz-subset0 \
        fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 lms \
 && useradd --system --uid 10001 --gid lms --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin lms

# Install the package (and its dependencies) from a throw-away copy of the source;
# pyproject.toml names README.md as the long description, so it is needed to build.
COPY pyproject.toml README.md /tmp/src/
COPY lms_live/ /tmp/src/lms_live/
RUN pip install /tmp/src && rm -rf /tmp/src

# Non-Python files, found through LMS_ROOT (lms_live/paths.py).
WORKDIR /app
COPY alembic.ini ./
COPY migrations/ migrations/
COPY templates/ templates/
COPY static/ static/
RUN mkdir -p /app/var && chown lms:lms /app/var

USER lms
EXPOSE 8080
CMD ["lms-live", "serve", "--host", "0.0.0.0", "--port", "8080"]
