#!/usr/bin/env bash
# The local stack, no cluster: MLflow, the API, Prometheus and a Pushgateway under honcho, and one
# retrain against them.
#   scripts/stack.sh up     start (idempotent), train, wait until the API is ready
#   scripts/stack.sh down   stop everything
#   scripts/stack.sh retrain|batch|drift   run one job against the running stack (the DAG
#                           gender_weekly's steps in local mode), its log also in var/log
# Settings: DATA_DIR (your users.csv [hotels.csv] [flights.csv]; default: generated sample data),
# API_PORT (5000; 5050 when 5000 is taken), MLFLOW_PORT (5500), PROMETHEUS_PORT (9090),
# PUSHGATEWAY_PORT (9091), PROMETHEUS_INTERVAL (scrape and rule evaluation, 15s), STACK_DIR (var).
# Prometheus and the Pushgateway are Debian's (packages prometheus, prometheus-pushgateway).
set -euo pipefail
cd "$(dirname "$0")/.."

export STACK_DIR=${STACK_DIR:-$PWD/var}
export API_PORT=${API_PORT:-5000}
export MLFLOW_PORT=${MLFLOW_PORT:-5500}
export PROMETHEUS_PORT=${PROMETHEUS_PORT:-9090}
export PUSHGATEWAY_PORT=${PUSHGATEWAY_PORT:-9091}
PROMETHEUS_INTERVAL=${PROMETHEUS_INTERVAL:-15s}
LOG_DIR=$STACK_DIR/log
PID_FILE=$STACK_DIR/stack.pid
MLFLOW_URL=http://127.0.0.1:$MLFLOW_PORT
API_URL=http://127.0.0.1:$API_PORT
PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT
PUSHGATEWAY_URL=http://127.0.0.1:$PUSHGATEWAY_PORT
# The one rules file, as the cluster's Prometheus loads it.
RULES=$PWD/manifests/components/monitoring/prometheus/rules.yaml
WAIT_S=120

export GENDER_MODEL_DIR=$STACK_DIR/models
export GENDER_DATA_DIR=${DATA_DIR:-$STACK_DIR/data}
export GENDER_SAMPLE_DATA_DIR=$STACK_DIR/sample-data
export GENDER_OUTPUT_DIR=$STACK_DIR/predictions
export GENDER_BIND=127.0.0.1:$API_PORT
export MLFLOW_TRACKING_URI=$MLFLOW_URL
export GENDER_PUSHGATEWAY_URL=$PUSHGATEWAY_URL

running() { [[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

wait_for() {  # URL NAME LOG
  local deadline=$((SECONDS + WAIT_S))
  until curl -fs -o /dev/null "$1"; do
    if ((SECONDS > deadline)) || ! running; then
      echo "error: $2 did not answer $1 within ${WAIT_S}s; last lines of $3:" >&2
      tail -n 30 "$3" >&2
      exit 1
    fi
    sleep 1
  done
}

# The same job names as in the cluster (components/monitoring/prometheus/prometheus.yml), so that
# the rules and dashboards read the local stack alike.
write_prometheus_config() {
  mkdir -p "$STACK_DIR/prometheus/data" "$STACK_DIR/pushgateway"
  cat >"$STACK_DIR/prometheus/prometheus.yml" <<CONFIG
global:
  scrape_interval: $PROMETHEUS_INTERVAL
  evaluation_interval: $PROMETHEUS_INTERVAL
rule_files:
  - $RULES
scrape_configs:
  - job_name: gender-api
    static_configs:
      - targets: ["127.0.0.1:$API_PORT"]
  - job_name: gender-pushgateway
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:$PUSHGATEWAY_PORT"]
CONFIG
}

up() {
  mkdir -p "$LOG_DIR" "$STACK_DIR/mlflow" "$GENDER_MODEL_DIR" "$GENDER_DATA_DIR" "$GENDER_OUTPUT_DIR"
  [[ -f $GENDER_SAMPLE_DATA_DIR/users.csv ]] || .venv/bin/python -m model.sample_data --out "$GENDER_SAMPLE_DATA_DIR"
  if running; then
    echo "the stack is already running (pid $(cat "$PID_FILE")); 'make down' stops it"
  else
    for port in "$API_PORT" "$MLFLOW_PORT" "$PROMETHEUS_PORT" "$PUSHGATEWAY_PORT"; do
      if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
        echo "error: port $port is taken; set API_PORT=5050, MLFLOW_PORT=..., PROMETHEUS_PORT=... or" \
          "PUSHGATEWAY_PORT=... (make up API_PORT=5050)" >&2
        exit 1
      fi
    done
    write_prometheus_config
    setsid .venv/bin/honcho start --no-colour -f Procfile -d . >"$LOG_DIR/stack.log" 2>&1 &
    echo $! >"$PID_FILE"
  fi
  wait_for "$MLFLOW_URL/health" MLflow "$LOG_DIR/stack.log"
  wait_for "$PUSHGATEWAY_URL/-/ready" "the Pushgateway" "$LOG_DIR/stack.log"
  echo "retraining on ${DATA_DIR:-generated sample data} (log: $LOG_DIR/retrain.log)"
  if ! .venv/bin/python -m jobs.retrain >"$LOG_DIR/retrain.log" 2>&1; then
    echo "error: retrain failed; last lines of $LOG_DIR/retrain.log:" >&2
    tail -n 30 "$LOG_DIR/retrain.log" >&2
    exit 1
  fi
  grep '"event": "gate"' "$LOG_DIR/retrain.log" | sed 's/^.*INFO jobs.retrain: /gate: /'
  wait_for "$API_URL/readyz" "the API" "$LOG_DIR/stack.log"
  wait_for "$PROMETHEUS_URL/-/ready" Prometheus "$LOG_DIR/stack.log"
  cat <<READY

The local stack is up (logs: $LOG_DIR/stack.log, $LOG_DIR/retrain.log).
  MLflow UI:   $MLFLOW_URL
  Prometheus:  $PROMETHEUS_URL   (alerts: $PROMETHEUS_URL/alerts)
  Pushgateway: $PUSHGATEWAY_URL   (the jobs push here)
  Predict:     curl -s -X POST $API_URL/predict_gender -H 'Content-Type: application/json' \\
                 -d '{"name": "Wilma Mcinnis", "age": 48, "company": "Acme Factory"}'
  Batch:       scripts/stack.sh batch   (writes $GENDER_OUTPUT_DIR/latest.csv)
  Stop:        make down
READY
}

down() {
  if running; then
    local pid
    pid=$(cat "$PID_FILE")
    kill -TERM "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
    echo "stopped the local stack"
  else
    echo "the local stack is not running"
  fi
  rm -f "$PID_FILE"
}

job() {  # MODULE LOG_NAME: the job's output on stdout and appended to its log; its exit code
  mkdir -p "$LOG_DIR"
  .venv/bin/python -m "$1" 2>&1 | tee -a "$LOG_DIR/$2.log"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  batch) job jobs.batch_predict batch ;;
  retrain) job jobs.retrain retrain ;;
  drift) job jobs.drift_report drift ;;
  *) echo "usage: $0 up|down|batch|retrain|drift" >&2; exit 2 ;;
esac
