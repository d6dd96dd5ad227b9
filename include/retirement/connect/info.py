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
from urllib.parse import parse_qsl, unquote, urlsplit

from retirement.errors import SourceError

_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}


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
            host=self.host,
            port=self.port,
            database=self.schema,
        )
        return url.render_as_string(hide_password=False)

    def folder(self) -> str:
        path = self.extra.get("path") or self.host
        if not path:
            raise SourceError(
                f"connection {self.conn_id}: no folder path (an fs connection "
                'with extra {"path": "/data/exports"})'
            )
        return str(path)


def from_env(conn_id: str, environ: dict[str, str] | None = None) -> ConnectionInfo:
    """Read ``AIRFLOW_CONN_<CONN_ID>`` (JSON or URI), as Airflow does."""
    env = os.environ if environ is None else environ
    name = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = env.get(name)
    if not raw:
        raise SourceError(
            f"connection {conn_id} is not defined: set {name} (JSON, e.g. "
            '\'{"conn_type": "postgres", "host": ..., "login": ...}\', or a URI)'
        )
    if raw.lstrip().startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{name} is not valid JSON: {exc.msg}") from exc
        extra = data.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra)
        return ConnectionInfo(
            conn_id,
            data.get("conn_type", ""),
            data.get("host"),
            data.get("login"),
            data.get("password"),
            data.get("port"),
            data.get("schema"),
            extra,
        )
    parts = urlsplit(raw)
    return ConnectionInfo(
        conn_id,
        parts.scheme.replace("-", "_"),
        unquote(parts.hostname or "") or None,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
        parts.port,
        unquote(parts.path.lstrip("/")) or None,
        dict(parse_qsl(parts.query)),
    )
