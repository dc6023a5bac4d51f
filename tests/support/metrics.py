"""Read the Prometheus text exposition with prometheus_client's own parser."""

from prometheus_client.parser import text_string_to_metric_families


def sample_value(exposition: str, name: str, **labels: str) -> float:
    """The value of the sample `name` whose labels are exactly `labels` (in any order); 0 if absent.

    Absent counts as 0 because a labelled counter has no sample until its first increment.
    """
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0
