"""Turn Airflow connections into what the library takes: URLs, clients, paths."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

if TYPE_CHECKING:
    from pathlib import Path

    from retirement.connect.info import ConnectionInfo
    from retirement.crypto.keys import KeyStore
    from retirement.ledger.core import Ledger

LEDGER_CONN_ID = "retirement_ledger"

_LEDGER_HELP = (
    "Airflow connection 'retirement_ledger' is not defined. It names the ledger database: "
    'for SQLite, AIRFLOW_CONN_RETIREMENT_LEDGER=\'{"conn_type": "generic", "extra": '
    '{"url": "sqlite:////abs/path/ledger.sqlite"}}\'; for PostgreSQL, a postgres connection '
    "with host, port, login, password and schema (the database)."
)


def get_connection(conn_id: str, *, purpose: str) -> Connection:
    try:
        conn: Connection = Connection.get(conn_id)
    except AirflowNotFoundException as exc:
        raise AirflowFailException(
            f"Airflow connection {conn_id!r} ({purpose}) is not defined: {exc}"
        ) from exc
    return conn


def connection_info(conn_id: str, *, purpose: str) -> ConnectionInfo:
    """The library's view of an Airflow connection."""
    from retirement.connect.info import ConnectionInfo

    conn = get_connection(conn_id, purpose=purpose)
    return ConnectionInfo(
        conn_id,
        conn.conn_type or "",
        conn.host,
        conn.login,
        conn.password,
        conn.port,
        conn.schema,
        conn.extra_dejson,
    )


def ledger_url() -> str:
    """The SQLAlchemy URL of the ledger, from the `retirement_ledger` connection."""
    try:
        conn = Connection.get(LEDGER_CONN_ID)
    except AirflowNotFoundException as exc:
        raise AirflowFailException(_LEDGER_HELP) from exc
    url: str | None = conn.extra_dejson.get("url")
    if url:
        return url
    if conn.conn_type in ("postgres", "postgresql"):
        return connection_info(LEDGER_CONN_ID, purpose="the ledger").sqlalchemy_url()
    raise AirflowFailException(_LEDGER_HELP)


def open_ledger() -> Ledger:
    from retirement.ledger.core import Ledger

    return Ledger.open(ledger_url())


def output_dir() -> Path:
    """Where reports, evidence and archives are written: ``output_dir`` in the ledger's
    connection extra (a path on storage every worker shares)."""
    from pathlib import Path

    conn = Connection.get(LEDGER_CONN_ID)
    path = conn.extra_dejson.get("output_dir")
    if not path:
        raise AirflowFailException(
            "Airflow connection 'retirement_ledger' has no output_dir in its extra: add "
            '"output_dir": "/path/shared/by/all/workers" (reports and evidence go there)'
        )
    return Path(path)


KEYS_CONN_ID = "retirement_keys"


def key_store() -> KeyStore:
    """The key store: ``extra.path`` is its folder, the password the master age identity."""
    from pathlib import Path

    from airflow.sdk.log import mask_secret

    from retirement.crypto.keys import KeyStore

    try:
        conn = Connection.get(KEYS_CONN_ID)
    except AirflowNotFoundException as exc:
        raise AirflowFailException(
            "Airflow connection 'retirement_keys' is not defined: its password is the master "
            'age identity (AGE-SECRET-KEY-1..., from `age-keygen`), its extra {"path": ...} '
            "the folder of the key store"
        ) from exc
    if not conn.password or not conn.extra_dejson.get("path"):
        raise AirflowFailException(
            "Airflow connection 'retirement_keys' needs a password (the "
            "master age identity) and extra.path (the key store folder)"
        )
    mask_secret(conn.password)
    return KeyStore(Path(conn.extra_dejson["path"]), conn.password)
