"""The Jenkinsfile only calls what this repository has, and keeps its safety rails.

Jenkins does not run here, so the pipeline is read as text: each stage's shell steps must be a
`make` target that `make -n` accepts with the variables the stage passes, or a script of the
repository; parameters, timeouts, the approval and the credentials are checked by shape.
"""

import re
import shlex
import subprocess

import pytest

from tests.fixtures.data import CHECKOUT_DIR

JENKINSFILE = (CHECKOUT_DIR / "Jenkinsfile").read_text()
REQUIRED_PARAMETERS = {"REGISTRY", "NAMESPACE", "SKIP_PROMOTION", "APPLY_DIRECTLY"}
# The only shell step that is neither make nor a script here: the image tag of the checkout.
ALLOWED_OTHER_COMMANDS = {"git rev-parse --short=12 HEAD"}
TAG_EXAMPLE = "0123456789ab"
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


def _pipeline_values() -> dict[str, str]:
    """What a stage's $VARIABLES expand to: parameter defaults, environment, and the tag."""
    values = dict(re.findall(r"name: '(\w+)', defaultValue: '([^']*)'", JENKINSFILE))
    values |= dict(re.findall(r"^\s*(\w+) = '([^']*)'$", JENKINSFILE, re.MULTILINE))
    return values | {"TAG": TAG_EXAMPLE}


def _expand(command: str, values: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        assert match.group(1) in values, f"`{command}` uses ${match.group(1)}, which the pipeline never sets"
        return values[match.group(1)]

    return re.sub(r"\$(\w+)", value, command)


def test_the_pipeline_has_the_expected_stages_in_order():
    assert list(STAGES) == [
        "Checkout",
        "Lint and tests",
        "Build images",
        "Push images",
        "Deploy to staging",
        "Smoke test",
        "Load gate",
        "Approve promotion",
        "Promote to cloud",
    ]


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


def test_every_stage_but_checkout_and_approval_runs_make():
    for stage, body in STAGES.items():
        if stage not in {"Checkout", "Approve promotion"}:
            assert any(command.startswith("make ") for command in _shell_steps(body)), stage


def test_parameters_and_options():
    parameters = set(re.findall(r"(?:string|booleanParam)\(name: '(\w+)'", JENKINSFILE))
    assert parameters >= REQUIRED_PARAMETERS
    assert "disableConcurrentBuilds()" in JENKINSFILE


def test_a_person_approves_before_the_promotion_and_both_can_be_skipped():
    approval, promotion = STAGES["Approve promotion"], STAGES["Promote to cloud"]
    assert re.search(r"\binput message:", approval)
    assert "input" not in promotion
    assert "make promote " in promotion
    for body in (approval, promotion):
        assert "when { expression { !params.SKIP_PROMOTION } }" in body
    assert "params.APPLY_DIRECTLY" in promotion
    assert "make apply OVERLAY=manifests/overlays/cloud" in promotion
    assert "make promote-push" in promotion


def test_credentials_are_referenced_by_id_only():
    ids = re.findall(r"credentialsId: '([\w-]+)'", JENKINSFILE)
    ids += re.findall(r"withRegistry\([^,]+, '([\w-]+)'\)", JENKINSFILE)
    assert set(ids) == {"registry-credentials", "kubeconfig-staging", "kubeconfig-cloud", "git-push"}
    assert not SECRET_PATTERN.search(JENKINSFILE)


def test_the_post_step_archives_reports_and_ends_port_forwards():
    post = _block(JENKINSFILE, JENKINSFILE.rindex("post {") + len("post "))
    assert "archiveArtifacts artifacts: 'reports/**'" in post
    assert "load/smoke.sh --stop" in _shell_steps(post)
