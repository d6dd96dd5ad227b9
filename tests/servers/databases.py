"""Fresh PostgreSQL and MariaDB databases per test session, on this machine's own servers.

PostgreSQL at 127.0.0.1:5432 (trust auth), MariaDB at 127.0.0.1:3306 (root, no password).
A server that is not running fails the tests with the command that starts it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pymysql
import pytest

PG_HOST = os.environ.get("RETIREMENT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("RETIREMENT_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("RETIREMENT_TEST_PG_USER", "postgres")
MY_HOST = os.environ.get("RETIREMENT_TEST_MYSQL_HOST", "127.0.0.1")
MY_PORT = int(os.environ.get("RETIREMENT_TEST_MYSQL_PORT", "3306"))
MY_USER = os.environ.get("RETIREMENT_TEST_MYSQL_USER", "root")

_PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
_MY_START = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"


def _pg_admin() -> psycopg.Connection:
    try:
        return psycopg.connect(
            host=PG_HOST,
            port=PG_PORT,
            user=PG_USER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} as {PG_USER} "
            f"({exc}); start it with: {_PG_START}"
        ) from exc


def _my_admin() -> pymysql.Connection:
    try:
        return pymysql.connect(
            host=MY_HOST,
            port=MY_PORT,
            user=MY_USER,
            password="",
            autocommit=True,
            connect_timeout=5,
        )
    except pymysql.err.OperationalError as exc:
        raise RuntimeError(
            f"MariaDB is not reachable at {MY_HOST}:{MY_PORT} as {MY_USER} "
            f"({exc}); start it with: {_MY_START}"
        ) from exc


def create_pg_database(prefix: str = "rt") -> str:
    """Create an empty PostgreSQL database; return its psycopg URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with _pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_mysql_database(prefix: str = "rt") -> str:
    """Create an empty MariaDB database; return its SQLAlchemy/pymysql URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _my_admin() as admin, admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    return f"mysql+pymysql://{MY_USER}@{MY_HOST}:{MY_PORT}/{name}?charset=utf8mb4"


def drop_mysql_database(url: str) -> None:
    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    with _my_admin() as admin, admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """One fresh PostgreSQL database for the whole session."""
    url = create_pg_database("rt_session")
    yield url
    drop_pg_database(url)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test."""
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def mysql_session_url() -> Iterator[str]:
    url = create_mysql_database("rt_session")
    yield url
    drop_mysql_database(url)


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh MariaDB database for one test."""
    url = create_mysql_database()
    yield url
    drop_mysql_database(url)
