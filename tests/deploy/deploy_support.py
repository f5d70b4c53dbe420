"""What the deploy tests share: the repository's layout, the services that need an image, and
each service's Dockerfile read into its stages, ARGs and ENV (test_compose.py checks them against
compose and the settings, test_image_build.py runs their shared steps).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICES_DIR = REPO / "services"
# Every services/<name> with a `python -m` entry point is a service that needs an image.
SERVICE_DIRS = sorted({p.parents[2].name for p in SERVICES_DIR.glob("*/src/*/__main__.py")})


Instruction = tuple[str, str]


@dataclass(frozen=True)
class Dockerfile:
    """Logical instructions (continuations joined, comments dropped) as (KEYWORD, args)."""

    path: Path
    instructions: tuple[Instruction, ...]

    def stages(self) -> dict[str, tuple[Instruction, ...]]:
        """Each stage's instructions after its FROM, by name; the last one is "final"."""
        starts = [i for i, (kw, _) in enumerate(self.instructions) if kw == "FROM"]
        named: dict[str, tuple[Instruction, ...]] = {}
        for begin, end in zip(starts, [*starts[1:], len(self.instructions)], strict=True):
            _, _, alias = self.instructions[begin][1].partition(" AS ")
            named["final" if end == len(self.instructions) else alias] = self.instructions[begin + 1:end]
        return named

    def args(self, keyword: str, stage: str = "final") -> list[str]:
        return [args for kw, args in self.stages()[stage] if kw == keyword]

    def build_args(self, stage: str) -> dict[str, str]:
        """The ARGs in scope in a stage: its own defaults, else the global ones (Docker's rule)."""
        first_from = next(i for i, (kw, _) in enumerate(self.instructions) if kw == "FROM")
        global_defaults = dict(a.split("=", 1) for kw, a in self.instructions[:first_from]
                               if kw == "ARG" and "=" in a)
        scope: dict[str, str] = {}
        for declared in self.args("ARG", stage):
            name, sep, value = declared.partition("=")
            scope[name] = value if sep else global_defaults.get(name, "")
        return scope

    def env(self) -> dict[str, str]:
        """The final stage's ENV, with its ${ARG}s filled in."""
        build_args = self.build_args("final")
        values: dict[str, str] = {}
        for args in self.args("ENV"):
            for token in shlex.split(args):
                key, sep, value = token.partition("=")
                if sep:
                    values[key] = expand(value, build_args)
        return values


def expand(text: str, build_args: dict[str, str]) -> str:
    # Only build args: $PATH and the like stay as they are, as docker leaves them to the image.
    return re.sub(r"\$\{(\w+)\}", lambda m: build_args.get(m[1], m[0]), text)


@cache
def dockerfile(service: str) -> Dockerfile:
    path = SERVICES_DIR / service / "Dockerfile"
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not pending and not line):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return Dockerfile(path, tuple(instructions))


def pyproject_name(service: str) -> str:
    with (SERVICES_DIR / service / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["name"])
