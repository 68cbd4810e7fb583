"""A Griffe extension for the API reference: read Loom's ``Example:`` docstring sections as examples.

Loom's docstrings follow the Google style with a singular ``Example:`` heading (see shared/STYLE.md).
Griffe's Google parser knows only ``Examples:`` and renders any other heading as an admonition, which
turns ``>>>`` lines into nested block quotes. This extension renames the heading before parsing, so the
examples render as code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rewrites ``Example:`` section headings to ``Examples:`` in every loaded docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
