#!/usr/bin/env bash
# The README's five-minute walkthrough, end to end through the beamops command line.
# Run after `make up` (it uses the token and addresses `make up` saved): `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
beamops() { .venv/bin/beamops "$@"; }
json() { .venv/bin/python -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Put two real CMS open-data files where the data service may read them (./data)"
mkdir -p data && cp tests/data/root/uproot-HZZ.root tests/data/root/uproot-Zmumu.root data/
ls -l data/*.root

step "2. Register them as content-addressed dataset versions"
beamops datasets add hzz uproot-HZZ.root --tree events --description "H->ZZ->4l (CMS open data)"
zmumu=$(beamops --json datasets add zmumu uproot-Zmumu.root --tree events \
        --description "Z->mumu (CMS open data)" | json 'd[0]["version_id"]')
echo "zmumu version: $zmumu"

step "3. Split it 60/20/20 with seed 1 (the same seed always gives the same split)"
split=$(beamops --json datasets split zmumu "$zmumu" --train 0.6 --validation 0.2 --test 0.2 --seed 1 \
        | json 'd[0]["version_id"]')
expected=$(grep -oE 'dsv-[0-9a-f]+' examples/jobs/zmumu_gbt.yaml | head -1)
echo "split version: $split (the job spec names $expected)"
[ "$split" = "$expected" ] || { echo "the split is not the one the job spec names" >&2; exit 1; }

step "4. Train: boosted trees regress the dimuon mass; ONNX checked against the native model"
job=$(beamops --json train submit examples/jobs/zmumu_gbt.yaml | json 'd[0]["job_id"]')
beamops jobs watch "$job"
version=$(beamops --json jobs show "$job" | json 'd["result"]["parameters"]["version"]')

step "5. Promote it to production and deploy by alias onto Triton"
beamops alias set zmumu-mass production "$version" --reason "demo: first model"
beamops deploy zmumu-mass --alias production --name zmumu-mass --reason "demo" \
  || beamops deploy zmumu-mass --alias production --name zmumu-mass --replace --reason "demo again"
beamops deployments

step "6. Predict from Python (the SDK), and from Go when its example is built"
.venv/bin/python - <<'PY'
import numpy as np, uproot, beamops
events = uproot.open("data/uproot-Zmumu.root")["events"].arrays(
    ["E1", "px1", "py1", "pz1", "E2", "px2", "py2", "pz2", "M"], library="np", entry_stop=5)
x = np.stack([events[k] for k in ["E1", "px1", "py1", "pz1", "E2", "px2", "py2", "pz2"]], axis=1).astype(np.float32)
with beamops.Client() as client:
    input_name = client.inference.get("zmumu-mass").raw["signature"]["inputs"][0]["name"]
    open("var/demo-input-name", "w").write(input_name)
    answer = client.inference.predict("zmumu-mass", {input_name: x})
for name, values in answer.outputs.items():
    print(f"{answer.model} {answer.version}: {name} =", np.round(values.ravel(), 2), " true M =", np.round(events["M"], 2))
PY
if [ -x clients/go/bin/predict ]; then
  echo "from Go (clients/go/bin/predict, built by the client tests or clients/README.md):"
  BEAMOPS_TOKEN=$(json 'd["token"]' < "${BEAMOPS_CONFIG:-$HOME/.config/beamops/config.json}") \
    clients/go/bin/predict --model zmumu-mass --alias production --input "$(cat var/demo-input-name)" \
    --shape 1,8 --values 82.2,-41.2,17.5,-68.9,44.4,34.1,-16.1,24.5
fi

step "7. Where did it come from, and who did what?"
beamops models lineage zmumu-mass "$version"
beamops audit --limit 10
