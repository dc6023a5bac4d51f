"""The requirements files exported from uv.lock (requirements/<group>.txt), read back."""

import re
from dataclasses import dataclass
from pathlib import Path

REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)\s*(?:;([^\\]*))?\\?$")
HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


def canonical(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Pin:
    name: str  # canonical
    version: str
    marker: str  # '' when it applies everywhere
    hashes: frozenset[str]

    @property
    def key(self) -> str:
        """A package may have one pin per environment marker (Python release range)."""
        return f"{self.name} ; {self.marker}" if self.marker else self.name


def read_pins(path: Path) -> list[Pin]:
    found: list[tuple[str, str, str, set[str]]] = []
    for line in path.read_text().splitlines():
        if match := REQUIREMENT.match(line):
            name, version, marker = match.groups()
            found.append((canonical(name), version, (marker or "").strip(), set()))
        elif found and line.startswith(" ") and (digest := HASH.search(line)):
            found[-1][3].add(digest.group(1))
    return [Pin(name, version, marker, frozenset(hashes)) for name, version, marker, hashes in found]
