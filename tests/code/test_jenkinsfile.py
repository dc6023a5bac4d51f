"""The Jenkinsfile only calls what this repository has, in an order that works, and keeps its safety rails.

Jenkins does not run here, so the pipeline is parsed (tests/support/jenkinsfile.py) into its nested
stages: each shell step must be a `make` target that `make -n` accepts with the variables the stage
passes, or a script of the repository; every stage that runs steps has a timeout; each step runs
after the steps it needs; nothing reaches the cloud before a person approves, and nothing is applied
to it at all (the GitOps controller applies the promotion commit); the approval holds no agent and
milestones keep concurrent builds in order; only main pushes, deploys or promotes; the pipeline's
own promotion commit ends its build at once; every parameter is declared and used; no secret is
written in it. The two make targets behind the promotion, promote-push and own-commit, run here
against real git repositories.
"""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.data import CHECKOUT_DIR
from tests.support.jenkinsfile import Stage, make_target, parse, shell_commands, stages

JENKINSFILE = (CHECKOUT_DIR / "Jenkinsfile").read_text()
PIPELINE = parse(JENKINSFILE).child("pipeline")
STAGES = stages(PIPELINE)
# The only shell step that is neither make nor a script here: the image tag of the checkout.
ALLOWED_OTHER_COMMANDS = {"git rev-parse --short=12 HEAD"}
# What the variables that the pipeline sets itself (env.NAME = ...) expand to in `make -n`.
SET_BY_THE_PIPELINE = {"TAG": "0123456789ab", "PREVIOUS_COMMIT": ""}
# What each delivery step needs to have run before it (make targets; "approval" is the input step).
RUNS_AFTER = {
    "test": "own-commit",
    "images": "test",
    "push": "images",
    "deploy": "push",
    "load-cluster": "deploy",
    "approval": "load-cluster",
    "promote": "approval",
    "promote-push": "promote",
}
# The steps that write the cloud overlay or the branch it is deployed from.
CLOUD_TARGETS = {"promote", "promote-push"}
# The steps that only main may run: they publish images or change an environment.
MAIN_ONLY_TARGETS = {"push", "deploy", "load-cluster", *CLOUD_TARGETS}
# The steps that every branch and pull request runs.
EVERY_BRANCH_TARGETS = {"test", "images"}
# The steps that change an environment that builds share: each runs under a lock.
SHARED_ENVIRONMENT_TARGETS = {"deploy", "load-cluster", "promote-push"}
MAIN_ONLY = "branch 'main'"
INPUT = re.compile(r"^input\b")
MILESTONE = re.compile(r"^milestone\(ordinal: (\d+)\b")
LOCK = re.compile(r"^lock\(resource: '[\w.-]+', inversePrecedence: true\)$")
# A literal secret, or a password handed to a command line.
SECRET_PATTERN = re.compile(
    r"(password|passwd|secret|token)\s*[:=]\s*['\"]|--password\b|\s-p\s+\S", re.IGNORECASE
)


def _targets(stage: Stage) -> set[str]:
    return {target for command in shell_commands(stage.steps) if (target := make_target(command))}


def _approval() -> Stage:
    (approval,) = [stage for stage in STAGES if any(INPUT.match(step) for step in stage.steps)]
    return approval


def _steps_in_order() -> list[str]:
    """The make targets and the approval, in the order the pipeline runs them."""
    steps = []
    for stage in STAGES:
        for step in stage.steps:
            if INPUT.match(step):
                steps.append("approval")
            steps.extend(target for command in shell_commands([step]) if (target := make_target(command)))
    return steps


def _parameters() -> dict[str, str]:
    """Each declared parameter and its default."""
    return dict(
        re.findall(r"(?:string|booleanParam)\(name: '(\w+)', defaultValue: '?([^',]*)'?", JENKINSFILE)
    )


def _pipeline_values() -> dict[str, str]:
    """What a stage's $VARIABLES expand to: parameter defaults, environment, what the pipeline sets."""
    environment = PIPELINE.child("environment")
    values = _parameters() | dict(
        re.findall(r"^(\w+) = '([^']*)'$", "\n".join(environment.statements()), re.M)
    )
    return values | SET_BY_THE_PIPELINE


def _expand(command: str, values: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        assert match.group(1) in values, f"`{command}` uses ${match.group(1)}, which the pipeline never sets"
        return values[match.group(1)]

    return re.sub(r"\$(\w+)", value, command)


SHELL_STEPS = sorted({command for stage in STAGES for command in shell_commands([*stage.steps, *stage.post])})


@pytest.mark.parametrize("stage", [stage for stage in STAGES if stage.steps], ids=lambda stage: stage.name)
def test_every_stage_that_runs_steps_has_a_timeout(stage):
    assert any(re.fullmatch(r"timeout\(time: \d+, unit: '(MINUTES|HOURS)'\)", o) for o in stage.options)


@pytest.mark.parametrize("command", SHELL_STEPS)
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
    steps = _steps_in_order()
    assert set(RUNS_AFTER) | set(RUNS_AFTER.values()) <= set(steps), "a delivery step is missing"
    for step, needed in RUNS_AFTER.items():
        assert steps.index(needed) < steps.index(step), f"{step} runs before {needed}"


def test_nothing_reaches_the_cloud_before_an_approval_and_skipping_it_skips_them():
    approval = _approval()
    assert approval.condition(), "the approval cannot be skipped"
    for stage in STAGES:
        if CLOUD_TARGETS & _targets(stage):
            assert STAGES.index(stage) > STAGES.index(approval), f"{stage.name} runs before the approval"
            assert stage.conditions() == approval.conditions(), (
                f"{stage.name} runs when the approval is skipped"
            )


def test_after_the_approval_only_a_commit_changes_the_cloud():
    """No direct apply: the cluster follows git, so what runs after the approval only writes a commit."""
    steps = _steps_in_order()
    assert set(steps[steps.index("approval") + 1 :]) == CLOUD_TARGETS
    assert not [command for command in SHELL_STEPS if "kubectl" in command]


def test_no_agent_is_held_by_the_approval():
    """`agent none` at the top; the input step's stage and the stages around it take no agent; every
    stage that runs a shell step has one (its own or one around it)."""
    assert "agent none" in PIPELINE.items
    assert not [stage.name for stage in _approval().lineage if stage.has_agent]
    for stage in STAGES:
        if shell_commands([*stage.steps, *stage.post]):
            assert any(outer.has_agent for outer in stage.lineage), (
                f"{stage.name} runs a shell step on no agent"
            )


def test_milestones_around_the_approval_keep_the_builds_in_order():
    """A milestone right before and right after the input step: once a newer build is approved, an
    older one still waiting is aborted. Ordinals rise through the pipeline, as Jenkins requires."""
    steps = _approval().steps
    position = next(i for i, step in enumerate(steps) if INPUT.match(step))
    assert 0 < position < len(steps) - 1, "the input step is the first or the last step of its stage"
    assert MILESTONE.match(steps[position - 1]), "no milestone right before the approval"
    assert MILESTONE.match(steps[position + 1]), "no milestone right after the approval"
    ordinals = [
        int(match.group(1)) for stage in STAGES for step in stage.steps if (match := MILESTONE.match(step))
    ]
    assert ordinals == sorted(set(ordinals)), f"milestone ordinals out of order: {ordinals}"


@pytest.mark.parametrize("target", sorted(SHARED_ENVIRONMENT_TARGETS))
def test_shared_environments_are_changed_under_a_lock_entered_by_a_milestone(target):
    """Staging and the promotion hold one build at a time, the newest waiting one first; the first
    step under the lock is a milestone, which aborts the older builds still waiting for it."""
    (stage,) = [stage for stage in STAGES if target in _targets(stage)]
    holders = [outer for outer in stage.lineage if any(LOCK.match(option) for option in outer.options)]
    assert holders, f"{stage.name} runs `make {target}` under no lock (with inversePrecedence)"
    under_lock = [step for inner in STAGES if holders[-1] in inner.lineage for step in inner.steps]
    assert MILESTONE.match(under_lock[0]), f"the first step under {holders[-1].name}'s lock is no milestone"


def test_only_main_pushes_deploys_or_promotes_and_every_branch_tests_and_builds():
    for stage in STAGES:
        main_only = MAIN_ONLY in " ".join(stage.conditions())
        if MAIN_ONLY_TARGETS & _targets(stage) or any(INPUT.match(step) for step in stage.steps):
            assert main_only, f"{stage.name} runs on every branch"
        if EVERY_BRANCH_TARGETS & _targets(stage):
            assert not main_only, f"{stage.name} runs only on main"


@pytest.mark.parametrize("stage", [stage for stage in STAGES if stage.when], ids=lambda stage: stage.name)
def test_a_skipped_stage_takes_no_agent_and_no_lock(stage):
    """`when` is evaluated after the options and the agent unless told otherwise: a branch build
    would wait for the staging lock or an executor only to skip the stage."""
    flags = {item for item in stage.when.items if isinstance(item, str)}
    if any(LOCK.match(option) for option in stage.options):
        assert "beforeOptions true" in flags, f"{stage.name} takes its lock before its condition"
    elif stage.has_agent:
        assert {"beforeAgent true", "beforeOptions true"} & flags, f"{stage.name} takes an agent first"


def test_the_pipelines_own_commit_ends_the_build_before_any_other_stage():
    """The first stage checks the commit out, asks `make own-commit`, and marks the build NOT_BUILT;
    every other stage is skipped on the variable it sets."""
    first, *others = STAGES
    steps = first.steps
    checkout = next(i for i, step in enumerate(steps) if re.search(r"\bcheckout scm\b", step))
    (asked,) = [i for i, step in enumerate(steps) if "own-commit" in step]
    assert checkout < asked
    variable = re.match(r"env\.(\w+) = sh\(script: '[^']*', returnStatus: true\) == 0$", steps[asked])
    assert variable, f"the answer of own-commit is not kept in an env variable: {steps[asked]}"
    assert "currentBuild.result = 'NOT_BUILT'" in steps
    for stage in others:
        conditions = " ".join(stage.conditions())
        assert f"env.{variable.group(1)}" in conditions, f"{stage.name} runs for the pipeline's own commit"


def test_every_parameter_is_declared_and_used():
    declared = set(_parameters())
    referenced = set(re.findall(r"\bparams\.(\w+)", JENKINSFILE))
    expanded = {name for command in SHELL_STEPS for name in re.findall(r"\$(\w+)", command)}
    assert referenced <= declared, f"undeclared: {referenced - declared}"
    assert declared <= referenced | expanded, f"never used: {declared - referenced - expanded}"


def test_no_secret_is_written_in_the_pipeline():
    assert not SECRET_PATTERN.search(JENKINSFILE)


# --- promote-push and own-commit, against real repositories ------------------------------------
OVERLAY_FILE = Path("manifests/overlays/cloud/kustomization.yaml")
PERSON = ["-c", "user.name=A Person", "-c", "user.email=person@example.invalid"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def make(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """A target of this checkout's Makefile, run inside repo."""
    return subprocess.run(
        ["make", "-s", "-f", str(CHECKOUT_DIR / "Makefile"), "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def person_commits(repo: Path, path: str, text: str, subject: str = "A person's change") -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "add", path)
    git(repo, *PERSON, "commit", "-q", "-m", subject)


def promote(repo: Path, tag: str) -> None:
    """What `make promote` does to the checkout: a new tag in the cloud overlay, not committed."""
    (repo / OVERLAY_FILE).parent.mkdir(parents=True, exist_ok=True)
    (repo / OVERLAY_FILE).write_text(f"images:\n  - name: gender-api\n    newTag: {tag}\n")


@pytest.fixture
def origin(tmp_path) -> Path:
    """A bare repository whose main holds a cloud overlay, as the pipeline's remote."""
    seed = tmp_path / "seed"
    subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True)
    promote(seed, "old")
    git(seed, "add", ".")
    git(seed, *PERSON, "commit", "-q", "-m", "The stack")
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(bare)], check=True)
    return bare


def clone(origin: Path, path: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(origin), str(path)], check=True)
    return path


def main_log(origin: Path) -> list[tuple[str, str]]:
    """(author email, subject) of main's commits, newest first."""
    return [tuple(line.split(" ", 1)) for line in git(origin, "log", "--format=%ae %s", "main").splitlines()]


def pipeline_email() -> str:
    return make(CHECKOUT_DIR, "--eval=print-email: ; @echo $(GIT_USER_EMAIL)", "print-email").stdout.strip()


def test_promote_push_commits_as_the_pipeline_and_pushes(origin, tmp_path):
    ci = clone(origin, tmp_path / "ci")
    promote(ci, "abc")
    result = make(ci, "promote-push", "TAG=abc")
    assert result.returncode == 0, result.stderr
    assert main_log(origin)[0] == (pipeline_email(), "Promote abc to the cloud overlay")


def test_promote_push_rebases_onto_a_main_that_moved(origin, tmp_path):
    ci = clone(origin, tmp_path / "ci")
    person = clone(origin, tmp_path / "person")
    person_commits(person, "README.md", "news\n")
    git(person, "push", "-q", "origin", "HEAD:main")
    promote(ci, "abc")
    result = make(ci, "promote-push", "TAG=abc")
    assert result.returncode == 0, result.stderr
    subjects = [subject for _, subject in main_log(origin)]
    assert subjects == ["Promote abc to the cloud overlay", "A person's change", "The stack"]


def test_promote_push_gives_up_on_a_main_that_keeps_moving(origin, tmp_path):
    """Each push finds main moved again (a pre-push hook moves it): a bounded number of pushes,
    rebased in between, then a failure that says so; main keeps everyone else's commits."""
    ci = clone(origin, tmp_path / "ci")
    hook = ci / ".git" / "hooks" / "pre-push"
    hook.write_text(
        "#!/bin/sh\n"
        f"echo push >> '{tmp_path / 'pushes'}'\n"
        f"commit=$(git --git-dir='{origin}' {shlex.join(PERSON)} commit-tree main^{{tree}} -p main -m moved)"
        f" && git --git-dir='{origin}' update-ref refs/heads/main $commit\n"
    )
    hook.chmod(0o755)
    promote(ci, "abc")
    result = make(ci, "promote-push", "TAG=abc", "PROMOTE_ATTEMPTS=3")
    assert result.returncode != 0
    assert "main moved at each of 3 pushes: not pushed" in result.stderr
    assert (tmp_path / "pushes").read_text().count("push") == 3
    assert [subject for _, subject in main_log(origin)] == ["moved"] * 3 + ["The stack"]


def test_promote_push_fails_at_once_when_refused_for_another_reason(origin, tmp_path):
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    ci = clone(origin, tmp_path / "ci")
    promote(ci, "abc")
    result = make(ci, "promote-push", "TAG=abc")
    assert result.returncode != 0
    assert "the push was refused, and not because main moved" in result.stderr
    assert result.stderr.count("main is protected") == 1


def test_promote_push_stops_on_a_conflicting_main(origin, tmp_path):
    ci = clone(origin, tmp_path / "ci")
    person = clone(origin, tmp_path / "person")
    person_commits(person, str(OVERLAY_FILE), "images: []\n")
    git(person, "push", "-q", "origin", "HEAD:main")
    promote(ci, "abc")
    result = make(ci, "promote-push", "TAG=abc")
    assert result.returncode != 0
    assert "the promotion conflicts with the new main: not pushed" in result.stderr
    assert git(ci, "status", "--porcelain") == "", "the rebase was left half done"
    assert main_log(origin)[0][1] == "A person's change"


@pytest.fixture
def history(origin, tmp_path) -> Path:
    """A clone with: the stack, two promotions by the pipeline, a person's commit, one more promotion."""
    ci = clone(origin, tmp_path / "ci")
    for tag in ("one", "two"):
        promote(ci, tag)
        assert make(ci, "promote-push", f"TAG={tag}").returncode == 0
    person_commits(ci, "README.md", "news\n")
    promote(ci, "three")
    assert make(ci, "promote-push", "TAG=three").returncode == 0
    return ci


@pytest.mark.parametrize(
    ("since", "own"),
    [
        ("", True),  # HEAD alone: the pipeline's promotion
        ("HEAD~1", True),  # only the promotion is new
        ("HEAD~2", False),  # a person's commit is new too
        ("HEAD", False),  # nothing new: a rebuild runs in full
        ("0" * 40, False),  # a previous commit this clone does not have
    ],
)
def test_own_commit_recognises_only_the_pipelines_promotions(history, since, own):
    assert (make(history, "own-commit", f"SINCE={since}").returncode == 0) is own


def test_own_commit_is_not_fooled_by_a_person_using_the_pipelines_subject(origin, tmp_path):
    repo = clone(origin, tmp_path / "person")
    person_commits(repo, "README.md", "news\n", subject="Promote abc to the cloud overlay")
    assert make(repo, "own-commit").returncode != 0
