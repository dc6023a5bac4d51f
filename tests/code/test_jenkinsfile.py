"""The Jenkinsfile only calls what this repository has, in an order that works, and keeps its safety rails.

Jenkins does not run here, so the pipeline is parsed: each stage's shell steps must be a `make`
target that `make -n` accepts with the variables the stage passes, or a script of the repository;
every stage has a timeout; each step runs after the steps it needs; nothing reaches the cloud
before a person approves; every parameter is declared and used; no secret is written in it.
"""

import re
import shlex
import subprocess

import pytest

from tests.fixtures.data import CHECKOUT_DIR

JENKINSFILE = (CHECKOUT_DIR / "Jenkinsfile").read_text()
# The only shell step that is neither make nor a script here: the image tag of the checkout.
ALLOWED_OTHER_COMMANDS = {"git rev-parse --short=12 HEAD"}
TAG_EXAMPLE = "0123456789ab"
# What each delivery step needs to have run before it (make targets; "approval" is the input step).
RUNS_AFTER = {
    "images": "test",
    "push": "images",
    "deploy": "push",
    "load-cluster": "deploy",
    "approval": "load-cluster",
    "promote": "approval",
    "promote-push": "promote",
    "apply": "promote",
}
# The approval (Jenkins' input step) or a make call, in the order they appear.
APPROVAL_OR_MAKE = re.compile(r"\binput\s+message:|\bsh\s*\(?\s*'make ([\w-]+)")
# The steps that change the cloud deployment or the branch it is deployed from.
CLOUD_TARGETS = {"promote", "promote-push", "apply"}
# A literal secret, or a password handed to a command line.
SECRET_PATTERN = re.compile(
    r"(password|passwd|secret|token)\s*[:=]\s*['\"]|--password\b|\s-p\s+\S", re.IGNORECASE
)


def _block(text: str, open_brace: int) -> str:
    """The text between the brace at open_brace and its matching closing brace."""
    depth = 0
    for i in range(open_brace, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_brace + 1 : i]
    raise ValueError("unbalanced braces in the Jenkinsfile")


def _stages() -> dict[str, str]:
    return {
        match.group(1): _block(JENKINSFILE, match.end() - 1)
        for match in re.finditer(r"stage\('([^']+)'\)\s*\{", JENKINSFILE)
    }


STAGES = _stages()


def _shell_steps(text: str) -> list[str]:
    return re.findall(r"\bsh\s*\(?\s*(?:script:\s*)?'([^']*)'", text)


def _make_targets(text: str) -> list[str]:
    return [command.split()[1] for command in _shell_steps(text) if command.startswith("make ")]


def _when(body: str) -> str:
    """A stage's `when` condition, '' when it always runs."""
    match = re.search(r"\bwhen\s*\{", body)
    return " ".join(_block(body, match.end() - 1).split()) if match else ""


def _parameters() -> dict[str, str]:
    """Each declared parameter and its default."""
    return dict(
        re.findall(r"(?:string|booleanParam)\(name: '(\w+)', defaultValue: '?([^',]*)'?", JENKINSFILE)
    )


def _pipeline_values() -> dict[str, str]:
    """What a stage's $VARIABLES expand to: parameter defaults, environment, and the tag."""
    values = _parameters()
    values |= dict(re.findall(r"^\s*(\w+) = '([^']*)'$", JENKINSFILE, re.MULTILINE))
    return values | {"TAG": TAG_EXAMPLE}


def _expand(command: str, values: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        assert match.group(1) in values, f"`{command}` uses ${match.group(1)}, which the pipeline never sets"
        return values[match.group(1)]

    return re.sub(r"\$(\w+)", value, command)


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_stage_has_a_timeout(stage):
    assert re.search(r"options\s*\{[^}]*timeout\(time: \d+, unit: '(MINUTES|HOURS)'\)", STAGES[stage]), stage


SHELL_STEPS = [command for body in [*STAGES.values(), JENKINSFILE] for command in _shell_steps(body)]


@pytest.mark.parametrize("command", sorted(set(SHELL_STEPS)))
def test_every_shell_step_is_a_make_target_or_a_script_of_the_repository(command):
    words = shlex.split(_expand(command, _pipeline_values()))
    if words[0] == "make":
        result = subprocess.run(["make", "-n", *words[1:]], cwd=CHECKOUT_DIR, capture_output=True, text=True)
        assert result.returncode == 0, f"`{command}`: {result.stderr}"
    elif "/" in words[0]:
        script = CHECKOUT_DIR / words[0]
        assert script.is_file(), f"`{command}`: no script {words[0]}"
        assert script.stat().st_mode & 0o111, f"{words[0]} is not executable"
    else:
        assert command in ALLOWED_OTHER_COMMANDS, f"`{command}` is neither make nor a script here"


def test_each_step_runs_after_the_steps_it_needs():
    steps = [
        "approval" if match.group(1) is None else match.group(1)
        for body in STAGES.values()
        for match in re.finditer(APPROVAL_OR_MAKE, body)
    ]
    assert set(RUNS_AFTER) | set(RUNS_AFTER.values()) <= set(steps), "a delivery step is missing"
    for step, needed in RUNS_AFTER.items():
        assert steps.index(needed) < steps.index(step), f"{step} runs before {needed}"


def test_nothing_reaches_the_cloud_before_an_approval_and_skipping_it_skips_them():
    (approval,) = [name for name, body in STAGES.items() if re.search(r"\binput\s+message:", body)]
    condition = _when(STAGES[approval])
    assert condition, "the approval cannot be skipped"
    names = list(STAGES)
    for name, body in STAGES.items():
        if CLOUD_TARGETS & set(_make_targets(body)):
            assert names.index(name) > names.index(approval), f"{name} runs before the approval"
            assert _when(body) == condition, f"{name} runs when the approval is skipped"


def test_every_parameter_is_declared_and_used():
    declared = set(_parameters())
    referenced = set(re.findall(r"\bparams\.(\w+)", JENKINSFILE))
    expanded = {name for command in SHELL_STEPS for name in re.findall(r"\$(\w+)", command)}
    assert referenced <= declared, f"undeclared: {referenced - declared}"
    assert declared <= referenced | expanded, f"never used: {declared - referenced - expanded}"


def test_no_secret_is_written_in_the_pipeline():
    assert not SECRET_PATTERN.search(JENKINSFILE)
