"""Settings: environment parsing, production safety checks, derived values, CLI error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from lms_live import cli
from lms_live.settings import DEFAULT_SECRET, Settings, parse_rate

GOOD_SECRET = "k" * 32


def build(**values: Any) -> Settings:
    """Settings from keyword values only (no `.env` file)."""
    return Settings(_env_file=None, **values)


def production(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "production",
        "secret_key": GOOD_SECRET,
        "trusted_hosts": ["lms.example.org"],
        "cors_origins": ["https://lms.example.org"],
    }
    values.update(overrides)
    return build(**values)


def refused(excinfo: pytest.ExceptionInfo[ValidationError]) -> str:
    return str(excinfo.value)


# --- production safety ------------------------------------------------------------------------


def test_safe_production_settings_are_accepted() -> None:
    settings = production()
    assert settings.is_production
    assert settings.secret_key.get_secret_value() == GOOD_SECRET


def test_development_accepts_the_default_secret() -> None:
    settings = build(environment="development")
    assert settings.secret_key.get_secret_value() == DEFAULT_SECRET
    assert not settings.is_production


@pytest.mark.parametrize("secret", [DEFAULT_SECRET, "x" * 31, ""])
def test_production_refuses_default_or_short_secret_key(secret: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        production(secret_key=secret)
    assert "SECRET_KEY" in refused(excinfo)


def test_production_refuses_a_missing_secret_key() -> None:
    with pytest.raises(ValidationError) as excinfo:
        build(environment="production", trusted_hosts=["lms.example.org"])
    assert "SECRET_KEY" in refused(excinfo)


def test_production_accepts_a_secret_of_exactly_32_characters() -> None:
    assert production(secret_key="s" * 32).secret_key.get_secret_value() == "s" * 32


def test_production_refuses_debug() -> None:
    with pytest.raises(ValidationError) as excinfo:
        production(debug=True)
    assert "DEBUG" in refused(excinfo)


@pytest.mark.parametrize("origins", ["*", "https://a.example,*"])
def test_production_refuses_wildcard_cors_origins(origins: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        production(cors_origins=origins)
    assert "CORS_ORIGINS" in refused(excinfo)


@pytest.mark.parametrize("hosts", ["", " , ", "*", "lms.example.org,*", []])
def test_production_refuses_empty_or_wildcard_trusted_hosts(hosts: str | list[str]) -> None:
    with pytest.raises(ValidationError) as excinfo:
        production(trusted_hosts=hosts)
    assert "TRUSTED_HOSTS" in refused(excinfo)


def test_non_production_tolerates_wildcards_and_debug() -> None:
    settings = build(environment="test", debug=True, cors_origins="*", trusted_hosts="*")
    assert settings.debug
    assert settings.cors_origins == ["*"]


# --- environment variables and .env ------------------------------------------------------------


def test_lists_are_read_comma_separated_from_the_environment(
    no_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUSTED_HOSTS", " a.example , b.example,,")
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example,https://b.example")
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7,::1")
    settings = build()
    assert settings.trusted_hosts == ["a.example", "b.example"]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.trusted_proxies == ["10.0.0.0/8", "192.168.1.7", "::1"]


def test_environment_variables_configure_production(
    no_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", GOOD_SECRET)
    monkeypatch.setenv("TRUSTED_HOSTS", "lms.example.org")
    monkeypatch.setenv("DEBUG", "false")
    monkeypatch.setenv("PORT", "9000")
    settings = build()
    assert settings.is_production
    assert settings.port == 9000
    assert settings.trusted_hosts == ["lms.example.org"]


def test_production_from_environment_without_secret_names_secret_key(
    no_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        build()


def test_dotenv_file_is_read_and_environment_wins(
    no_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("TRUSTED_HOSTS=x.example,y.example\nPORT=7000\nLOG_LEVEL=DEBUG\n")
    monkeypatch.setenv("PORT", "7001")
    settings = Settings(_env_file=env_file)
    assert settings.trusted_hosts == ["x.example", "y.example"]
    assert settings.log_level == "DEBUG"
    assert settings.port == 7001


@pytest.mark.parametrize("proxies", ["10.0.0.300", "not-an-ip", "10.0.0.0/8,example.com"])
def test_trusted_proxies_must_be_ip_networks(proxies: str) -> None:
    with pytest.raises(ValidationError, match="trusted_proxies"):
        build(trusted_proxies=proxies)


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(ValidationError, match="environment"):
        build(environment="prod")


# --- rates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("120/minute", (120, 60.0)),
        ("5/second", (5, 1.0)),
        ("1000/hour", (1000, 3600.0)),
        (" 20/minute ", (20, 60.0)),
    ],
)
def test_parse_rate_reads_requests_and_period(text: str, expected: tuple[int, float]) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize(
    "text", ["", "120", "120/min", "120/minutes", "-1/minute", "1.5/minute", "abc/minute", "/hour"]
)
def test_parse_rate_refuses_malformed_rates(text: str) -> None:
    with pytest.raises(ValueError, match="rate must look like"):
        parse_rate(text)


def test_parse_rate_refuses_a_zero_rate() -> None:
    # "0/minute" would make every rate limiter divide by zero (rate = 0 / period).
    with pytest.raises(ValueError, match="rate"):
        parse_rate("0/minute")


@pytest.mark.parametrize("field", ["rate_limit", "rate_limit_auth"])
def test_invalid_rate_setting_is_refused(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        build(**{field: "lots"})


# --- derived values ----------------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_urls_mean_unset(no_env: None, monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    monkeypatch.setenv("DATABASE_URL", blank)
    monkeypatch.setenv("REDIS_URL", blank)
    settings = build()
    assert settings.database_url is None
    assert settings.redis_url is None


def test_effective_database_url_is_sqlite_under_data_dir_when_unset(tmp_path: Path) -> None:
    settings = build(database_url="", data_dir=tmp_path / "data")
    assert settings.effective_database_url == (
        f"sqlite+aiosqlite:///{(tmp_path / 'data' / 'lms_live.db').as_posix()}"
    )


def test_effective_database_url_is_the_configured_one() -> None:
    url = "postgresql+asyncpg://u@db.example:5432/lms"
    assert build(database_url=url).effective_database_url == url


@pytest.mark.parametrize(
    ("environment", "log_format", "expected"),
    [
        ("production", "auto", True),
        ("development", "auto", False),
        ("test", "auto", False),
        ("development", "json", True),
        ("production", "text", False),
    ],
)
def test_json_logs(environment: str, log_format: str, expected: bool) -> None:
    extra = {"secret_key": GOOD_SECRET} if environment == "production" else {}
    settings = build(environment=environment, log_format=log_format, **extra)
    assert settings.json_logs is expected


# --- CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make `serve` fail loudly if it ever got past configuration (and ignore any ./.env)."""

    def started(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("serve went past configuration")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("aiohttp.web.run_app", started)
    monkeypatch.setattr("lms_live.migrations.upgrade", started)
    monkeypatch.setattr("lms_live.cli.configure_logging", started)


def test_serve_in_production_without_secret_key_exits_naming_it(
    no_env: None, no_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    result = CliRunner().invoke(cli.main, ["serve"])
    assert result.exit_code != 0
    assert "SECRET_KEY" in result.output
    assert "invalid configuration" in result.output
    assert not isinstance(result.exception, AssertionError)


def test_serve_with_invalid_proxy_exits_naming_the_setting(
    no_env: None, no_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "not-an-ip")
    result = CliRunner().invoke(cli.main, ["serve"])
    assert result.exit_code != 0
    assert "TRUSTED_PROXIES" in result.output
    assert not isinstance(result.exception, AssertionError)
