"""The one exception the evaluators raise for bad input.

Every message names the file (or "results"/"ground truth" for in-memory input) and the field at
fault, so the scoring CLI can print it as a single line instead of a traceback.
"""

from __future__ import annotations


class EvalInputError(ValueError):
    """Input the evaluator cannot score: ``<source>: <field>: <problem>``."""

    def __init__(self, source: str, field: str | None, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}")
