"""The format versions this code writes, and the one check every reader makes (restic's
rule: a reader that meets a version it does not know stops, with a clear error, instead of
guessing). Every version that ever shipped stays readable: a file or ledger without a
version is version 1, as written before versions were recorded.

- ledger 1: each dataset event carried the dataset's whole record so far; no meta table.
  ledger 2: each dataset event carries what its phase added (model.records); a
  ``ledger_meta`` table holds the version. Version 2 reads version 1 ledgers unchanged.
  ledger 3: events from ``chain_encoding_3_from`` on are hashed as one RFC 8785 line
  (ledger.encoding), which sha256sum and a shell loop recompute; older events keep theirs.
- manifest 1, certificate 1: as documented in docs/.
  certificate 2: times and actors from the ledger's events, the plan's people (performed
  and verified by, the DPO), where the data was, bytes and individuals, the legal basis
  and impact assessment, a ``type`` (deletion or retention_expiry); NIST SP 800-88 Rev. 2.
  Version 1 certificates verify unchanged.
- dossier 1 (``head.json``): ledger.jsonl held the whole chain as event fields; dossier 2:
  the run's segment of the chain as the lines the hashes cover (docs/audit.md).
"""

from __future__ import annotations

from retirement.errors import IntegrityError, RetirementError

LEDGER_FORMAT = 3
MANIFEST_FORMAT = 1
CERTIFICATE_FORMAT = 2
DOSSIER_FORMAT = 2


def check_version(
    found: object,
    known: int,
    *,
    what: str,
    error: type[RetirementError] = IntegrityError,
) -> int:
    """The version ``found`` in ``what`` (None: version 1), or ``error`` naming it when it
    is not one this code reads (1 to ``known``)."""
    version = 1 if found is None else found
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= known:
        newer = isinstance(version, int) and version > known
        raise error(
            f"{what}: format_version {found!r} is "
            + (
                f"newer than this retirement reads (1 to {known}): upgrade retirement to read it"
                if newer
                else f"not a format version (expected a whole number from 1 to {known})"
            )
        )
    return version
