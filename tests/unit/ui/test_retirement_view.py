"""The Retirement page's routes, in process: whatever the request names, a certificate or a
dossier file that is not there is a short 404, never a 500.

The app is the one the Airflow plugin builds (``plugins/retirement_view.py``), served by
FastAPI's TestClient; Airflow's authentication is replaced by overriding its ``get_user``
dependency, as the API server would have resolved it, so no Airflow process is started.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from airflow.api_fastapi.core_api.security import get_user
from fastapi.testclient import TestClient

from retirement.ledger.core import Ledger

ROOT = Path(__file__).resolve().parents[3]
CERT = "certificates/r/cos-crm.customers.json"  # under output_dir, beside dossier/


def _plugin():  # the plugin module, loaded once from its file
    spec = importlib.util.spec_from_file_location(
        "retirement_view_under_test", ROOT / "plugins" / "retirement_view.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


PLUGIN = _plugin()


class _User:
    def get_name(self) -> str:
        return "tester"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def site(ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A ledger with run "r": a certificate (file on disk), a receipt, a certificate whose
    file was removed, and the run's sealed dossier; the plugin's connection points at it."""
    out = tmp_path / "out"
    cert = out / CERT
    certs = cert.parent
    certs.mkdir(parents=True)
    cert.write_text('{"target": {"dataset": "crm.customers"}}')
    gone = certs / "cos-crm.orders.json"
    receipt = out / "receipt.json"
    receipt.write_text("{}")
    dossier = out / "dossier" / "r"
    dossier.mkdir(parents=True)
    (dossier / "index.html").write_text("<h1>Dossier of r</h1>")

    ledger = Ledger.open(ledger_url)
    ledger.start_run(
        "r", plan_name="demo", plan_sha256="a" * 64, scenario="deregistration", actor="t"
    )
    for kind, path, dataset in [
        ("certificate", cert, "crm.customers"),
        ("receipt", receipt, "crm.customers"),
        ("certificate", gone, "crm.orders"),
    ]:
        ledger.add_artifact(
            "r", kind=kind, location=str(path), size=2, sha256="b" * 64, actor="t", dataset=dataset
        )
    ids = {(a["kind"], a["dataset"]): a["id"] for a in ledger.artifacts("r")}
    ledger.close()

    monkeypatch.setenv(
        "AIRFLOW_CONN_RETIREMENT_LEDGER",
        json.dumps({"conn_type": "generic", "extra": {"url": ledger_url, "output_dir": str(out)}}),
    )
    monkeypatch.setenv("RETIREMENT_PLANS_DIR", str(ROOT / "include" / "plans"))
    return {
        "certificate": ids["certificate", "crm.customers"],
        "receipt": ids["receipt", "crm.customers"],
        "gone": ids["certificate", "crm.orders"],
    }


@pytest.fixture
def client(site: dict):
    PLUGIN.app.dependency_overrides[get_user] = _User
    # the auth manager's answer for a person who may read every DAG (tests below narrow it)
    PLUGIN.app.dependency_overrides[PLUGIN.visible_plans] = lambda: lambda plan_name: True
    try:
        yield TestClient(PLUGIN.app, raise_server_exceptions=False)
    finally:
        PLUGIN.app.dependency_overrides.clear()


def _not_found(response, message: str) -> None:
    assert response.status_code == 404, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": message}
    assert "Traceback" not in response.text


def test_the_page_reads_in_chinese_and_english(client: TestClient) -> None:
    both = client.get("/").text
    zh, en = client.get("/?lang=zh").text, client.get("/?lang=en").text
    for label in ("登录用户 tester", "计划", "运行"):
        assert f'<span lang="zh">{label}</span>' in both
        assert f'<span lang="zh">{label}</span>' in zh
        assert label not in en.split("</nav>", 1)[1]
    for label in ("Signed in as tester", "Plans", "Runs"):
        assert f'<span lang="en">{label}</span>' in both
        assert f'<span lang="en">{label}</span>' in en
        assert label not in zh
    for page in (both, zh, en):  # the run's values, whatever the language
        assert "<code>r</code></a></td><td>demo</td>" in page


def test_the_page_and_its_files_are_served(client: TestClient, site: dict) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "tester" in page.text
    cert = client.get(f"/certificates/{site['certificate']}")
    assert cert.status_code == 200
    assert cert.json() == {"target": {"dataset": "crm.customers"}}
    assert client.get("/dossier/r/index.html").text == "<h1>Dossier of r</h1>"
    assert client.get("/dossier/r/").text == "<h1>Dossier of r</h1>"


def test_a_dossier_sealed_again_is_served_in_its_latest_version(
    client: TestClient, tmp_path: Path
) -> None:
    newer = tmp_path / "out" / "dossier" / "r.v2"
    newer.mkdir()
    (newer / "index.html").write_text("<h1>Dossier of r, version 2</h1>")
    assert client.get("/dossier/r/index.html").text == "<h1>Dossier of r, version 2</h1>"


@pytest.mark.parametrize(
    "shown",
    [
        "999999",  # a number no artifact has
        "abc",  # not a number (FastAPI's int parameter answered 422)
        "1.5",
        "-1",
        "0",
        "99999999999999999999",  # beyond 64 bits (the database raised: 500)
        "9223372036854775808",
        "%E2%91%A0",  # "①": a digit to str.isdigit, not a number
    ],
)
def test_an_unknown_certificate_id_is_404(client: TestClient, shown: str) -> None:
    from urllib.parse import unquote

    _not_found(
        client.get(f"/certificates/{shown}"), f"no certificate {unquote(shown)} in the ledger"
    )


def test_a_certificate_whose_file_is_gone_is_404(client: TestClient, site: dict) -> None:
    _not_found(
        client.get(f"/certificates/{site['gone']}"), f"no certificate {site['gone']} in the ledger"
    )


def test_an_artifact_that_is_no_certificate_is_404(client: TestClient, site: dict) -> None:
    _not_found(
        client.get(f"/certificates/{site['receipt']}"),
        f"no certificate {site['receipt']} in the ledger",
    )


def test_a_very_long_id_is_named_short(client: TestClient) -> None:
    response = client.get("/certificates/" + "7" * 500)
    assert response.status_code == 404
    assert len(response.json()["detail"]) < 100


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/dossier/nope/index.html", "no file 'index.html' in the dossier of nope"),  # no run
        ("/dossier/r/missing.html", "no file 'missing.html' in the dossier of r"),  # no file
        # real files outside the dossier (the client's %2F arrives as "/")
        (f"/dossier/r/..%2F..%2F{CERT}", f"no file '../../{CERT}' in the dossier of r"),
        (f"/dossier/..%2F{CERT}", f"no file '{CERT}' in the dossier of .."),
        ("/dossier/r/x%00.html", "no file 'x\\x00.html' in the dossier of r"),  # NUL: was 500
    ],
)
def test_a_missing_dossier_file_is_404(client: TestClient, path: str, message: str) -> None:
    _not_found(client.get(path), message)


@pytest.mark.parametrize(
    "path",
    ["/dossier/r/" + "b" * 300, "/dossier/" + "a" * 300 + "/index.html"],  # ENAMETOOLONG: 500
)
def test_a_name_the_file_system_refuses_is_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, response.text
    assert response.json()["detail"].startswith("no file ")
    assert len(response.json()["detail"]) < 200  # the 300 characters are not repeated


def test_without_airflow_authentication_nothing_is_served(site: dict) -> None:
    bare = TestClient(PLUGIN.app, raise_server_exceptions=False)
    for path in ("/", "/certificates/abc", "/certificates/1", "/dossier/r/index.html"):
        assert bare.get(path).status_code == 401, path


OTHER_RUN = "retire__other:manual__2026-12-01T00:00:00+00:00"


@pytest.fixture
def two_plans(site: dict, ledger_url: str, tmp_path: Path) -> dict:
    """Beside plan "demo"'s run "r": a run of plan "other" with a certificate and a dossier."""
    from retirement.phases.context import safe_dir

    out = tmp_path / "out"
    cert = out / "certificates" / "o" / "cos-hr.staff.json"
    cert.parent.mkdir(parents=True)
    cert.write_text('{"target": {"dataset": "hr.staff"}}')
    folder = out / "dossier" / safe_dir(OTHER_RUN)
    folder.mkdir(parents=True)
    (folder / "index.html").write_text("<h1>Dossier of other</h1>")
    ledger = Ledger.open(ledger_url)
    ledger.start_run(
        OTHER_RUN, plan_name="other", plan_sha256="c" * 64, scenario="liquidation", actor="t"
    )
    ledger.add_artifact(
        OTHER_RUN,
        kind="certificate",
        location=str(cert),
        size=2,
        sha256="d" * 64,
        actor="t",
        dataset="hr.staff",
    )
    other_cert = next(a["id"] for a in ledger.artifacts(OTHER_RUN))
    ledger.close()
    return {**site, "other_certificate": other_cert, "other_dossier": folder.name}


def _seeing(*plans: str):
    """The dependency as the auth manager would answer for a person who may read only the
    DAGs of ``plans``."""
    return lambda: lambda plan_name: plan_name in plans


def test_a_person_sees_only_the_plans_their_dags_allow(client: TestClient, two_plans: dict) -> None:
    PLUGIN.app.dependency_overrides[PLUGIN.visible_plans] = _seeing("demo")
    page = client.get("/").text
    assert ">r<" in page or "r</" in page
    assert "retire__other" not in page
    assert client.get(f"/certificates/{two_plans['certificate']}").status_code == 200
    assert client.get("/dossier/r/index.html").status_code == 200

    PLUGIN.app.dependency_overrides[PLUGIN.visible_plans] = _seeing("other")
    page = client.get("/").text
    assert "retire__other" in page
    assert client.get(f"/certificates/{two_plans['other_certificate']}").status_code == 200
    assert client.get(f"/dossier/{two_plans['other_dossier']}/").text == (
        "<h1>Dossier of other</h1>"
    )


def test_evidence_of_a_plan_one_may_not_see_is_refused(client: TestClient, two_plans: dict) -> None:
    PLUGIN.app.dependency_overrides[PLUGIN.visible_plans] = _seeing("demo")
    cert = client.get(f"/certificates/{two_plans['other_certificate']}")
    assert cert.status_code == 403, cert.text
    assert "hr.staff" not in cert.text
    dossier = client.get(f"/dossier/{two_plans['other_dossier']}/index.html")
    assert dossier.status_code == 403, dossier.text
    assert "Dossier of other" not in dossier.text
    run = client.get("/run/retire__other/manual__2026-12-01T00%3A00%3A00%2B00%3A00")
    assert run.status_code == 403, run.text

    PLUGIN.app.dependency_overrides[PLUGIN.visible_plans] = _seeing("other")
    assert client.get(f"/certificates/{two_plans['certificate']}").status_code == 403
    assert client.get("/dossier/r/index.html").status_code == 403


def test_the_dag_run_view_shows_that_run(client: TestClient, two_plans: dict) -> None:
    PLUGIN.app.dependency_overrides[PLUGIN.visible_plans] = _seeing("other")
    page = client.get("/run/retire__other/manual__2026-12-01T00%3A00%3A00%2B00%3A00")
    assert page.status_code == 200, page.text
    assert OTHER_RUN in page.text
    missing = client.get("/run/retire__other/manual__nope")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "no retirement run manual__nope of retire__other"}


def test_the_dag_run_view_is_declared_for_the_run_page() -> None:
    views = {v["destination"]: v for v in PLUGIN.RetirementViewPlugin.external_views}
    assert views["dag_run"]["href"] == "/retirement/run/{DAG_ID}/{RUN_ID}"
    assert views["nav"]["href"] == "/retirement/"
