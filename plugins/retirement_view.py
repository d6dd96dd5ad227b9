"""The "Retirement" page in the Airflow UI: plans, runs, each dataset's state, certificates and
closure dossiers.

A FastAPI app mounted by the API server at ``/retirement`` and an external view that puts it
in the UI's navigation (the UI shows it in a frame at ``/plugin/retirement``). Every route
takes Airflow's own authentication: the UI session's JWT cookie or an API bearer token;
anything else is refused with 401/403. What the page shows is built by the plain-Python
``retirement.ui.overview``; this file only authenticates, reads the connections and serves.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import get_user
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)
PREFIX = "/retirement"

app = FastAPI(title="Retirement", dependencies=[Depends(get_user)], docs_url=None, redoc_url=None)
User = Annotated[BaseUser, Depends(get_user)]


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
def overview(user: User) -> str:
    from retirement.ui.overview import build_overview, render_overview
    from retirement_airflow.plans import plans_dir

    ledger = _ledger()
    try:
        page = build_overview(ledger, plans_dir=plans_dir(), output_dir=_output_dir())
    finally:
        ledger.close()
    return render_overview(page, base=PREFIX, user=user.get_name())


def _shown(text: str, limit: int = 60) -> str:
    """A piece of the request's path as the 404 message repeats it: short."""
    return text if len(text) <= limit else text[:limit] + "…"


@app.get("/certificates/{artifact_id}")
def certificate(artifact_id: str) -> FileResponse:
    # a str, not an int: FastAPI would answer 422 for "abc"; an id that cannot be one is 404
    from retirement.ui.overview import artifact_file

    ledger = _ledger()
    try:
        path = artifact_file(ledger, artifact_id, kinds=("certificate",))
    finally:
        ledger.close()
    if path is None:
        raise HTTPException(404, f"no certificate {_shown(artifact_id)} in the ledger")
    return FileResponse(path)


@app.get("/dossier/{run}/{relative:path}")
def dossier(run: str, relative: str) -> FileResponse:
    from retirement.ui.overview import dossier_file

    out = _output_dir()
    path = dossier_file(out, run, relative) if out is not None else None
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
        }
    ]
