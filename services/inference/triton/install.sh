#!/usr/bin/env bash
# Installs the bundled Triton Inference Server used by the inference service.
#
# What it makes (idempotent; a second run returns at once):
#   $BEAMOPS_TRITON_VENV     (default <repo>/.venv-triton): its own virtual environment, because
#                            nvidia-pytriton pins numpy<2. Holds the `tritonserver` binary and the
#                            packages that the Python-backend stub imports (numpy<2, onnxruntime).
#   $BEAMOPS_TRITON_BACKENDS (default <repo>/var/triton/backends): the --backend-directory, holding
#                            python/{libtriton_python.so, triton_python_backend_utils.py,
#                            triton_python_backend_stub} as symlinks into the installed wheel.
#   <venv>/beamops-triton.json: a manifest of the paths above (read by
#                            beamops.inference.triton.bundled); written last, so it is the marker.
#
# $BEAMOPS_TRITON_PYTHON (default python3.11) must be a CPython 3.11 built with --enable-shared:
# the stub links libpython3.11.so.1.0 and must get that interpreter's own copy (not the system's).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="${BEAMOPS_TRITON_VENV:-$root/.venv-triton}"
backends="${BEAMOPS_TRITON_BACKENDS:-$root/var/triton/backends}"
python="${BEAMOPS_TRITON_PYTHON:-python3.11}"
[[ "$venv" == /* ]] || venv="$PWD/$venv"
[[ "$backends" == /* ]] || backends="$PWD/$backends"

# Bump when the pins change: a manifest with another spec triggers a reinstall.
spec="nvidia-pytriton==0.7.0 (no deps) onnxruntime numpy<2"
manifest="$venv/beamops-triton.json"

die() { echo "install.sh: $*" >&2; exit 1; }

up_to_date() {
    [[ -f "$manifest" && -x "$venv/bin/python" ]] || return 1
    grep -qF "\"spec\": \"$spec\"" "$manifest" || return 1
    grep -qF "\"backend_dir\": \"$backends\"" "$manifest" || return 1
    local f
    for f in libtriton_python.so triton_python_backend_utils.py triton_python_backend_stub; do
        [[ -e "$backends/python/$f" ]] || return 1
    done
}

if up_to_date; then
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    command -v "$python" >/dev/null || die "$python not found (set BEAMOPS_TRITON_PYTHON)"
    "$python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null \
        || die "$python is not Python 3.11 (the bundled stub is built for 3.11)"
    "$python" -m venv "$venv"
fi

# The interpreter's own libpython, which the stub must load (via LD_LIBRARY_PATH).
libdir="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
[[ -e "$libdir/libpython3.11.so.1.0" ]] \
    || die "$libdir/libpython3.11.so.1.0 missing: Python must be built with --enable-shared"

# Only the wheel's files are used (binary, backend, stubs, bundled libs), never the pytriton
# package, so its Python dependencies (grpc, tritonclient, gevent, ...) are left out.
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" onnxruntime "numpy<2"
"${pip[@]}" --no-deps "nvidia-pytriton==0.7.0"  # last: pip checks nothing after a --no-deps

site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
dist="$site/pytriton/tritonserver"
libs="$site/nvidia_pytriton.libs"
server="$dist/bin/tritonserver"
stub="$dist/python_backend_stubs/3.11/triton_python_backend_stub"
for f in "$server" "$stub" "$dist/backends/python/libtriton_python.so" \
         "$dist/backends/python/triton_python_backend_utils.py" "$libs"; do
    [[ -e "$f" ]] || die "expected $f in the nvidia-pytriton wheel"
done

mkdir -p "$backends/python"
ln -sfn "$dist/backends/python/libtriton_python.so" "$backends/python/libtriton_python.so"
ln -sfn "$dist/backends/python/triton_python_backend_utils.py" \
    "$backends/python/triton_python_backend_utils.py"
ln -sfn "$stub" "$backends/python/triton_python_backend_stub"

"$venv/bin/python" - "$manifest" "$spec" "$venv" "$backends" "$server" "$libdir" "$libs" \
    "$site" <<'EOF'
import json, os, sys
out, spec, venv, backends, server, libdir, libs, site = sys.argv[1:]
data = {"spec": spec, "venv": venv, "backend_dir": backends, "tritonserver": server,
        "python_libdir": libdir, "server_libs": libs, "site_packages": site}
tmp = out + ".tmp"
with open(tmp, "w") as f:
    json.dump(data, f, indent=1)
os.replace(tmp, out)
EOF
