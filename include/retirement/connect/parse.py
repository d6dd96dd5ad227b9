"""Airflow connections in their two text forms, parsed by Airflow's own rules without
importing Airflow: the JSON form (``{"conn_type": ..., "extra": {...}}``) and the URI form
(``postgres://user:pw@host:5432/db?sslmode=verify-full``, ``aws://?__extra__=<json>``).

The rules are those of ``airflow.models.Connection`` (``from_json`` and ``_parse_from_uri``)
in Airflow 3; ``tests/dags/test_connection_parsing.py`` compares the two on generated
connections, so a change of Airflow's rules fails there.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from retirement.connect.info import ConnectionInfo
from retirement.errors import SourceError
from retirement.formats.json_object import json_object

EXTRA_KEY = "__extra__"


def parse_connection(conn_id: str, value: str) -> ConnectionInfo:
    """``value`` as Airflow reads an ``AIRFLOW_CONN_<ID>`` variable: JSON when it starts
    with ``{``, a URI otherwise."""
    value = value.strip()
    if value.startswith("{"):
        return _from_json(conn_id, value)
    try:
        return _from_uri(conn_id, value)
    except ValueError as exc:  # urlsplit's (an unclosed "[", a port out of range)
        raise SourceError(f"connection {conn_id}: not a connection URI ({exc})") from None


def normalize_conn_type(conn_type: str) -> str:
    if conn_type == "postgresql":
        return "postgres"
    return conn_type.replace("-", "_")


def _extra_dict(conn_id: str, extra: Any) -> dict[str, Any]:
    if not extra:
        return {}
    not_object = f"connection {conn_id}: its extra must be a JSON object (a mapping)"
    if isinstance(extra, str):
        return json_object(
            extra,
            not_json=lambda why: f"connection {conn_id}: its extra is not JSON ({why})",
            not_object=not_object,
        )
    if not isinstance(extra, dict):
        raise SourceError(not_object)
    return extra


def _from_json(conn_id: str, value: str) -> ConnectionInfo:
    data = json_object(
        value,
        not_json=lambda why: f"connection {conn_id}: not valid JSON ({why})",
        not_object=f"connection {conn_id}: the JSON form is an object",
    )
    port = data.get("port")
    if port:
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise SourceError(f"connection {conn_id}: port {port!r} is not a number") from None
    return ConnectionInfo(
        conn_id,
        normalize_conn_type(data["conn_type"]) if data.get("conn_type") else "",
        data.get("host"),
        data.get("login"),
        data.get("password") or None,  # Airflow stores an empty password as none
        port or None,
        data.get("schema"),
        _extra_dict(conn_id, data.get("extra")),
    )


def _hostname(parts: Any) -> str:
    """The host as Airflow reads it (a host holding ``/`` is kept from the netloc)."""
    hostname = unquote(parts.hostname or "")
    if "/" in hostname:
        hostname = parts.netloc
        if "@" in hostname:
            hostname = hostname.rsplit("@", 1)[1]
        if ":" in hostname:
            hostname = hostname.split(":", 1)[0]
        hostname = unquote(hostname)
    return hostname


def _from_uri(conn_id: str, uri: str) -> ConnectionInfo:
    schemes = uri.count("://")
    if schemes > 2:
        raise SourceError(f"connection {conn_id}: not a connection URI (more than two '://')")
    with_protocol = schemes == 2
    scheme = urlsplit(uri).scheme
    rest = uri.replace(f"{scheme}://", "" if with_protocol else "//")
    if with_protocol and any(c in rest.split("://", 1)[0] for c in "@:"):
        raise SourceError(f"connection {conn_id}: not a connection URI (a protocol with @ or :)")
    parts = urlsplit(rest)
    port = parts.port
    host: str | None = _hostname(parts)
    if host and with_protocol:
        host = f"{parts.scheme}://{host}"
    extra: dict[str, Any] = {}
    if parts.query:
        query: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
        if EXTRA_KEY in query:
            extra = _extra_dict(conn_id, query[EXTRA_KEY])
        else:
            for key, found in query.items():
                with contextlib.suppress(json.JSONDecodeError):  # a plain string stays one
                    query[key] = json.loads(found) if found else found
            extra = query
    schema = parts.path[1:]
    return ConnectionInfo(
        conn_id,
        normalize_conn_type(scheme),
        host,
        unquote(parts.username) if parts.username else parts.username,
        unquote(parts.password) if parts.password else None,
        port,
        unquote(schema) if schema else schema,
        extra,
    )
