#!/usr/bin/env bash
# `make airflow`: Airflow standalone (API server and UI, scheduler, DAG processor, triggerer) on
# 127.0.0.1:$AIRFLOW_PORT with its SQLite database under var/airflow, the DAG gender_weekly loaded
# from airflow/dags in local mode: its steps run scripts/stack.sh against the local stack (`make up`;
# this shell's DATA_DIR, MLFLOW_PORT, PUSHGATEWAY_PORT, STACK_DIR pass through to them).
# AIRFLOW_HOME moves Airflow's state elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

AIRFLOW_PORT=${AIRFLOW_PORT:-5800}
export AIRFLOW_HOME=${AIRFLOW_HOME:-$PWD/var/airflow}
export AIRFLOW__CORE__DAGS_FOLDER=$PWD/airflow/dags
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=$AIRFLOW_PORT
export AIRFLOW__API__BASE_URL=http://127.0.0.1:$AIRFLOW_PORT
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=$AIRFLOW__API__BASE_URL/execution/
export GENDER_AIRFLOW_MODE=${GENDER_AIRFLOW_MODE:-local}
PASSWORDS=$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated

if (exec 3<>"/dev/tcp/127.0.0.1/$AIRFLOW_PORT") 2>/dev/null; then
  echo "error: port $AIRFLOW_PORT is taken; set AIRFLOW_PORT=..." >&2
  exit 1
fi
mkdir -p "$AIRFLOW_HOME"
cat <<START
Airflow: $AIRFLOW__API__BASE_URL   (DAG gender_weekly, mode $GENDER_AIRFLOW_MODE; start the local stack with make up)
Log in as admin with the password Airflow writes to $PASSWORDS
once it has started (printed below as well). Ctrl-C stops it.
START
# standalone starts each component as `airflow ...` from PATH.
export PATH=$PWD/.tools/airflow/bin:$PATH
exec airflow standalone
