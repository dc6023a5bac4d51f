"""Entrypoints of the Kubernetes Jobs and CronJobs, and the cluster CLI."""
