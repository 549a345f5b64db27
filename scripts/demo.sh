#!/usr/bin/env bash
# make demo: build the runner and the test agent image, then run the demo repository's
# nightly audit end to end in Docker and show what it produced. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNNER=$PWD/bin/runner

docker info >/dev/null 2>&1 || { echo "demo: the Docker engine is not reachable" >&2; exit 1; }
make -s testagent-image

work=$(mktemp -d /tmp/agentrunner-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r examples/demo/. "$work/"
git -C "$work" init -q -b main
git -C "$work" -c user.name=demo -c user.email=demo@example.com add -A
git -C "$work" -c user.name=demo -c user.email=demo@example.com commit -qm "demo repository"

echo "== runner validate"
(cd "$work" && "$RUNNER" validate)
echo
echo "== runner exec --dry-run nightly-audit --event dispatch"
(cd "$work" && "$RUNNER" exec --dry-run nightly-audit --event dispatch --input scope=docs)
echo
echo "== runner exec nightly-audit --event dispatch"
(cd "$work" && "$RUNNER" exec nightly-audit --event dispatch --input scope=docs --progress plain)
echo
echo "== the combined report"
cat "$work"/.agents/.runs/*/report.md
echo "== the combined patch"
cat "$work"/.agents/.runs/*/combined.patch
