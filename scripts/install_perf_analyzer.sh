#!/usr/bin/env bash
# Installs Triton's perf_analyzer, the load generator the inference tests and benchmarks call
# beamops with, as it ships in the tritonclient 2.51 wheel (newer PyPI perf-analyzer wheels need
# glibc >= 2.38; Debian 12 has 2.36). The binary links libcudart.so.12 (taken from NVIDIA's
# nvidia-cuda-runtime-cu12 wheel; no GPU is needed to run it) and libb64 (Debian's libb64-0d,
# installed by scripts/install_system_deps.sh).
#
# Idempotent: returns at once when <tools>/perf_analyzer/bin/perf_analyzer runs.
#   BEAMOPS_TOOLS_DIR (default <repo>/.tools): installs into <tools>/perf_analyzer/{bin,lib};
#   .tools/bin/perf_analyzer is a wrapper that sets LD_LIBRARY_PATH.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
tools="${BEAMOPS_TOOLS_DIR:-$root/.tools}"
[[ "$tools" == /* ]] || tools="$PWD/$tools"
python="${PYTHON:-$root/.venv/bin/python}"
dest="$tools/perf_analyzer"
wrapper="$tools/bin/perf_analyzer"

if [[ -x "$wrapper" ]] && "$wrapper" --version >/dev/null 2>&1; then
    exit 0
fi
mkdir -p "$dest/bin" "$dest/lib" "$tools/bin"
[[ -f "$tools/.gitignore" ]] || printf '*\n' > "$tools/.gitignore"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "installing perf_analyzer (tritonclient 2.51 wheel) into $dest ..."
"$python" -m pip download -q --no-deps -d "$work" "tritonclient==2.51.0" "nvidia-cuda-runtime-cu12==12.9.79"
"$python" - "$work" "$dest" <<'PY'
import glob, os, shutil, sys, zipfile
work, dest = sys.argv[1:]
wanted = {"tritonclient-2.51.0.data/data/bin/perf_analyzer": "bin/perf_analyzer",
          "nvidia/cuda_runtime/lib/libcudart.so.12": "lib/libcudart.so.12"}
for wheel in glob.glob(os.path.join(work, "*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name in wanted:
                target = os.path.join(dest, wanted.pop(name))
                with z.open(name) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                os.chmod(target, 0o755)
if wanted:
    sys.exit(f"install_perf_analyzer.sh: not found in the wheels: {sorted(wanted)}")
PY
cat > "$wrapper" <<SH
#!/usr/bin/env bash
LD_LIBRARY_PATH="$dest/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dest/bin/perf_analyzer" "\$@"
SH
chmod +x "$wrapper"
"$wrapper" --version >/dev/null 2>&1 || { echo "install_perf_analyzer.sh: perf_analyzer does not run:" >&2; "$wrapper" --version >&2 || true; exit 1; }
echo "perf_analyzer: $wrapper"
