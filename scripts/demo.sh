#!/usr/bin/env bash
# The embedded demo: SQLite for everything, local folders as destinations, one real Airflow
# DAG run (`airflow dags test`) of the demo plan. Everything lands in demo-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-deregistration}
root=$PWD
out=${DEMO_OUTPUT:-$root/demo-output}
bin=$root/.venv/bin
case "$scenario" in
  deregistration) plan=demo ;;
  change) plan=demo_change ;;
  transfer_liquidation) plan=demo_transfer_liquidation ;;
  *) echo "Unknown scenario '$scenario': use deregistration, change or transfer_liquidation." >&2
     exit 2 ;;
esac
mkdir -p "$out"
# Each demo is a fresh retirement: a new company, keys, ledger and vault (Airflow's own
# metadata database is kept, it only speeds up the next run).
find "$out" -mindepth 1 -maxdepth 1 ! -name airflow -exec rm -rf {} +

export AIRFLOW_HOME=$out/airflow
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER=$root/dags
export PYTHONPATH=$root/include${PYTHONPATH:+:$PYTHONPATH}
export AIRFLOW_CONN_RETIREMENT_LEDGER="{\"conn_type\": \"generic\", \"extra\": {\"url\": \"sqlite:///$out/ledger.sqlite\", \"output_dir\": \"$out\"}}"
mkdir -p "$out/keys"
[ -f "$out/keys/master.key" ] || "$bin/python" -c "import sys; from pathlib import Path; from retirement.crypto.keys import KeyStore; KeyStore.new_master_key(Path(sys.argv[1]))" "$out/keys/master.key"
master=$(grep -v '^#' "$out/keys/master.key" | head -1)
export AIRFLOW_CONN_RETIREMENT_KEYS="{\"conn_type\": \"generic\", \"password\": \"$master\", \"extra\": {\"path\": \"$out/keys\"}}"
export AIRFLOW_CONN_DEMO_CRM="{\"conn_type\": \"sqlite\", \"host\": \"$out/sources/crm.sqlite\"}"
export AIRFLOW_CONN_DEMO_EXPORTS="{\"conn_type\": \"fs\", \"extra\": {\"path\": \"$out/sources/exports\"}}"

log=$out/demo-airflow.log
echo "==> checking the plan"
"$bin/retirement" plan check "include/plans/$plan.yaml"
echo "==> generating the demo company: $out/sources/crm.sqlite and $out/sources/exports/"
"$bin/python" -m retirement.demo "$out/sources" >/dev/null
# The successor's own key pair (its private key stays with it, under recipient/): the plan
# that runs names its public key, so `age -d -i recipient/successor.key` reads a delivery.
echo "==> generating the successor's age key pair: $out/recipient/successor.key"
"$bin/python" -m retirement.demo_recipient "include/plans/$plan.yaml" "$out" >/dev/null
export RETIREMENT_PLANS_DIR=$out/plans
echo "==> preparing Airflow's metadata database ($AIRFLOW_HOME)"
"$bin/airflow" db migrate >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
echo "==> running DAG retire__$plan (log: $log)"
if ! "$bin/airflow" dags test "retire__$plan" >>"$log" 2>&1 || ! grep -q "DagRun Finished.*state=success" "$log"; then
  grep -E "ERROR|Error|error" "$log" | tail -20
  echo "The demo run failed; the whole log is in $log" >&2
  exit 1
fi
echo "==> verifying the ledger"
"$bin/retirement" ledger verify --ledger "sqlite:///$out/ledger.sqlite"
inventory=$(ls -t "$out"/inventory/*/inventory.html | head -1)
"$bin/python" - "$out/ledger.sqlite" "include/plans/$plan.yaml" <<'PY'
import sys
from retirement.ledger.core import Ledger
from retirement.plan.model import load_plan

ledger = Ledger.open(f"sqlite:///{sys.argv[1]}", create=False)
run_id = [e.run_id for e in ledger.events() if e.kind == "run_started"][-1]
states = ledger.dataset_states(run_id)
receipts = ledger.artifacts(run_id, kind="receipt")
print(f"\nRun {run_id}: {len(states)} datasets")
print(f"  {'dataset':38} {'rows':>6}  {'class':9} {'disposition':18} {'state':15} delivered to")
for d in states:
    to = sorted({r["location"].split("/")[-4] for r in receipts if r["dataset"] == d.dataset})
    print(
        f"  {d.dataset:38} {d.rows:>6}  {d.data_class:9} {d.disposition:18} "
        f"{d.state:15} {', '.join(to) or '-'}"
    )
delivered = {r["dataset"] for r in receipts}
retained = {n for n, d in load_plan(sys.argv[2]).dispositions.items() if d.action == "retain"}
groups: dict[tuple[str, str], list[int]] = {}
for d in states:
    g = groups.setdefault((d.data_class, d.disposition), [0, 0, 0, 0, 0])
    rows = d.rows or 0
    g[0] += 1
    g[1] += rows if d.backup is not None else 0
    g[2] += rows if d.dataset in delivered else 0
    g[3] += rows if d.state == "deleted" else 0
    g[4] += rows if d.disposition in retained and d.dataset in delivered else 0
groups = {**dict(sorted(groups.items())), ("all", ""): [sum(c) for c in zip(*groups.values())]}
print("\nRows by class and disposition")
print(f"  {'class':9} {'disposition':18} {'datasets':>8} {'backed up':>9} {'delivered':>9} "
      f"{'deleted':>8} {'archived':>8}")
for (cls, disp), (n, backed, sent, deleted, archived) in groups.items():
    print(f"  {cls:9} {disp:18} {n:>8} {backed:>9} {sent:>9} {deleted:>8} {archived:>8}")
print(f"  receipts: {len(receipts)} verified deliveries (age file, manifest, signature each)")
certificates = ledger.artifacts(run_id, kind="certificate")
print(f"  certificates of sanitization: {len(certificates)}")
if certificates:
    print(f"    e.g. {certificates[0]['location']}")
ledger.close()
PY
echo
echo "Demo finished. Output: $out"
echo "  ledger:    $out/ledger.sqlite"
echo "  inventory: $inventory"
echo "  vault:     $out/vault ($(find "$out/vault" -name '*.age' | wc -l) age files with signed manifests)"
echo "  delivered: $out/successor (to the successor), $out/archive (retained archive)"
echo "  successor: age -d -i $out/recipient/successor.key FILE.age | zstd -d (its private key)"
dossier=$(ls -d "$out"/dossier/*/ | head -1)
# The signing key's fingerprint, as an auditor computes it from the published key:
# openssl pkey -pubin -in signing.pub.pem -outform DER | sha256sum
fingerprint=$("$bin/python" -c 'import sys
from retirement.crypto.keys import fingerprint, load_public_key
print(fingerprint(load_public_key(open(sys.argv[1], "rb").read())))' "$out/keys/signing.pub.pem")
"$bin/retirement" audit "$dossier" --key-fingerprint "$fingerprint" >/dev/null
echo "  dossier:   ${dossier}index.html (audited: retirement audit $dossier --key-fingerprint $fingerprint)"
echo "  signing key fingerprint (publish it; auditors check dossiers against it): $fingerprint"
