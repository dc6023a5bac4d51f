"""Helpers the tests share: waiting on a condition, reading the metrics exposition."""
