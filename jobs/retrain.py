"""Retrain with a quality gate: what the initial training Job and the weekly CronJob run.

The entrypoint that publishes models: model.train is the library it calls, with no gate of its own.
Every version it publishes is signed (model.signing) with the key at GENDER_SIGNING_KEY_FILE,
which must be among the trusted keys: nothing is trained that no reader would load.
Exit codes (model.exit_codes): OK when promoted or kept (the gate's decision is in the log and in
MLflow), WRITER_BUSY, USAGE for bad settings or a missing signing key, BAD_INPUT for refused data,
TRACKING.
"""

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from jobs import entry, pushgateway, tracking
from jobs.gate import decide
from jobs.settings import RetrainSettings
from model import artifact, signing
from model.train import save_pictures, summary_table, train

log = logging.getLogger("jobs.retrain")
PUSH_JOB = "gender-retrain"  # the Pushgateway's grouping key: the CronJob's name
# The gate's recent history, beside the models it decided on; written under the writer lock.
GATE_HISTORY = "gate.json"


def refusals_in_a_row(model_dir: Path, promoted: bool) -> int:
    """Record this decision; returns how many refusals have followed the last promotion."""
    path = model_dir / GATE_HISTORY
    try:
        before = int(json.loads(path.read_text())["refusals_in_a_row"])
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or unreadable: start again
        before = 0
    now = 0 if promoted else before + 1
    temporary = path.with_name(f"{artifact.TEMP_PREFIX}{GATE_HISTORY}")
    temporary.write_text(json.dumps({"refusals_in_a_row": now}))
    os.replace(temporary, path)
    return now


def champion_metadata(model_dir: Path, trusted: signing.TrustedKeys) -> dict | None:
    """model.json of the served model; None when there is none, or readers would refuse it (unsigned
    or untrusted, corrupt, of an older format): a candidate then replaces it if it passes the floor."""
    try:
        version = artifact.current_version(model_dir)
        if version is None:
            return None
        metadata, _, _ = artifact.verify_version_dir(model_dir / artifact.VERSIONS / version, trusted)
        return metadata
    except artifact.ArtifactError as error:
        log.warning("there is no champion to beat: %s", error)
        return None


def retrain(settings: RetrainSettings) -> dict:
    """Train, gate and maybe publish; returns the decision record that is also logged."""
    key = signing.signing_key(
        settings.signing_key_file, settings.trusted_keys_dir, settings.signing_key_create
    )
    trusted = signing.read_trusted_keys(settings.trusted_keys_dir)
    signing.check_trusted(key, trusted, settings.trusted_keys_dir)
    if settings.skip_if_published and (served := champion_metadata(settings.model_dir, trusted)) is not None:
        record = {"event": "gate", "decision": "skipped", "reason": "a model is published already"}
        record["served_version"] = served["version"]
        log.info("%s", json.dumps(record))
        return record
    with pushgateway.reporting(settings.pushgateway_url, PUSH_JOB) as report:
        tracker = tracking.tracker(settings.tracking_wait_s)
        paths = settings.input_paths()
        log.info("training on %s", {name: str(path) for name, path in paths.items() if path})
        with artifact.writer_lock(settings.model_dir), tempfile.TemporaryDirectory() as scratch:
            result = train(paths)
            log.info("candidates:\n%s", summary_table(result))
            pictures = save_pictures(result, Path(scratch))
            with tracker.training_run(result, pictures) as run_id:
                champion = champion_metadata(settings.model_dir, trusted)
                decision = decide(result.metadata, champion, settings.gate_tolerance, settings.gate_floor)
                staged = artifact.stage(
                    result.predictor,
                    {**result.metadata, "mlflow_run_id": run_id},
                    settings.model_dir,
                    key,
                    tuple(pictures),
                )
                published = False
                try:
                    registry_version = tracker.log_and_register(staged)
                    tracker.record_decision(decision.promote, decision.reason, decision.champion_accuracy)
                    if decision.promote:
                        # The registry's champion moves first and the served model last: a tracking
                        # failure then leaves both where they were, and the publish is a local rename.
                        tracker.move_champion(registry_version)
                        artifact.commit(staged, settings.keep_versions)
                        published = True
                finally:
                    if not published:
                        artifact.discard(staged)
            refused = refusals_in_a_row(settings.model_dir, decision.promote)
        report.set("rows", result.metadata["data"]["labelled_users"])
        report.set("gate_promoted", float(decision.promote))
        report.set("gate_refusals_in_a_row", refused)
        report.set("grouped_accuracy", decision.candidate_accuracy)
    record = {
        "event": "gate",
        "decision": "promoted" if decision.promote else "refused",
        "reason": decision.reason,
        "candidate_version": staged.version,
        "served_version": artifact.current_version(settings.model_dir),
        "candidate_grouped_accuracy": decision.candidate_accuracy,
        "champion_grouped_accuracy": decision.champion_accuracy,
        "mlflow_run_id": run_id,
        "registry_version": registry_version,
        "refusals_in_a_row": refused,
    }
    log.info("%s", json.dumps(record))
    return record


def main() -> int:
    return entry.run("jobs.retrain", RetrainSettings, retrain)


if __name__ == "__main__":
    sys.exit(main())
