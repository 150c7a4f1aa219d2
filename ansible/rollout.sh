#!/bin/sh
# Roll a release out school by school: upgrade.yml once per school group (canary, then 25% batches inside
# the school), stopping at the first school whose upgrade fails. Extra arguments go to ansible-playbook.
#   ./rollout.sh inventory.yml -e edge_wheelhouse=dist/wheelhouse -e edge_wheel=classroom_edge-0.2.0-py3-none-any.whl
set -eu
cd "$(dirname "$0")"
inventory=$1
shift
schools=$(ansible-inventory -i "$inventory" --list | python3 -c '
import json, sys
groups = json.load(sys.stdin)
print("\n".join(g for g in groups.get("classroom_edge", {}).get("children", []) if g.startswith("school_")))')
for school in $schools; do
    echo "== $school"
    if ! ansible-playbook -i "$inventory" upgrade.yml -l "$school" "$@"; then
        echo "rollout stopped: $school failed (its failed units rolled back by themselves)" >&2
        exit 1
    fi
done
