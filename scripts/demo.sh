#!/usr/bin/env bash
# make demo: build the runner and the test agent image, start the daemon (`runner serve`) on its
# embedded default (SQLite in a temporary data dir) with the demo repository served from a local
# git repository, dispatch the nightly audit through the HTTP API with a token, and show the run
# end to end: its jobs, its logs, its report. Then stop the daemon and leave nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNNER=$PWD/bin/runner

docker info >/dev/null 2>&1 || { echo "demo: the Docker engine is not reachable" >&2; exit 1; }
make -s testagent-image

work=$(mktemp -d /tmp/agentrunner-demo.XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The example repository, as a local git repository the daemon fetches over file://.
mkdir -p "$work/repo"
cp -r examples/demo/.agents examples/demo/README.md "$work/repo/"
git -C "$work/repo" init -q -b main
git -C "$work/repo" -c user.name=demo -c user.email=demo@example.com add -A
git -C "$work/repo" -c user.name=demo -c user.email=demo@example.com commit -qm "demo repository"

# A free port for the daemon.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18080)
sed -e "s|@LISTEN@|127.0.0.1:$port|" -e "s|@DATA@|$work/data|" -e "s|@REPO@|$work/repo|" \
  examples/demo/runner.yaml.in > "$work/runner.yaml"
export AGENTRUNNER_CONFIG=$work/runner.yaml AGENTRUNNER_SERVER=http://127.0.0.1:$port

echo "== runner serve --config runner.yaml   (logs: $work/serve.log)"
sed -n '/^[a-z]/p;/^  -/p;/^    /p' "$work/runner.yaml"
"$RUNNER" serve >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 50); do curl -fsS "$AGENTRUNNER_SERVER/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "$AGENTRUNNER_SERVER/healthz" >/dev/null || { cat "$work/serve.log"; echo "demo: the daemon did not start" >&2; exit 1; }
echo

echo "== runner token create demo"
AGENTRUNNER_TOKEN=$("$RUNNER" token create demo)
export AGENTRUNNER_TOKEN
echo "${AGENTRUNNER_TOKEN:0:8}… (printed once; only its hash is stored)"
echo

echo "== runner dispatch demo/repo nightly-audit --input scope=nope   (inputs are checked first)"
"$RUNNER" dispatch demo/repo nightly-audit --input scope=nope || true
echo

echo "== runner dispatch demo/repo nightly-audit --input scope=docs --wait"
run=$("$RUNNER" dispatch demo/repo nightly-audit --input scope=docs --wait --timeout 5m) || status=$?
echo "run id: $run"
echo

echo "== runner runs"
"$RUNNER" runs
echo
echo "== runner runs $run"
"$RUNNER" runs "$run"
echo
echo "== runner logs $run 'audit[readme]'"
"$RUNNER" logs "$run" 'audit[readme]'
echo
echo "== the combined report ($work/data/runs/$run/report.md)"
cat "$work/data/runs/$run/report.md"
echo "== the combined patch"
cat "$work/data/runs/$run/combined.patch" 2>/dev/null || echo "(none)"
echo
echo "== curl /metrics (excerpt)"
curl -fsS "$AGENTRUNNER_SERVER/metrics" | grep -E '^agentrunner_(runs_total|queue_jobs|deliveries_total)' || true
echo
echo "== stopping the daemon (SIGTERM)"
kill -TERM "$pid"; wait "$pid" || true; pid=""
tail -n 3 "$work/serve.log"
exit "${status:-0}"
