"""``python build.py train-defaults``: train the models the package embeds, one builder per default.

A builder renders its own synthetic data, trains, measures and writes its checkpoint with a model card
into ``backend/default_models/<name>``. Adding a default is one more entry in ``DEFAULT_BUILDERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backend.default_models import DEFAULT_MODELS

from .deferred_default import build_deferred_default
from .eg3d_default import build_eg3d_default


@dataclass(frozen=True)
class DefaultBuilder:
    name: str
    """The folder under backend/default_models/ it writes."""
    build: Callable[..., dict]
    """(work folder, output folder, quick=, progress=, minutes=) -> its training report; ``minutes`` stops its
    training early (resumable) and writes what it reached."""


DEFAULT_BUILDERS: tuple[DefaultBuilder, ...] = (
    DefaultBuilder("eg3d", build_eg3d_default),
    DefaultBuilder("deferred", build_deferred_default),
)


def build_defaults(work: Path, names: list[str] | None = None, out_root: Path = DEFAULT_MODELS, quick: bool = False,
                   minutes: float | None = None, progress: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Run the named builders (all by default), each in ``work/<name>`` (re-running resumes training there)."""
    known = {builder.name: builder for builder in DEFAULT_BUILDERS}
    unknown = sorted(set(names or []) - set(known))
    if unknown:
        from backend.errors import InvalidInput

        raise InvalidInput(f"unknown default model {', '.join(unknown)}", f"pick from: {', '.join(known)}", field="only")
    reports = {}
    for name in names or list(known):
        say = (lambda message, name=name: progress(f"{name}: {message}")) if progress else None
        reports[name] = known[name].build(work / name, out_root / name, quick=quick, progress=say, minutes=minutes)
    return reports
