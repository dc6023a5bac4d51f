#!/usr/bin/env bash
# Smoke test of the deployed API through a port-forward to svc/gender-api: /readyz must answer
# and one prediction must come back with a gender.
#
#   load/smoke.sh                  the checks only (`make smoke`)
#   load/smoke.sh COMMAND [ARG...] the checks, then COMMAND while the port-forward is still open
#                                  (`make load-cluster` runs the Locust gate this way)
#   load/smoke.sh --stop           end a port-forward that a killed run left behind (Jenkins' post step)
#
# Settings: NAMESPACE (gender-classifier), SMOKE_PORT (local port, 5000), SMOKE_READY_TIMEOUT_S (90),
# SMOKE_PIDFILE (var/port-forward.pid: the port-forward's process id, so it is ended by id only).
set -euo pipefail

NAMESPACE="${NAMESPACE:-gender-classifier}"
PORT="${SMOKE_PORT:-5000}"
READY_TIMEOUT_S="${SMOKE_READY_TIMEOUT_S:-90}"
PIDFILE="${SMOKE_PIDFILE:-var/port-forward.pid}"
SERVICE=svc/gender-api
SERVICE_PORT=80
BASE_URL="http://127.0.0.1:${PORT}"
POLL_INTERVAL_S=2
SAMPLE_USER='{"name": "Maria Silva", "age": 34, "company": "Acme Factory"}'

stop_port_forward() {
    [[ -f "$PIDFILE" ]] || return 0
    local pid
    pid="$(cat "$PIDFILE")"
    # A stale pidfile must not end an unrelated process that reused the id.
    if [[ "$(ps -p "$pid" -o comm= 2>/dev/null)" == kubectl ]]; then
        kill "$pid" 2>/dev/null || true
        # Our own port-forward is a child: wait until it is gone, so the port is free when we exit.
        wait "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
}

fail() {
    echo "smoke: error: $*" >&2
    exit 1
}

if [[ "${1:-}" == --stop ]]; then
    stop_port_forward
    exit 0
fi

mkdir -p "$(dirname "$PIDFILE")"
stop_port_forward # a leftover of an earlier run would hold the port
PORT_FORWARD_LOG="${PIDFILE%.pid}.log"
kubectl -n "$NAMESPACE" port-forward "$SERVICE" "${PORT}:${SERVICE_PORT}" >"$PORT_FORWARD_LOG" 2>&1 &
echo $! >"$PIDFILE"
trap stop_port_forward EXIT

deadline=$((SECONDS + READY_TIMEOUT_S))
until curl -fsS --max-time 5 -o /dev/null "$BASE_URL/readyz" 2>/dev/null; do
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        cat "$PORT_FORWARD_LOG" >&2
        fail "the port-forward to $SERVICE in namespace $NAMESPACE ended"
    fi
    ((SECONDS < deadline)) || fail "$BASE_URL/readyz not ready after ${READY_TIMEOUT_S}s"
    sleep "$POLL_INTERVAL_S"
done
echo "smoke: $BASE_URL/readyz is ready"

prediction="$(curl -fsS --max-time 10 -H 'Content-Type: application/json' -d "$SAMPLE_USER" \
    "$BASE_URL/predict_gender")" || fail "POST /predict_gender failed"
grep -Eq '"gender": ?"(male|female)"' <<<"$prediction" || fail "no gender in the prediction: $prediction"
echo "smoke: prediction $prediction"

if (($#)); then
    "$@"
fi
