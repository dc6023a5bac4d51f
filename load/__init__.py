"""Load tests of the prediction API: Locust traffic and the load gate's thresholds."""
