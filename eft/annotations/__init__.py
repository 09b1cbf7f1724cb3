"""eft.annotations: annotation sets (fits + exemplars + provenance) and their files.

* :class:`AnnotationSet` of :class:`Annotation` (a :class:`~eft.fitting.Fit` and its
  :class:`~eft.data.exemplar.Exemplar`), with :class:`Provenance`.
* :func:`write_annotations` / :func:`read_annotations` in any of :data:`FORMATS`:
  ``eft-json`` (EFT's released layout), ``spin-npz`` (SPIN training files), ``h5``
  (chunked, compressed, streaming: :class:`H5Writer`; recommended for large sets) and
  ``humandata`` (mmhuman3d).  Writes are atomic; readers refuse newer schema versions
  and turn damaged files into one :class:`AnnotationError` line.
* :func:`validate_columns` / :func:`summarize`: what ``eft validate`` / ``eft inspect``
  print.

The fields of every format: ``annotations/SCHEMA.md``.
"""

from .api import (
    FORMATS,
    SUFFIXES,
    detect_format,
    iter_columns,
    read_annotations,
    read_columns,
    write_annotations,
    write_columns,
)
from .columns import Columns
from .errors import AnnotationError
from .filters import Selection, read_decisions
from .h5 import H5Reader, H5Writer
from .model import FORMAT_NAME, MISSABLE, SCHEMA_VERSION, Annotation, AnnotationSet
from .provenance import CAMERA_CONVENTION, Provenance
from .validate import ValidationReport, validate_columns

__all__ = [
    "Annotation",
    "AnnotationSet",
    "AnnotationError",
    "Provenance",
    "CAMERA_CONVENTION",
    "Columns",
    "FORMATS",
    "FORMAT_NAME",
    "MISSABLE",
    "SCHEMA_VERSION",
    "SUFFIXES",
    "H5Reader",
    "H5Writer",
    "Selection",
    "ValidationReport",
    "detect_format",
    "iter_columns",
    "read_annotations",
    "read_columns",
    "read_decisions",
    "validate_columns",
    "write_annotations",
    "write_columns",
]
