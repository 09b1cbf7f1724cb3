"""The in-memory annotation set: fits, the exemplars they came from, and provenance."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

from eft.data.exemplar import Exemplar
from eft.fitting.records import Fit

from .columns import Columns
from .filters import Selection
from .provenance import Provenance
from .record import FORMAT_NAME, MISSABLE, SCHEMA_VERSION, Annotation

__all__ = ["SCHEMA_VERSION", "FORMAT_NAME", "Annotation", "AnnotationSet", "MISSABLE"]

@dataclass
class AnnotationSet:
    """Fits with their exemplars and how they were made.

    Attributes:
        annotations: the annotations, in file order.
        provenance: :class:`Provenance`.
        missing: what the file this set was read from could not hold (keys of
            :data:`MISSABLE`); those fields hold reconstructions or NaN.
        source_format: the format it was read from, or None.
    """

    annotations: list[Annotation]
    provenance: Provenance
    missing: frozenset[str] = field(default_factory=frozenset)
    source_format: str | None = None

    @classmethod
    def from_fits(cls, fits, exemplars, provenance: Provenance) -> AnnotationSet:
        """Pair fits with their exemplars by id (every fit needs its exemplar)."""
        by_id = {str(e.id): e for e in exemplars}
        try:
            anns = [Annotation(fit=f, exemplar=by_id[str(f.exemplar_id)]) for f in fits]
        except KeyError as exc:
            raise ValueError(f"no exemplar for fit {exc.args[0]!r}") from None
        return cls(anns, provenance)

    def __len__(self) -> int:
        return len(self.annotations)

    def __iter__(self) -> Iterator[Annotation]:
        return iter(self.annotations)

    def __getitem__(self, index: int) -> Annotation:
        return self.annotations[index]

    @property
    def fits(self) -> list[Fit]:
        return [a.fit for a in self.annotations]

    @property
    def exemplars(self) -> list[Exemplar]:
        return [a.exemplar for a in self.annotations]

    @property
    def ids(self) -> list[str]:
        return [a.id for a in self.annotations]

    def by_id(self, fit_id: str) -> Annotation:
        """The annotation with this fit/exemplar id (KeyError if none)."""
        for a in self.annotations:
            if a.id == fit_id:
                return a
        raise KeyError(fit_id)

    def columns(self) -> Columns:
        """The set as :class:`~eft.annotations.columns.Columns`."""
        return Columns.from_annotations(self.annotations)

    def filter(self, selection: Selection | None = None, /, **criteria) -> AnnotationSet:
        """A new set with the annotations that ``selection`` keeps.

        ``criteria`` (keywords of :class:`~eft.annotations.filters.Selection`, e.g.
        ``accepted_only=True``) build the selection when none is given, or replace those
        fields of the given one."""
        if "ids" in criteria and criteria["ids"] is not None:
            criteria["ids"] = frozenset(criteria["ids"])
        if selection is None:
            selection = Selection(**criteria)
        elif criteria:
            selection = dataclasses.replace(selection, **criteria)
        return selection.apply_set(self)
