"""What the "Retirement" page shows: plans, runs, each dataset's progress, certificates and
dossiers, read from the ledger and the plans folder. Plain Python (no Airflow): the Airflow
plugin in ``plugins/retirement_view.py`` authenticates the request, asks Airflow's auth manager
which plans' DAGs the person may see (``visible``) and serves this HTML.

A person sees only the plans ``visible`` allows, their runs and their evidence: a certificate
or dossier of another plan raises AccessDenied (the plugin answers 403 without naming it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape

from retirement.errors import AccessDenied
from retirement.i18n import LANGUAGES, labeller
from retirement.model.state import DatasetState, RunState
from retirement.phases.context import safe_dir
from retirement.plan.header import discover

if TYPE_CHECKING:
    from retirement.ledger.core import Ledger
    from retirement.model.records import DatasetRecord

Visible = Callable[[str], bool]  # a plan's name -> may the person asking see it


def everything(plan_name: str) -> bool:
    """Everything is visible: the CLI and tests, where no person is asking."""
    return True


STAGES = ("inventoried", "backed up", "delivered", "deleted", "sealed")
_ENV = Environment(
    loader=PackageLoader("retirement.ui", "templates"), autoescape=select_autoescape(["html", "j2"])
)


@dataclass(frozen=True)
class DatasetRow:
    dataset: str
    data_class: str
    disposition: str
    rows: int
    state: str
    stages: tuple[str, ...]  # per STAGES: "done", "skipped", "doing" or "todo"
    certificate_id: int | None


@dataclass(frozen=True)
class RunRow:
    run_id: str
    plan: str
    scenario: str
    started_at: str
    status: str
    datasets: tuple[DatasetRow, ...]
    certificates: int
    receipts: int
    dossier: bool

    @property
    def rows(self) -> int:
        return sum(d.rows for d in self.datasets)

    @property
    def safe_id(self) -> str:
        return safe_dir(self.run_id)


@dataclass(frozen=True)
class PlanRow:
    name: str
    title: str
    scenario: str
    file: str
    problem: str | None
    runs: int


@dataclass(frozen=True)
class Overview:
    plans: tuple[PlanRow, ...]
    runs: tuple[RunRow, ...]


def _status(run_state: RunState, kinds: set[str], datasets: list[DatasetRecord]) -> str:
    """The run's state as the ledger keeps it; while it runs, how far its datasets are."""
    if run_state is RunState.REJECTED:
        return "deletion rejected"
    if run_state is not RunState.RUNNING:
        return run_state.label
    # A run begun before runs recorded their states (still "running"): its events say.
    if "dossier_sealed" in kinds:
        return "sealed"
    if "deletion_rejected" in kinds:
        return "deletion rejected"
    if "deletion_requested" in kinds and "deletion_approved" not in kinds:
        return "awaiting approval"
    if "deletion_approved" in kinds:
        return "deleting"
    if any(d.state.stages_passed >= 2 for d in datasets):
        return "backing up and delivering"
    return "inventory"


def _stages(state: DatasetState, delivered: bool, sealed: bool) -> tuple[str, ...]:
    passed = state.stages_passed
    out = []
    for i, name in enumerate(STAGES):
        if name == "sealed":
            out.append("done" if sealed and passed >= 4 else "todo")
        elif name == "delivered" and passed >= 3 and not delivered:
            out.append("skipped")  # nothing to hand over (destroy, or kept in place)
        elif i < passed:
            out.append("done")
        elif i == passed and state is DatasetState.DELETING:
            out.append("doing")
        else:
            out.append("todo")
    return tuple(out)


def _run_row(ledger: Ledger, run: dict[str, Any], output_dir: Path | None) -> RunRow:
    run_id = run["run_id"]
    kinds = ledger.event_kinds(run_id)
    states = ledger.dataset_states(run_id)
    sealed = "dossier_sealed" in kinds
    receipts = ledger.artifacts(run_id, kind="receipt")
    delivered = {a["dataset"] for a in receipts}
    certificates = {a["dataset"]: a["id"] for a in ledger.artifacts(run_id, kind="certificate")}
    rows = tuple(
        DatasetRow(
            dataset=s.dataset,
            data_class=s.data_class or "",
            disposition=s.disposition or "",
            rows=s.rows or 0,
            state=s.state.value,
            stages=_stages(s.state, s.dataset in delivered, sealed),
            certificate_id=certificates.get(s.dataset),
        )
        for s in states
    )
    dossier = (
        output_dir is not None
        and (output_dir / "dossier" / safe_dir(run_id) / "index.html").is_file()
    )
    return RunRow(
        run_id=run_id,
        plan=run["plan_name"],
        scenario=run["scenario"],
        started_at=run["started_at"][:19].replace("T", " "),
        status=_status(RunState(run["state"]), kinds, states),
        datasets=rows,
        certificates=len(certificates),
        receipts=len(receipts),
        dossier=dossier,
    )


def build_overview(
    ledger: Ledger,
    *,
    plans_dir: Path,
    output_dir: Path | None,
    limit: int = 20,
    visible: Visible = everything,
) -> Overview:
    """The plans in ``plans_dir`` and the ``limit`` newest runs in the ledger, of the plans
    ``visible`` allows."""
    shown = [n for n in ledger.plan_names() if visible(n)]
    runs = ledger.recent_runs(limit, plans=shown)
    plans = tuple(
        PlanRow(
            name=h.name,
            title=h.title,
            scenario=h.scenario,
            file=h.path.name,
            problem=h.problem,
            runs=len(ledger.runs_of(h.name)),
        )
        for h in discover(plans_dir)
        if visible(h.name)
    )
    return Overview(plans, tuple(_run_row(ledger, r, output_dir) for r in runs))


def run_overview(
    ledger: Ledger, run_id: str, *, output_dir: Path | None, visible: Visible = everything
) -> Overview | None:
    """One run as the page shows it (the view on Airflow's DAG-run page), or None when the
    ledger has no such run; AccessDenied when its plan is not ``visible``."""
    run = ledger.run(run_id)
    if run is None:
        return None
    if not visible(run["plan_name"]):
        raise AccessDenied("you may not see this run")
    return Overview((), (_run_row(ledger, run, output_dir),))


def render_overview(
    overview: Overview, *, base: str, user: str, languages: Sequence[str] = LANGUAGES
) -> str:
    """The page as HTML, its labels in ``languages`` side by side (retirement.i18n: Chinese
    and English unless the request asks for one, ``?lang=``); ``base`` is the URL prefix
    the links are relative to."""
    chosen = tuple(languages)
    return _ENV.get_template("overview.html.j2").render(
        overview=overview,
        stages=STAGES,
        base=base.rstrip("/"),
        user=user,
        t=labeller(chosen),
        languages=chosen,
    )


_MAX_ID = 2**63 - 1  # no ledger's artifact id is larger (nor a database's integer)


def artifact_file(
    ledger: Ledger,
    artifact_id: int | str,
    *,
    kinds: tuple[str, ...],
    visible: Visible = everything,
) -> Path | None:
    """The file the ledger recorded for an artifact of one of ``kinds`` (its HTML rendering
    where there is one), or None: also for an id no artifact can have (``artifact_id`` may be
    the request's text) and for a recorded file that is gone. Paths come from the ledger,
    never from the request. AccessDenied when the artifact's plan is not ``visible``."""
    if isinstance(artifact_id, str):
        if not (artifact_id.isascii() and artifact_id.isdigit()):
            return None
        artifact_id = int(artifact_id)
    if not 0 < artifact_id <= _MAX_ID:
        return None
    row = ledger.artifact(artifact_id)
    if row is None or row["kind"] not in kinds:
        return None
    run = ledger.run(row["run_id"])
    if run is None or not visible(run["plan_name"]):
        raise AccessDenied("you may not see the evidence of this plan")
    path = Path(row["location"])
    html = path.with_suffix(".html")
    return html if _is_file(html) else (path if _is_file(path) else None)


def check_dossier_visible(ledger: Ledger, run_safe_id: str, visible: Visible) -> None:
    """AccessDenied unless the ledger has the run(s) whose dossier folder is ``run_safe_id``
    and ``visible`` allows each one's plan. The folder name is the run id with every character
    other than letters, digits, ``-_.`` made ``_`` (same length), so SQL LIKE, where ``_``
    matches any one character, finds every run that could own it."""
    owners = [r for r in ledger.runs_like(run_safe_id) if safe_dir(r["run_id"]) == run_safe_id]
    if not owners or not all(visible(r["plan_name"]) for r in owners):
        raise AccessDenied("you may not see this dossier")


def dossier_file(output_dir: Path, run_safe_id: str, relative: str) -> Path | None:
    """A file inside one run's dossier folder (its latest version when it was sealed again,
    evidence.versions), or None (never a path outside it, nor an error for a name the file
    system refuses: too long, a NUL byte)."""
    from retirement.evidence.versions import latest_version

    try:
        root = (output_dir / "dossier").resolve()
        folder = latest_version(root, run_safe_id).resolve()
        target = (folder / (relative or "index.html")).resolve()
    except (OSError, ValueError):
        return None
    if folder.parent != root or not target.is_relative_to(folder) or not _is_file(target):
        return None
    return target


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False where the file system cannot even look (name too long, no
    permission to search a folder, a NUL byte) instead of raising."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
