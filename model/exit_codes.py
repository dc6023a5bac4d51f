"""The exit codes of every command-line entrypoint (model.*, jobs.*), one meaning each.

A Job's podFailurePolicy and a pipeline step read them: retrying helps a busy lock or a tracking
server that is still starting, never a refused file.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the Job or rollout that the cluster CLI followed failed
    USAGE = 2  # bad arguments or settings, a missing signing key (argparse exits with 2 as well)
    BAD_INPUT = 3  # an input file was refused: a data file, an overlay's kustomization
    NO_MODEL = 4  # no verified model to use: none published yet, or it fails verification
    WRITER_BUSY = 5  # another process holds the model directory's writer lock
    TRACKING = 6  # the MLflow tracking server is unreachable or fails
    TIMEOUT = 7  # the cluster CLI stopped waiting; the work goes on in the cluster
    CLUSTER = 8  # the Kubernetes API or its configuration failed
    NO_ACCESS = 9  # a file or volume the job needs is not readable or writable for its user
    TERMINATED = 143  # stopped by SIGTERM (128 + 15, as a shell reports it)
