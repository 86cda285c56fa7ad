"""Settings: one validated object built from the environment (and an optional `.env` file).

Unset means the embedded default: SQLite, in-process Socket.IO/rate limits/blacklist, the
in-memory task broker, a local file folder and an email outbox folder. Production
(`ENVIRONMENT=production`) refuses to start with unsafe values, naming the setting at fault.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRET = "dev-secret-change-me"  # noqa: S105 (refused in production)
MIN_SECRET_LENGTH = 32

_RATE = re.compile(r"^([1-9]\d*)/(second|minute|hour)$")
_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}

CsvList = Annotated[list[str], NoDecode]


class UnsafeSettings(ValueError):
    """Raised when production settings are unsafe; the message names the setting."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


@lru_cache(maxsize=32)
def parse_rate(value: str) -> tuple[int, float]:
    """Parse "120/minute" into (requests, period in seconds)."""
    match = _RATE.match(value.strip())
    if not match:
        raise ValueError(f"rate must look like '120/minute', got {value!r}")
    return int(match.group(1)), _PERIODS[match.group(2)]


class Settings(BaseSettings):
    """Every setting of lms_live; see README "Configuration" for the table."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    environment: Literal["development", "test", "production"] = "development"
    debug: bool = False
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    secret_key_previous: Annotated[list[SecretStr], NoDecode] = []
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    public_url: str = "http://localhost:8080"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path("var")

    database_url: str | None = None
    database_pool_size: int = Field(20, ge=1)
    database_max_overflow: int = Field(0, ge=0)  # connections beyond the pool (see core/db.py)
    database_pool_timeout: float = Field(10.0, gt=0)  # wait for a free connection, then 503
    database_echo: bool = False

    redis_url: str | None = None
    redis_health_check_interval: int = Field(15, ge=1)
    redis_pool_size: int = Field(50, ge=2)
    socketio_channel: str = "lms:socketio"
    task_queue: str = "lms:tasks"
    task_broker: Literal["auto", "redis", "memory"] = "auto"

    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None

    trusted_hosts: CsvList = ["localhost", "127.0.0.1", "::1"]
    trusted_proxies: CsvList = []
    cors_origins: CsvList = []
    max_body_bytes: int = Field(1_048_576, ge=1024)
    socket_max_message_bytes: int = Field(65_536, ge=1024)
    socket_compression: bool = False

    rate_limit_enabled: bool = True
    rate_limit: str = "300/minute"
    rate_limit_auth: str = "60/minute"

    response_envelope: bool = False
    metrics_token: SecretStr | None = None
    log_level: str = "INFO"
    loop_stall_log_ms: int = Field(0, ge=0)
    log_format: Literal["auto", "json", "text"] = "auto"

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_timeout: float = 10.0
    mail_from: str = "lms_live <no-reply@localhost>"
    outbox_dir: Path | None = None

    access_token_minutes: int = Field(15, ge=1, le=60)
    refresh_token_days: int = Field(30, ge=1, le=365)
    session_max_days: int = Field(90, ge=1, le=365)
    refresh_reuse_grace_seconds: float = Field(10.0, ge=0, le=120)
    login_max_failures: int = Field(5, ge=1)
    login_failure_window_minutes: int = Field(15, ge=1)
    email_verification_hours: int = Field(24, ge=1)
    password_reset_minutes: int = Field(30, ge=5)
    mfa_code_minutes: int = Field(5, ge=1, le=30)
    mfa_max_attempts: int = Field(5, ge=1, le=20)
    email_resend_cooldown_seconds: int = Field(60, ge=0)
    session_cookie_name: str = "lms_session"

    worker_concurrency: int = Field(20, ge=1)
    worker_shutdown_timeout: float = Field(8.0, ge=2, le=60)
    worker_redeliver_after: float = Field(300.0, ge=1)
    worker_metrics_port: int | None = None

    # Live quizzes (docs/live-protocol.md).
    live_join_rate: str = "30/minute"  # POST /api/v1/live/join per client IP
    live_socket_events_per_second: int = Field(20, ge=1)  # per /live socket, burst 2x
    live_answer_linger_ms: float = Field(10.0, ge=0, le=100)  # answer micro-batch wait
    live_answer_batch_max: int = Field(500, ge=1, le=5000)
    live_sweep_interval: float = Field(0.1, gt=0, le=5)  # closes due questions
    live_dashboard_interval: float = Field(0.25, gt=0, le=5)  # host dashboard ticks
    live_idle_minutes: int = Field(120, ge=1)  # a session idle this long is finished
    live_gc_freeze: bool = True  # keep full GC collections out of open questions (runtime.py)

    @field_validator(
        "trusted_hosts", "trusted_proxies", "cors_origins", "secret_key_previous", mode="before"
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("rate_limit", "rate_limit_auth", "live_join_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator(
        "database_url",
        "redis_url",
        "storage_url",
        "s3_endpoint_url",
        "s3_access_key_id",
        "s3_secret_access_key",
        "smtp_host",
        "smtp_username",
        "smtp_password",
        "metrics_token",
        "outbox_dir",
        "worker_metrics_port",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.task_broker == "redis" and not self.redis_url:
            raise ValueError("TASK_BROKER=redis needs REDIS_URL")
        return self

    @model_validator(mode="after")
    def _production_is_safe(self) -> Settings:
        if self.environment != "production":
            return self
        secret = self.secret_key.get_secret_value()
        if secret == DEFAULT_SECRET or len(secret) < MIN_SECRET_LENGTH:
            raise UnsafeSettings(
                f"SECRET_KEY must be set to a random value of at least {MIN_SECRET_LENGTH} "
                "characters in production"
            )
        if self.debug:
            raise UnsafeSettings("DEBUG must be off in production")
        if "*" in self.cors_origins:
            raise UnsafeSettings("CORS_ORIGINS must list origins, not '*', in production")
        if not self.trusted_hosts or "*" in self.trusted_hosts:
            raise UnsafeSettings("TRUSTED_HOSTS must list the served host names in production")

        return self

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def effective_database_url(self) -> str:
        """The configured database, or the embedded SQLite file under DATA_DIR."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'lms_live.db').as_posix()}"

    @property
    def effective_outbox_dir(self) -> Path:
        return self.outbox_dir or self.data_dir / "outbox"

    @property
    def effective_storage_url(self) -> str:
        return self.storage_url or f"file://{(self.data_dir / 'files').resolve().as_posix()}"

    @property
    def uses_task_stream(self) -> bool:
        """Tasks go through Redis to workers (else they run inside the web process)."""
        if self.task_broker == "auto":
            return self.redis_url is not None
        return self.task_broker == "redis"

    @property
    def json_logs(self) -> bool:
        if self.log_format == "auto":
            return self.is_production
        return self.log_format == "json"
