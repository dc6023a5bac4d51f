#!/usr/bin/env bash
# The spark image's entrypoint, with the contract of Apache Spark's Kubernetes entrypoint.sh, which
# spark-submit and the Spark Operator rely on: `driver ARGS` runs spark-submit in client mode inside
# the driver pod, `executor` starts an executor from the SPARK_* variables Spark sets on its pod,
# anything else runs as given (`python -m jobs.batch_predict --engine spark ...` in local mode).
set -euo pipefail

classpath="$SPARK_HOME/jars/*"
case "${1:-}" in
    driver)
        shift
        exec "$SPARK_HOME/bin/spark-submit" \
            --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:-0.0.0.0}" \
            --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS:-0.0.0.0}" \
            --deploy-mode client "$@"
        ;;
    executor)
        shift
        # Spark passes the executor's JVM options as SPARK_JAVA_OPT_0, _1, ... in that order.
        mapfile -t java_options < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/^[^=]*=//')
        exec java "${java_options[@]}" \
            -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \
            -cp "$classpath" org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
            --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" \
            --cores "$SPARK_EXECUTOR_CORES" --app-id "$SPARK_APPLICATION_ID" \
            --hostname "$SPARK_EXECUTOR_POD_IP" --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" \
            --podName "$SPARK_EXECUTOR_POD_NAME" "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
