"""The "Retirement" page in the Airflow UI: plans, runs, each dataset's state, certificates and
closure dossiers.

A FastAPI app mounted by the API server at ``/retirement`` and an external view that puts it
in the UI's navigation (the UI shows it in a frame at ``/plugin/retirement``). Every route
takes Airflow's own authentication: the UI session's JWT cookie or an API bearer token;
anything else is refused with 401/403. A person sees only the plans whose DAG
(``retire__<plan>``) Airflow's auth manager lets them read, with those plans' runs, certificates
and dossiers; evidence of any other plan is refused with 403. A second external view on each
DAG run's page (``/retirement/run/<dag>/<run>``) shows that run alone. What the page shows is
built by the plain-Python ``retirement.ui.overview``; this file only authenticates, asks the
auth manager, reads the connections and serves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import get_user
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from retirement.errors import AccessDenied

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)
PREFIX = "/retirement"

app = FastAPI(title="Retirement", dependencies=[Depends(get_user)], docs_url=None, redoc_url=None)
User = Annotated[BaseUser, Depends(get_user)]


def visible_plans(user: User) -> Callable[[str], bool]:
    """Which plans the person asking may see: those whose DAG the auth manager lets them read
    (a plan whose DAG Airflow does not know is shown to nobody)."""
    from airflow.api_fastapi.app import get_auth_manager

    from retirement.plan.header import dag_id

    allowed = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
    return lambda plan_name: dag_id(plan_name) in allowed


Visible = Annotated[Callable[[str], bool], Depends(visible_plans)]


@app.exception_handler(AccessDenied)
def _refused(request: Request, exc: AccessDenied) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=403)


def _ledger():  # a Ledger, imported lazily
    from retirement.ledger.core import Ledger
    from retirement_airflow.connections import ledger_url

    try:
        return Ledger.open(ledger_url(), create=False)
    except Exception as exc:  # a missing connection or ledger: say so on the page
        raise HTTPException(503, f"the retirement ledger cannot be opened: {exc}") from exc


def _output_dir() -> Path | None:
    from retirement_airflow.connections import output_dir

    try:
        return output_dir()
    except Exception:  # no output_dir: no dossier links
        return None


@app.get("/", response_class=HTMLResponse)
def overview(user: User, visible: Visible, lang: str | None = None) -> str:
    """The page; ``?lang=zh``, ``?lang=en`` or both side by side (the default)."""
    from retirement.i18n import parse_languages
    from retirement.ui.overview import build_overview, render_overview
    from retirement_airflow.plans import plans_dir

    ledger = _ledger()
    try:
        page = build_overview(
            ledger, plans_dir=plans_dir(), output_dir=_output_dir(), visible=visible
        )
    finally:
        ledger.close()
    return render_overview(page, base=PREFIX, user=user.get_name(), languages=parse_languages(lang))


@app.get("/run/{dag_id}/{run_id:path}", response_class=HTMLResponse)
def one_run(dag_id: str, run_id: str, user: User, visible: Visible, lang: str | None = None) -> str:
    """The view on Airflow's DAG-run page: that run's datasets and evidence."""
    from retirement.i18n import parse_languages
    from retirement.phases.context import ledger_run_id
    from retirement.ui.overview import render_overview, run_overview

    ledger = _ledger()
    try:
        page = run_overview(
            ledger, ledger_run_id(dag_id, run_id), output_dir=_output_dir(), visible=visible
        )
    finally:
        ledger.close()
    if page is None:
        raise HTTPException(404, f"no retirement run {_shown(run_id)} of {_shown(dag_id)}")
    return render_overview(page, base=PREFIX, user=user.get_name(), languages=parse_languages(lang))


def _shown(text: str, limit: int = 60) -> str:
    """A piece of the request's path as the 404 message repeats it: short."""
    return text if len(text) <= limit else text[:limit] + "…"


@app.get("/certificates/{artifact_id}")
def certificate(artifact_id: str, visible: Visible) -> FileResponse:
    # a str, not an int: FastAPI would answer 422 for "abc"; an id that cannot be one is 404
    from retirement.ui.overview import artifact_file

    ledger = _ledger()
    try:
        path = artifact_file(ledger, artifact_id, kinds=("certificate",), visible=visible)
    finally:
        ledger.close()
    if path is None:
        raise HTTPException(404, f"no certificate {_shown(artifact_id)} in the ledger")
    return FileResponse(path)


@app.get("/dossier/{run}/{relative:path}")
def dossier(run: str, relative: str, visible: Visible) -> FileResponse:
    from retirement.ui.overview import check_dossier_visible, dossier_file

    out = _output_dir()
    path = dossier_file(out, run, relative) if out is not None else None
    if path is not None:  # a file that is there: is it of a plan this person may see?
        ledger = _ledger()
        try:
            check_dossier_visible(ledger, run, visible)
        finally:
            ledger.close()
    if path is None:
        raise HTTPException(404, f"no file {_shown(relative)!r} in the dossier of {_shown(run)}")
    return FileResponse(path)


class RetirementViewPlugin(AirflowPlugin):
    name = "retirement_view"
    fastapi_apps = [{"app": app, "url_prefix": PREFIX, "name": "Retirement"}]
    external_views = [
        {
            "name": "Retirement",
            "href": f"{PREFIX}/",
            "destination": "nav",
            "url_route": "retirement",
            "nav_top_level": True,
        },
        {  # a tab on each DAG run's page; the UI fills in {DAG_ID} and {RUN_ID}
            "name": "Retirement",
            "href": f"{PREFIX}/run/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "retirement_run",
        },
    ]
