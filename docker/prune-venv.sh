#!/bin/sh
# The last step of every image's venv in docker/Dockerfile: the runtime needs neither pip nor the
# test suites that wheels ship (pandas' is the largest).
set -eu
/opt/venv/bin/pip uninstall --yes pip
find /opt/venv -type d -name tests -prune -exec rm -rf {} +
