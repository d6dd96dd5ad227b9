"""Data-quality gates run with great-expectations (an ephemeral context, results kept).

A gate validates small pandas frames built from the ledger's facts (one row per dataset, one
per column); when any expectation fails, its phase keeps the result as evidence and raises
:class:`GateFailed` naming the failing expectations: a failed gate always fails its task
(never silently, airflow-provider-great-expectations#195).
GX is imported inside the functions: it costs ~3 s and ~270 MB.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from retirement.errors import GateFailed

if TYPE_CHECKING:
    from retirement.inventory.scan import DatasetReport
    from retirement.plan.policy import ClassificationPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """One expectation: a GX expectation class name and its keyword arguments."""

    expectation: str
    kwargs: dict[str, Any]
    why: str


@dataclass(frozen=True)
class GateResult:
    gate: str
    success: bool
    failures: tuple[str, ...]
    results: dict[str, Any]  # the GX validation results, JSON-able, kept as evidence
    docs: dict[str, str] = field(default_factory=dict)  # GX Data Docs page (HTML) per frame

    def summary(self) -> dict[str, Any]:
        return {"gate": self.gate, "success": self.success, "failures": list(self.failures)}


def run_gate(gate: str, frames: dict[str, tuple[Any, list[Check]]]) -> GateResult:
    """Validate each named frame against its checks and return the verdict: every failing
    check in ``failures``, the GX results and Data Docs pages to keep as evidence.

    It does not raise for a failing check: the gate phases (:mod:`retirement.phases`) keep
    the result as evidence and then raise :class:`GateFailed` when ``success`` is false;
    :func:`gate_inventory` raises it at once, the result attached."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas(f"{gate}_frames")
    failures: list[str] = []
    results: dict[str, Any] = {}
    docs: dict[str, str] = {}
    for name, (frame, checks) in frames.items():
        batch_def = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(gx.ExpectationSuite(name=f"{gate}.{name}"))
        for check in checks:
            suite.add_expectation(getattr(gx.expectations, check.expectation)(**check.kwargs))
        batch = batch_def.get_batch(batch_parameters={"dataframe": frame})
        outcome = batch.validate(suite)
        results[name] = outcome.to_json_dict()
        docs[name] = _data_docs(outcome)
        for check, res in zip(checks, outcome.results, strict=True):
            if not res.success:
                unexpected = (res.result or {}).get("partial_unexpected_list", [])[:5]
                failures.append(
                    f"{name}: {check.why} ({check.expectation}"
                    f"{', e.g. ' + repr(unexpected) if unexpected else ''})"
                )
    result = GateResult(gate, not failures, tuple(failures), results, docs)
    log.info("gate %s: %s", gate, "passed" if result.success else f"{len(failures)} failure(s)")
    return result


def _data_docs(outcome: Any) -> str:
    """The validation result as a GX Data Docs page (its own renderer, no docs site needed)."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    page: str = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(outcome))
    return page


def inventory_frames(
    reports: list[DatasetReport], policy: ClassificationPolicy, dispositions: list[str]
) -> dict[str, tuple[Any, list[Check]]]:
    """The inventory gate: every dataset classified with an exact count and a disposition;
    no column holding validated identifiers left in the lowest class."""
    lowest = policy.classes[0]
    return {
        "datasets": (_datasets_frame(reports), _dataset_checks(policy, dispositions)),
        "validated_columns": (
            _validated_frame(reports),
            [
                Check(
                    "ExpectColumnValuesToNotBeInSet",
                    {"column": "class", "value_set": [lowest]},
                    f"no column with validated identifiers is {lowest}",
                ),
            ],
        ),
    }


def _datasets_frame(reports: list[DatasetReport]) -> Any:
    """One row per dataset: its name, class, row count and disposition."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "dataset": r.qualified,
                "class": r.data_class,
                "rows": r.rows,
                "disposition": r.disposition,
            }
            for r in reports
        ],
        columns=["dataset", "class", "rows", "disposition"],
    )


def _validated_frame(reports: list[DatasetReport]) -> Any:
    """One row per column in which validated identifiers were found, with its class."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "column": f"{r.qualified}.{c.name}",
                "class": c.data_class,
                "found": ",".join(sorted(c.found)),
            }
            for r in reports
            for c in r.columns
            if c.found
        ],
        columns=["column", "class", "found"],
    )


def _dataset_checks(policy: ClassificationPolicy, dispositions: list[str]) -> list[Check]:
    """Every dataset has a class of the policy, a row count and a disposition of the plan."""
    return [
        Check("ExpectColumnValuesToNotBeNull", {"column": "class"}, "every dataset has a class"),
        Check(
            "ExpectColumnValuesToBeInSet",
            {"column": "class", "value_set": list(policy.classes)},
            "classes come from the policy",
        ),
        Check(
            "ExpectColumnValuesToNotBeNull",
            {"column": "rows"},
            "every dataset has a row count",
        ),
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": "rows", "min_value": 0},
            "row counts are not negative",
        ),
        Check("ExpectColumnValuesToBeUnique", {"column": "dataset"}, "each dataset once"),
        Check(
            "ExpectColumnValuesToNotBeNull",
            {"column": "disposition"},
            "every dataset has a disposition of the plan",
        ),
        Check(
            "ExpectColumnValuesToBeInSet",
            {"column": "disposition", "value_set": dispositions},
            "every dataset has a disposition of the plan",
        ),
    ]


def gate_inventory(
    reports: list[DatasetReport], policy: ClassificationPolicy, dispositions: list[str]
) -> GateResult:
    result = run_gate("gate_inventory", inventory_frames(reports, policy, dispositions))
    if not result.success:
        raise GateFailed(result.gate, "; ".join(result.failures), result)
    return result


def backup_frames(
    datasets: list[dict[str, Any]], columns: list[dict[str, Any]]
) -> dict[str, tuple[Any, list[Check]]]:
    """The backup gate, on the restored streams: counts equal the source at backup time and
    the inventory; keys unique and not null; NULLs per column equal the source profile."""
    import pandas as pd

    ds = pd.DataFrame(
        datasets,
        columns=[
            "dataset",
            "rows_source",
            "rows_restored",
            "rows_inventory",
            "key_nulls",
            "key_duplicates",
        ],
    )
    cols = pd.DataFrame(columns, columns=["column", "source_nulls", "restored_nulls"])
    return {
        "restored_datasets": (
            ds,
            [
                _equal(
                    "rows_source",
                    "rows_restored",
                    "restored rows equal the source's at backup time",
                ),
                _equal(
                    "rows_inventory", "rows_restored", "restored rows equal the inventory's count"
                ),
                _none("key_nulls", "key columns are not null"),
                _none("key_duplicates", "key columns are unique"),
            ],
        ),
        "restored_columns": (
            cols,
            [_equal("source_nulls", "restored_nulls", "NULLs per column equal the source profile")],
        ),
    }


def transfer_frames(deliveries: list[dict[str, Any]]) -> dict[str, tuple[Any, list[Check]]]:
    """The transfer gate: every required delivery has a receipt whose digest equals the
    manifest's, and the object at the destination verified again just now."""
    import pandas as pd

    frame = pd.DataFrame(
        deliveries, columns=["delivery", "manifest_sha256", "receipt_sha256", "verified_now"]
    )
    return {
        "deliveries": (
            frame,
            [
                Check(
                    "ExpectColumnValuesToNotBeNull",
                    {"column": "receipt_sha256"},
                    "every required delivery has a receipt",
                ),
                _equal("manifest_sha256", "receipt_sha256", "receipt digests equal the manifests'"),
                _equal(
                    "manifest_sha256",
                    "verified_now",
                    "the objects at the destinations verify again now",
                ),
            ],
        )
    }


def deletion_frames(datasets: list[dict[str, Any]]) -> dict[str, tuple[Any, list[Check]]]:
    """The deletion gate: nothing of the backed-up scope is left at the source, and the
    inventory's detectors find no identifier in what is left of each dataset."""
    import pandas as pd

    frame = pd.DataFrame(datasets, columns=["dataset", "scoped_left", "residual_identifiers"])
    return {
        "deleted_datasets": (
            frame,
            [
                _none("scoped_left", "no row of the backed-up scope is left at the source"),
                _none(
                    "residual_identifiers", "no identifier is left in the dataset (residual scan)"
                ),
            ],
        )
    }


def _equal(column_a: str, column_b: str, why: str) -> Check:
    """Each row has the same value in the two columns."""
    return Check(
        "ExpectColumnPairValuesToBeEqual", {"column_A": column_a, "column_B": column_b}, why
    )


def _none(count: str, why: str) -> Check:
    """The column counts what must not be there: 0 in each row."""
    return Check("ExpectColumnValuesToBeBetween", {"column": count, "max_value": 0}, why)
