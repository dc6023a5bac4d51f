"""Property-based checks of the live API against its own /openapi.json (schemathesis, bounded).

Driven through schemathesis' Python API and Hypothesis directly: its lazy pytest loader
(`schemathesis.pytest.from_fixture`) does not run under pytest 9.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 60


def test_every_operation_conforms_to_its_schema(live_service):
    schema = schemathesis.openapi.from_url(f"{live_service}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert "POST /predict_gender" in {operation.label for operation in operations}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
        def conforms(case):
            # No 5xx, documented status codes and content types, bodies matching the response schemas.
            case.call_and_validate()

        conforms()
