"""Settings: the only place that reads `VOLTHAUS_*` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from csms.ocpp.security import load_or_create_login_key, parse_login_key


def data_dir() -> Path:
    """Where a node keeps its files by default: the user's XDG data folder."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).absolute() / "volthaus"


def default_database_url() -> str:
    """One SQLite file per user, whatever the current directory: the XDG data folder."""
    return f"sqlite:///{data_dir() / 'volthaus.db'}"


def default_login_key_file() -> Path:
    return data_dir() / "login.key"


class Settings(BaseSettings):
    """Validated loudly at start; passed down to `build_app` and the OCPP server."""

    model_config = SettingsConfigDict(env_prefix="VOLTHAUS_", extra="ignore")

    database_url: str = Field(
        default_factory=default_database_url,
        description="sqlite:///PATH or postgresql://USER@HOST:PORT/DB (driver chosen inside); "
        "default: $XDG_DATA_HOME/volthaus/volthaus.db (~/.local/share/volthaus/volthaus.db)",
    )
    redis_url: str | None = Field(default=None, description="redis://HOST:PORT/DB, else in-process")
    node_id: str | None = Field(default=None, description="this process on the bus")
    redis_namespace: str = Field(
        default="volthaus", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="the installation's prefix on Redis: nodes of one installation share it")
    host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = Field(
        default=None,
        description="the pages' address as people reach it (behind a proxy: https://…), for "
        "set-password links; default http://HOST:HTTP_PORT",
    )
    ocpp_port: int = Field(default=9000, ge=0, le=65535)
    # Websocket compression (permessage-deflate) for stations that offer it.
    ocpp_compression: bool = True
    # OCPP over TLS (security profiles 2 and 3): a second listener when cert and key are set.
    ocpp_tls_port: int = Field(default=9443, ge=0, le=65535)
    ocpp_tls_cert_file: Path | None = None
    ocpp_tls_key_file: Path | None = None
    ocpp_tls_client_ca_file: Path | None = Field(
        default=None, description="CA that signs station client certificates (profile 3)"
    )
    duty_lease_s: float = Field(
        default=15.0, ge=1, le=300,
        description="lease of the device loops (laundry, meters): a dead node's are taken "
        "over after this",
    )
    heartbeat_interval_s: int = Field(default=300, ge=10, le=86400)
    pending_retry_interval_s: int = Field(default=60, ge=5, le=86400)
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")
    smtp_host: str | None = Field(default=None, description="wallet alerts by e-mail via this host")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "Volthaus <wallet@localhost>"
    webhook_url: str | None = Field(default=None, description="wallet alerts POSTed here, signed")
    webhook_secret: str | None = Field(
        default=None, description="HMAC-SHA256 key of webhooks", validate_default=True
    )
    household_webhook_private_ok: bool = Field(
        default=False,
        description="let households' own webhooks point into private networks (LAN receivers)",
    )
    # The key of station verified-login records (csms.ocpp.security): never in the database,
    # so a stolen database cannot test station passwords cheaply. Every node of one
    # installation needs the same key: set it here (64 hex digits), or share the file.
    login_key: SecretStr | None = Field(default=None, description="64 hex digits; else the file")
    login_key_file: Path = Field(
        default_factory=default_login_key_file,
        description="created with mode 0600 on first start when login_key is not set; "
        "default: $XDG_DATA_HOME/volthaus/login.key",
    )
    alert_interval_s: float = Field(default=10, gt=0, description="how often queued alerts go out")

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("database_url must start with sqlite:// or postgresql://")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_with_webhook(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("webhook_url") and not value:
            raise ValueError("required when webhook_url is set (webhooks are signed)")
        return value

    @field_validator("login_key")
    @classmethod
    def _login_key_hex(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_login_key(value.get_secret_value())
        return value

    def pages_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.http_port}").rstrip("/")

    def station_login_key(self) -> bytes:
        """The login key: the setting, else the key file (created on first use)."""
        if self.login_key is not None:
            return parse_login_key(self.login_key.get_secret_value())
        return load_or_create_login_key(self.login_key_file)

    @property
    def var_dir(self) -> Path:
        return Path("var")

    @property
    def database_shown(self) -> str:
        """The database URL without its password, for logs and the CLI's first line."""
        parts = urlsplit(self.database_url)
        if parts.password is None:
            return self.database_url
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
