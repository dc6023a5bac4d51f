"""Validates Kubeflow Spark Operator objects (SparkApplication, ScheduledSparkApplication) against
the operator's API types, offline, with the models of the kubeflow-spark-api package (`make tools`
installs it into .tools/venv; pydantic models generated from the operator's OpenAPI document).

    .tools/venv/bin/python tests/support/validate_spark.py < objects.json

stdin is a JSON array of objects. Prints a JSON array with, for each object in order,
{"object": "Kind/name", "errors": [...]}. The models check types and required fields; a field
they do not know (which they would drop silently) is reported as unknown, as the API server's
structural schema would prune or refuse it. Exit status: 0 when every object is valid, 1 when one
is not (an object of a kind without a model is invalid, never skipped), 2 when the input is
unusable.
"""

import json
import sys

try:
    import pydantic
    from kubeflow_spark_api.models.spark_v1beta2_scheduled_spark_application import (
        SparkV1beta2ScheduledSparkApplication,
    )
    from kubeflow_spark_api.models.spark_v1beta2_spark_application import SparkV1beta2SparkApplication
except ImportError as missing:
    sys.exit(f"validate_spark: {missing}: run `make tools` (kubeflow-spark-api in .tools/venv)")

API_VERSION = "sparkoperator.k8s.io/v1beta2"
MODELS = {
    "SparkApplication": SparkV1beta2SparkApplication,
    "ScheduledSparkApplication": SparkV1beta2ScheduledSparkApplication,
}


def unknown_fields(given: object, known: object, path: str = "") -> list[str]:
    """The paths in `given` that the models' round trip (`known`) lost."""
    if isinstance(given, dict) and isinstance(known, dict):
        return [
            error
            for key, value in given.items()
            for error in (
                [f"{path}/{key} is not a known field"]
                if key not in known
                else unknown_fields(value, known[key], f"{path}/{key}")
            )
        ]
    if isinstance(given, list) and isinstance(known, list):
        if len(given) != len(known):
            return [f"{path} lost items in the models' round trip"]
        pairs = enumerate(zip(given, known, strict=True))
        return [e for i, (g, k) in pairs for e in unknown_fields(g, k, f"{path}/{i}")]
    return []


def errors_of(obj: object) -> list[str]:
    if not isinstance(obj, dict):
        return ["not an object"]
    model = MODELS.get(obj.get("kind")) if obj.get("apiVersion") == API_VERSION else None
    if model is None:
        return [f"no schema for apiVersion {obj.get('apiVersion')} kind {obj.get('kind')}"]
    try:
        parsed = model.from_dict(obj)
    except pydantic.ValidationError as error:
        # The generated from_dict builds each nested model apart: loc is inside error.title's model.
        return [f"{error.title}: /{'/'.join(map(str, e['loc']))} {e['msg']}" for e in error.errors()]
    return unknown_fields(obj, parsed.to_dict())


def main() -> int:
    try:
        objects = json.load(sys.stdin)
    except json.JSONDecodeError as error:
        print(f"validate_spark: stdin is not JSON: {error}", file=sys.stderr)
        return 2
    if not isinstance(objects, list):
        print("validate_spark: stdin must be a JSON array of objects", file=sys.stderr)
        return 2
    report = [
        {"object": f"{o.get('kind')}/{o.get('metadata', {}).get('name', '?')}", "errors": errors_of(o)}
        if isinstance(o, dict)
        else {"object": "?", "errors": errors_of(o)}
        for o in objects
    ]
    print(json.dumps(report, indent=2))
    return 1 if any(entry["errors"] for entry in report) else 0


if __name__ == "__main__":
    sys.exit(main())
