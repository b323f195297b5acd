"""The one contract every report format implements, so ``write_reports`` can treat them alike."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from modelshield.assess.examples import ExampleGrid
from modelshield.assess.results import AssessmentResult


class Renderer(ABC):
    """Turns an :class:`AssessmentResult` into the text of one report file."""

    #: short format name, used on the command line and as the key of ``write_reports``' answer
    name: ClassVar[str]
    #: file the report is written to inside the output folder
    filename: ClassVar[str]

    @abstractmethod
    def render(self, result: AssessmentResult, examples: ExampleGrid | None = None) -> str:
        """Return the whole report; formats that cannot show images ignore ``examples``."""
