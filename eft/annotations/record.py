"""One annotation record and the schema constants every format module shares.

The bottom of ``eft.annotations``: it imports nothing else from the package, so that
:mod:`~eft.annotations.columns`, :mod:`~eft.annotations.filters` and the format modules
can import it at module level, and :mod:`~eft.annotations.model` (the set) can import
them.
"""

from __future__ import annotations

from dataclasses import dataclass

from eft.data.exemplar import Exemplar
from eft.fitting.quality import MALFORMED_QUALITY
from eft.fitting.records import Fit

__all__ = ["SCHEMA_VERSION", "FORMAT_NAME", "Annotation", "MISSABLE", "MALFORMED_QUALITY"]

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
