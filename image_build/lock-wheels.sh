#!/usr/bin/env bash
# Regenerate requirements-arm64.lock: the arm64 wheels of the app's dependencies, pinned with their sha256.
# (`make image-lock`; the build installs exactly these, so two builds of a commit get the same bytes.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python3}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# the app's own requirements, from pyproject.toml (lgpio's marker is for the Pi, so it is named here)
reqs=$("$py" - "$here/../pyproject.toml" <<'PY'
import re, sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
print("\n".join(re.sub(r"\s*;.*", "", d) for d in deps))
PY
)
# shellcheck disable=SC2086
"$py" -m pip download -q --only-binary=:all: --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
    --platform manylinux_2_34_aarch64 --python-version 3.11 --implementation cp --abi cp311 -d "$tmp" $reqs
{
    echo "# arm64 (aarch64, CPython 3.11) wheels of the app's dependencies; regenerate with make image-lock"
    for whl in "$tmp"/*.whl; do
        name=$(basename "$whl" | cut -d- -f1); version=$(basename "$whl" | cut -d- -f2)
        echo "$name==$version --hash=sha256:$(sha256sum "$whl" | cut -d' ' -f1)"
    done
} > "$here/requirements-arm64.lock"
echo "wrote $here/requirements-arm64.lock ($(grep -c == "$here/requirements-arm64.lock") wheels)"
