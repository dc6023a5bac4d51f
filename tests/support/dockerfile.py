"""docker/Dockerfile read as its stages, for the tests that check or play what an image holds."""

import re
import shlex

from tests.fixtures.data import CHECKOUT_DIR

DOCKERFILE = CHECKOUT_DIR / "docker" / "Dockerfile"


def stages() -> dict[str, tuple[str, list[str]]]:
    """The stages: name -> (what it is FROM, its instruction lines without comments)."""
    stages = {}
    for stage in re.split(r"^FROM\s+", DOCKERFILE.read_text(), flags=re.MULTILINE)[1:]:
        header, *lines = stage.splitlines()
        parent, _, name = header.partition(" AS ")
        stages[name.strip()] = (parent.strip(), [line for line in lines if not line.lstrip().startswith("#")])
    return stages


def image_env(target: str) -> dict[str, str]:
    """The variables the ENV instructions (`ENV NAME=value ...`) of the target and of the stages it
    is built on set, as written (a reference such as `$PATH` is not expanded)."""
    found = stages()
    chain = []
    while target in found:  # up to a base image, which is not a stage
        chain.append(target)
        target = found[target][0]
    env = {}
    for stage in reversed(chain):
        instructions = re.sub(r"\\\n", " ", "\n".join(found[stage][1])).splitlines()
        for line in instructions:
            if line.startswith("ENV "):
                env.update(word.split("=", 1) for word in shlex.split(line.removeprefix("ENV ")))
    return env
