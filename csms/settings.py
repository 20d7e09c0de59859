"""Settings: the only place that reads `VOLTHAUS_*` environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from csms.ocpp.security import load_or_create_login_key, parse_login_key

if TYPE_CHECKING:
    from csms.ocpp.station_ca import StationCa


def data_dir() -> Path:
    """Where a node keeps its files by default: the user's XDG data folder."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).absolute() / "volthaus"


def default_database_url() -> str:
    """One SQLite file per user, whatever the current directory: the XDG data folder."""
    return f"sqlite:///{data_dir() / 'volthaus.db'}"


def default_login_key_file() -> Path:
    return data_dir() / "login.key"


def default_station_ca_dir() -> Path:
    return data_dir() / "station-ca"


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
    # Per station: CALLs it may send per second, sustained, and in a burst; beyond, its socket
    # is read more slowly (TCP backpressure on that station only).
    ocpp_messages_per_s: float = Field(default=20.0, gt=0, le=10000)
    ocpp_message_burst: int = Field(default=200, ge=1, le=100000)
    ocpp_commit_window_ms: float = Field(
        default=20.0, ge=0, le=1000,
        description="how long station messages are gathered into one database transaction "
        "(fewer commits, less CPU; adds up to this much to a message's answer)",
    )
    # OCPP over TLS (security profiles 2 and 3): a second listener when cert and key are set.
    ocpp_tls_port: int = Field(default=9443, ge=0, le=65535)
    ocpp_tls_cert_file: Path | None = None
    ocpp_tls_key_file: Path | None = None
    ocpp_tls_client_ca_file: Path | None = Field(
        default=None, description="CA that signs station client certificates (profile 3)"
    )
    # OCPP's TLS 1.2 cipher suites need an ECDSA certificate (ECDHE-ECDSA-*) and an RSA one
    # (AES128-GCM-SHA256, the RSA-only suites): the listener serves both when given both.
    ocpp_tls_second_cert_file: Path | None = Field(
        default=None, description="a second certificate, of the other key type (RSA beside "
        "ECDSA or the reverse)")
    ocpp_tls_second_key_file: Path | None = Field(default=None, validate_default=True)
    ocpp_tls_self_issued: bool = Field(
        default=False, description="serve TLS with an ECDSA and an RSA certificate the station "
        "CA issues (when no certificate file is set)")
    ocpp_tls_server_names: str = Field(
        default="localhost,127.0.0.1", pattern=r"^[A-Za-z0-9.:*-]+(,[A-Za-z0-9.:*-]+)*$",
        description="comma-separated host names and addresses stations reach the TLS "
        "listener by (the self-issued certificates' names)")
    # The CA that signs station certificates (SignCertificate) and that the TLS listener
    # trusts for client certificates (profile 3).
    station_ca_dir: Path = Field(
        default_factory=default_station_ca_dir,
        description="where the built-in station CA is made on first need and kept; default: "
        "$XDG_DATA_HOME/volthaus/station-ca",
    )
    station_ca_cert_file: Path | None = Field(
        default=None, description="a CA of your own instead of the built-in one (with its key)")
    station_ca_key_file: Path | None = Field(default=None, validate_default=True)
    station_cert_days: int = Field(default=365, ge=1, le=3650,
                                   description="validity of a signed station certificate")
    station_cert_renew_days: int = Field(
        default=30, ge=1, le=3650,
        description="stations whose certificate ends within this are asked to renew it")
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
    login_hash_interval_s: float = Field(
        default=1.0, ge=0, le=3600,
        description="pause between two scrypt hashes of imported station passwords (each "
        "~40 ms of CPU, after the station's first login)",
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

    @field_validator("station_ca_key_file")
    @classmethod
    def _ca_pair(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if (value is None) != (info.data.get("station_ca_cert_file") is None):
            raise ValueError("station_ca_cert_file and station_ca_key_file go together")
        return value

    @field_validator("ocpp_tls_second_key_file")
    @classmethod
    def _second_pair(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if (value is None) != (info.data.get("ocpp_tls_second_cert_file") is None):
            raise ValueError("ocpp_tls_second_cert_file and ocpp_tls_second_key_file go "
                             "together")
        return value

    def station_ca(self) -> StationCa:
        """The station CA's files (nothing is read or made until it is first needed)."""
        from csms.ocpp.station_ca import StationCa

        return StationCa(self.station_ca_dir, cert_file=self.station_ca_cert_file,
                         key_file=self.station_ca_key_file)

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
