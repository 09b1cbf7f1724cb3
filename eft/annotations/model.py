"""The in-memory annotation set: fits, the exemplars they came from, and provenance."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from eft.data.exemplar import Exemplar
from eft.fitting.config import QualityRules
from eft.fitting.records import Fit

from .provenance import Provenance

__all__ = ["SCHEMA_VERSION", "FORMAT_NAME", "Annotation", "AnnotationSet", "MISSABLE"]

#: Version of the eft annotation schema written by this code (``annotations/SCHEMA.md``).
#: Readers refuse files with a larger number.
SCHEMA_VERSION = 1
#: Value of the ``format`` marker in every eft file.
FORMAT_NAME = "eft-annotations"

#: What a lossy file may lack (listed in :attr:`AnnotationSet.missing`).
MISSABLE: dict[str, str] = {
    "quality": "per-fit quality (losses, reprojection, flags, acceptance)",
    "keypoints3d": "the fitted 3D keypoints (all 49)",
    "keypoints3d_openpose": "the fitted 3D keypoints of the 25 OpenPose slots",
    "cam": "the weak-perspective camera",
    "provenance": "how the fits were made",
    "exemplar_meta": "exemplar source, image size and dataset metadata",
}


@dataclass(frozen=True)
class Annotation:
    """One annotated person: the fit and the exemplar it was fitted to.

    The exemplar supplies the 2D keypoints (image px), the image name, the annotation
    id (``meta["annotId"]``) and the dataset (``meta["dataset"]``).
    """

    fit: Fit
    exemplar: Exemplar

    def __post_init__(self) -> None:
        if str(self.fit.exemplar_id) != str(self.exemplar.id):
            raise ValueError(f"fit {self.fit.exemplar_id!r} paired with exemplar "
                             f"{self.exemplar.id!r}")

    @property
    def id(self) -> str:
        return str(self.fit.exemplar_id)


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

    def columns(self):
        """The set as :class:`~eft.annotations.columns.Columns`."""
        from .columns import Columns

        return Columns.from_annotations(self.annotations)

    def filter(self, *, accepted_only: bool = False, rules: QualityRules | None = None,
               max_loss_2d: float | None = None, max_reproj_px: float | None = None,
               max_abs_beta: float | None = None, min_keypoints: int | None = None,
               decisions: Mapping[str, str] | None = None,
               ids=None) -> AnnotationSet:
        """A new set with the annotations that pass; see
        :class:`~eft.annotations.filters.Selection` for the meaning of each argument."""
        from .filters import Selection

        sel = Selection(accepted_only=accepted_only, rules=rules, max_loss_2d=max_loss_2d,
                        max_reproj_px=max_reproj_px, max_abs_beta=max_abs_beta,
                        min_keypoints=min_keypoints, decisions=decisions,
                        ids=None if ids is None else frozenset(ids))
        return sel.apply_set(self)
