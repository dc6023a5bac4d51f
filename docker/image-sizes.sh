#!/usr/bin/env bash
# Print the size of each image against its budget; exit 1 if one is missing or over budget.
# Usage: docker/image-sizes.sh [TAG]   (default: the short git revision)
set -euo pipefail

TAG="${1:-$(git rev-parse --short HEAD)}"
# Budgets in MB (10^6 bytes, as `docker images` counts).
declare -A BUDGET_MB=([gender-api]=600 [gender-jobs]=1000 [gender-spark]=1700 [gender-mlflow]=1200)

status=0
printf '%-24s %10s %10s\n' IMAGE SIZE_MB BUDGET_MB
for name in gender-api gender-jobs gender-spark gender-mlflow; do
    image="$name:$TAG"
    if ! bytes=$(docker image inspect --format '{{.Size}}' "$image" 2>/dev/null); then
        printf '%-24s %10s %10s  MISSING\n' "$image" - "${BUDGET_MB[$name]}"
        status=1
        continue
    fi
    mb=$((bytes / 1000000))
    verdict=ok
    if [ "$mb" -ge "${BUDGET_MB[$name]}" ]; then verdict="OVER BUDGET"; status=1; fi
    printf '%-24s %10s %10s  %s\n' "$image" "$mb" "${BUDGET_MB[$name]}" "$verdict"
done
exit "$status"
