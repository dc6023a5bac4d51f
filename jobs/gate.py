"""The quality gate: may a newly trained model replace the champion?"""

from dataclasses import dataclass

from model.evaluate import SELECTION_PROTOCOL


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    candidate_accuracy: float
    champion_accuracy: float | None


def grouped_accuracy(metadata: dict) -> float:
    return float(metadata["metrics"][SELECTION_PROTOCOL]["accuracy"])


def decide(candidate: dict, champion: dict | None, tolerance: float, floor: float) -> Decision:
    """Promote when above the absolute floor and not worse than the champion by more than `tolerance`.

    Both sides are compared on the selection protocol (grouped by first name), the one that
    measures accuracy on unseen names.
    """
    accuracy = grouped_accuracy(candidate)
    best = grouped_accuracy(champion) if champion else None
    if accuracy < floor:
        return Decision(
            False,
            f"{SELECTION_PROTOCOL} accuracy {accuracy:.4f} is below the floor {floor:.4f}",
            accuracy,
            best,
        )
    if best is not None and accuracy < best - tolerance:
        return Decision(
            False,
            f"{SELECTION_PROTOCOL} accuracy {accuracy:.4f} is worse than the champion's {best:.4f} "
            f"by more than the tolerance {tolerance:.4f}",
            accuracy,
            best,
        )
    if best is None:
        return Decision(
            True,
            f"first model: {SELECTION_PROTOCOL} accuracy {accuracy:.4f} clears the floor",
            accuracy,
            None,
        )
    return Decision(
        True,
        f"{SELECTION_PROTOCOL} accuracy {accuracy:.4f} vs champion {best:.4f} is within tolerance",
        accuracy,
        best,
    )
