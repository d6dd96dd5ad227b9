"""Connection extras reach the driver: PostgreSQL over TLS with sslmode=verify-full against
a test CA (a wrong CA is refused), libpq options; MySQL/MariaDB ssl and charset."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from retirement.connect.info import from_env
from retirement.connect.parse import parse_connection
from retirement.errors import SourceError
from retirement.sources.sql import SqlSource
from tests.servers.databases import PG_PORT
from tests.servers.pg_tls import PgTls

pytestmark = pytest.mark.integration

_TLS_IN_USE = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def _uri(ca: str, **extra: str) -> str:
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in {"sslrootcert": ca, **extra}.items())
    return f"postgres://postgres@127.0.0.1:{PG_PORT}/postgres?sslmode=verify-full&{query}"


def test_postgres_over_tls_verifies_the_server_certificate(pg_tls: PgTls) -> None:
    conn = parse_connection("crm", _uri(str(pg_tls.ca), options="-c search_path=crm_test"))
    with SqlSource("crm", conn.sqlalchemy_url()) as source, source.connect() as db:
        assert db.exec_driver_sql(_TLS_IN_USE).scalar_one() is True
        assert db.exec_driver_sql("SHOW search_path").scalar_one() == "crm_test"


def test_postgres_with_a_wrong_ca_is_refused(pg_tls: PgTls) -> None:
    conn = parse_connection("crm", _uri(str(pg_tls.wrong_ca)))
    engine = sa.create_engine(conn.sqlalchemy_url())
    with pytest.raises(sa.exc.OperationalError, match="certificate verify failed"):
        engine.connect()
    engine.dispose()
    with (
        SqlSource("crm", conn.sqlalchemy_url()) as source,
        pytest.raises(SourceError, match="certificate verify failed"),
    ):
        source.datasets()


def test_the_json_form_from_the_environment_carries_tls_too(pg_tls: PgTls) -> None:
    value = json.dumps(
        {
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": PG_PORT,
            "login": "postgres",
            "schema": "postgres",
            "extra": {"sslmode": "verify-full", "sslrootcert": str(pg_tls.ca)},
        }
    )
    conn = from_env("crm_db", {"AIRFLOW_CONN_CRM_DB": value})
    engine = sa.create_engine(conn.sqlalchemy_url())
    with engine.connect() as db:
        assert db.exec_driver_sql(_TLS_IN_USE).scalar_one() is True
    engine.dispose()
    wrong = json.loads(value)
    wrong["extra"]["sslrootcert"] = str(pg_tls.wrong_ca)
    conn = from_env("crm_db", {"AIRFLOW_CONN_CRM_DB": json.dumps(wrong)})
    engine = sa.create_engine(conn.sqlalchemy_url())
    with pytest.raises(sa.exc.OperationalError, match="certificate verify failed"):
        engine.connect()
    engine.dispose()


def test_mysql_ssl_and_charset_reach_pymysql(mysql_url: str) -> None:
    url = sa.make_url(mysql_url)
    ssl = {"ca": "/etc/ssl/ca.pem", "cert": "/etc/ssl/c.pem", "key": "/etc/ssl/c.key"}
    extra = json.dumps({"ssl": json.dumps(ssl), "charset": "utf8mb4"})  # ssl as JSON text
    uri = f"mysql://root@{url.host}:{url.port}/{url.database}?__extra__={quote(extra)}"
    conn = parse_connection("erp", uri)
    engine = sa.create_engine(conn.sqlalchemy_url())
    _, kwargs = engine.dialect.create_connect_args(engine.url)
    assert kwargs["ssl"] == ssl
    assert kwargs["charset"] == "utf8mb4"
    plain = parse_connection("erp", uri.split("?")[0] + "?charset=latin1")
    engine = sa.create_engine(plain.sqlalchemy_url())
    with engine.connect() as db:
        found = db.exec_driver_sql("SELECT @@character_set_client").scalar_one()
    engine.dispose()
    assert found == "latin1"
