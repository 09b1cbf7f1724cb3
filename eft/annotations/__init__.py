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
from eft._lazy import lazy_exports

_EXPORTS = {
    "Annotation": "model",
    "AnnotationSet": "model",
    "AnnotationError": "errors",
    "Provenance": "provenance",
    "CAMERA_CONVENTION": "provenance",
    "Columns": "columns",
    "FORMATS": "api",
    "FORMAT_NAME": "model",
    "MISSABLE": "model",
    "MALFORMED_QUALITY": "record",
    "SCHEMA_VERSION": "model",
    "SUFFIXES": "api",
    "H5Reader": "h5",
    "H5Writer": "h5",
    "Selection": "filters",
    "ValidationReport": "validate",
    "detect_format": "api",
    "iter_columns": "api",
    "read_annotations": "api",
    "read_columns": "api",
    "read_decisions": "filters",
    "validate_columns": "validate",
    "write_annotations": "api",
    "write_columns": "api",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
