"""The library's connection parser (no Airflow) against airflow.models.Connection itself:
JSON and URI forms, ``__extra__`` and query extras, on generated connections. A change of
Airflow's rules fails here."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retirement.connect.parse import parse_connection
from retirement.errors import SourceError

CONN_TYPES = ["postgres", "postgresql", "mysql", "aws", "smtp", "generic", "google-cloud-platform"]
TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/?#[]% 中", max_size=12
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10_000), TEXT, st.sampled_from(["", "verify-full"])
)
EXTRAS = st.dictionaries(
    st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=10),
    st.one_of(SCALARS, st.dictionaries(st.sampled_from(["ca", "cert", "key"]), TEXT, max_size=3)),
    max_size=4,
)
FIELDS = st.fixed_dictionaries(
    {
        "conn_type": st.sampled_from(CONN_TYPES),
        "host": st.one_of(st.none(), TEXT),
        "login": st.one_of(st.none(), TEXT),
        "password": st.one_of(st.none(), TEXT),
        "schema": st.one_of(st.none(), TEXT),
        "port": st.one_of(st.none(), st.integers(1, 65535)),
        "extra": st.one_of(st.none(), EXTRAS),
    }
)


def _airflow(value: str) -> Any:
    from airflow.models.connection import Connection

    value = value.strip()
    if value.startswith("{"):
        return Connection.from_json(value, conn_id="c")
    return Connection(conn_id="c", uri=value)


def _same(value: str) -> None:
    """Both parse ``value`` alike, or both refuse it."""
    try:
        theirs = _airflow(value)
    except Exception:
        with pytest.raises(SourceError):
            parse_connection("c", value)
        return
    ours = parse_connection("c", value)
    assert (ours.conn_type, ours.host, ours.login, ours.password, ours.schema, ours.port) == (
        theirs.conn_type,
        theirs.host,
        theirs.login,
        theirs.password,
        theirs.schema,
        theirs.port,
    )
    assert json.dumps(ours.extra, sort_keys=True) == json.dumps(theirs.extra_dejson, sort_keys=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FIELDS)
def test_uri_written_by_airflow_reads_the_same(fields: dict[str, Any]) -> None:
    from airflow.models.connection import Connection

    uri = Connection(conn_id="c", **fields).get_uri()
    _same(uri)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FIELDS)
def test_json_form_reads_the_same(fields: dict[str, Any]) -> None:
    _same(json.dumps({k: v for k, v in fields.items() if v is not None}))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(CONN_TYPES + ["aws", "http"]),
    st.sampled_from(["", "https://"]),
    st.text(alphabet=string.ascii_letters + string.digits + "%:@/?&=#._-[]", max_size=40),
    st.one_of(st.none(), EXTRAS.map(json.dumps)),
)
def test_any_uri_reads_the_same(scheme: str, protocol: str, rest: str, extra: str | None) -> None:
    from urllib.parse import quote

    uri = f"{scheme}://{protocol}{rest}"
    if extra is not None:
        uri += ("&" if "?" in rest else "?") + "__extra__=" + quote(extra, safe="")
    _same(uri)


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param(
            "aws://?__extra__=%7B%22endpoint_url%22%3A+%22https%3A%2F%2Fs3.example%3A8443%22%2C"
            "+%22verify%22%3A+%22%2Fetc%2Fca.pem%22%7D",
            id="aws-extra",
        ),
        pytest.param(
            "postgres://u:p%40ss@db.example:5432/crm?sslmode=verify-full&sslrootcert=%2Fca.pem",
            id="postgres-query",
        ),
        pytest.param(
            "mysql://root@127.0.0.1/test?ssl=%7B%22ca%22%3A+%22%2Fca.pem%22%7D", id="mysql"
        ),
        pytest.param("generic://https://host.example/path", id="host-with-protocol"),
    ],
)
def test_known_forms(uri: str) -> None:
    _same(uri)
    ours = parse_connection("c", uri)
    if ours.conn_type == "aws":
        assert ours.extra == {"endpoint_url": "https://s3.example:8443", "verify": "/etc/ca.pem"}
    if ours.conn_type == "mysql":
        assert ours.extra == {"ssl": {"ca": "/ca.pem"}}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(
            "postgres://u:pw%40x@db.example:5432/crm?sslmode=verify-full&sslrootcert=%2Fca.pem"
            "&options=-c%20search_path%3Dcrm",
            id="uri",
        ),
        pytest.param(
            json.dumps(
                {
                    "conn_type": "postgres",
                    "host": "db.example",
                    "login": "u",
                    "password": "pw@x",
                    "schema": "crm",
                    "port": 5432,
                    "extra": {
                        "sslmode": "verify-full",
                        "sslrootcert": "/ca.pem",
                        "options": "-c search_path=crm",
                        "cursor": "dictcursor",
                    },
                }
            ),
            id="json",
        ),
    ],
)
def test_the_glue_and_the_cli_give_the_driver_the_same_url(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retirement.connect.info import from_env
    from retirement_airflow.connections import connection_info

    monkeypatch.setenv("AIRFLOW_CONN_CRM_DB", value)
    glue = connection_info("crm_db", purpose="test").sqlalchemy_url()
    assert glue == from_env("crm_db").sqlalchemy_url()
    assert "sslmode=verify-full" in glue
    assert "sslrootcert=%2Fca.pem" in glue
    assert "cursor" not in glue  # a hook's own extra is not a libpq parameter
