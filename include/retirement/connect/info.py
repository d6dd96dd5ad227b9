"""The parts of a connection the library needs, without Airflow.

The DAG layer fills :class:`ConnectionInfo` from an Airflow ``Connection``; the CLI fills it
from ``AIRFLOW_CONN_<ID>`` environment variables (Airflow's own JSON or URI format), so
``retirement inventory PLAN`` works with the same connection definitions as the DAG.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from retirement.errors import SourceError

_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}


# The libpq parameters PostgresHook passes on from a connection's extra (it passes every
# extra but its own; these are the ones libpq knows, so a stray key cannot break the connect).
LIBPQ_OPTIONS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcrl",
        "sslcrldir",
        "sslsni",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "options",
        "application_name",
        "connect_timeout",
        "client_encoding",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "target_session_attrs",
        "gssencmode",
        "channel_binding",
    }
)
# MySqlHook's extra "ssl" (a mapping, or its JSON text): the keys PyMySQL takes.
_MYSQL_SSL = ("ca", "cert", "key", "capath", "cipher", "check_hostname")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def mysql_options(conn_id: str, extra: dict[str, Any]) -> dict[str, str]:
    """MySqlHook's ``ssl`` and ``charset`` extras as SQLAlchemy's PyMySQL URL options."""
    out: dict[str, str] = {}
    ssl = extra.get("ssl")
    if isinstance(ssl, str) and ssl.strip():
        try:
            ssl = json.loads(ssl)
        except json.JSONDecodeError as exc:
            raise SourceError(f"connection {conn_id}: extra.ssl is not JSON ({exc.msg})") from exc
    if ssl and not isinstance(ssl, dict):
        raise SourceError(
            f"connection {conn_id}: extra.ssl must be a mapping like "
            '{"ca": "/etc/ssl/ca.pem", "cert": ..., "key": ...}'
        )
    for key in _MYSQL_SSL:
        if ssl and ssl.get(key) not in (None, ""):
            out[f"ssl_{key}"] = _text(ssl[key])
    if extra.get("charset"):
        out["charset"] = str(extra["charset"])
    return out


@dataclass(frozen=True)
class ConnectionInfo:
    conn_id: str
    conn_type: str
    host: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    port: int | None = None
    schema: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def sqlalchemy_url(self) -> str:
        """A SQLAlchemy URL for a postgres, mysql or sqlite connection (password included)."""
        from sqlalchemy.engine import URL

        if self.conn_type == "sqlite":
            return f"sqlite:///{self.host}"
        driver = _DRIVERS.get(self.conn_type)
        if driver is None:
            raise SourceError(
                f"connection {self.conn_id}: type {self.conn_type!r} is not a "
                "database (expected postgres, mysql or sqlite)"
            )
        url = URL.create(
            driver,
            username=self.login,
            password=self.password or None,
            host=self.host or None,
            port=self.port,
            database=self.schema or None,
            query=self.driver_options(),
        )
        return url.render_as_string(hide_password=False)

    def driver_options(self) -> dict[str, str]:
        """The extras the provider hooks pass to the driver, as URL query options
        (SQLAlchemy hands them to psycopg as libpq parameters, to PyMySQL as ``ssl`` and
        ``charset``)."""
        if self.conn_type in ("postgres", "postgresql"):
            return {k: _text(v) for k, v in self.extra.items() if k in LIBPQ_OPTIONS}
        if self.conn_type in ("mysql", "mariadb"):
            return mysql_options(self.conn_id, self.extra)
        return {}

    def folder(self) -> str:
        path = self.extra.get("path") or self.host
        if not path:
            raise SourceError(
                f"connection {self.conn_id}: no folder path (an fs connection "
                'with extra {"path": "/data/exports"})'
            )
        return str(path)


def from_env(conn_id: str, environ: dict[str, str] | None = None) -> ConnectionInfo:
    """Read ``AIRFLOW_CONN_<CONN_ID>`` (JSON or URI), by Airflow's own rules."""
    from retirement.connect.parse import parse_connection

    env = os.environ if environ is None else environ
    name = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = env.get(name)
    if not raw:
        raise SourceError(
            f"connection {conn_id} is not defined: set {name} (JSON, e.g. "
            '\'{"conn_type": "postgres", "host": ..., "login": ...}\', or a URI)'
        )
    return parse_connection(conn_id, raw)
