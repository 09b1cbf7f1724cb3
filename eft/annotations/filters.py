"""Choosing annotations: acceptance, quality thresholds, review decisions, ids."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from eft.fitting.config import QualityRules
from eft.fitting.quality import apply_rules
from eft.fitting.records import FitQuality

from .columns import Columns
from .decisions import ACCEPT_DECISIONS, REJECT_DECISIONS, load_bound_decisions
from .errors import AnnotationError
from .record import Annotation

__all__ = ["Selection", "QualityCriteria", "ACCEPT_DECISIONS", "REJECT_DECISIONS", "read_decisions"]



@dataclass(frozen=True)
class QualityCriteria:
    """The acceptance and quality thresholds of a :class:`Selection` (a base for any
    record that carries them, e.g. a training dataset's settings).  Unset criteria do
    not filter.

    Attributes:
        accepted_only: keep fits whose (possibly re-judged) quality is accepted.
        max_loss_2d: keep ``loss_2d_final <= max_loss_2d``.
        max_reproj_px: keep ``reproj_px <= max_reproj_px`` (NaN fails).
        max_abs_beta: keep ``max_abs_beta <= max_abs_beta``.
        min_keypoints: keep ``n_valid_keypoints >= min_keypoints``.
    """

    accepted_only: bool = False
    max_loss_2d: float | None = None
    max_reproj_px: float | None = None
    max_abs_beta: float | None = None
    min_keypoints: int | None = None

    def criteria(self) -> dict:
        """The criteria that are set (field name -> value), for provenance records."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(QualityCriteria)
                if getattr(self, f.name) not in (None, False)}


@dataclass(frozen=True)
class Selection(QualityCriteria):
    """Which annotations to keep: the :class:`QualityCriteria`, and

    Attributes:
        rules: re-judge every fit's quality under these rules first
            (:func:`eft.fitting.quality.apply_rules`); the written quality changes too.
        decisions: review decisions, fit id -> decision: one of
            :data:`ACCEPT_DECISIONS` keeps the fit (overriding the automatic verdict and
            thresholds), one of :data:`REJECT_DECISIONS` drops it; any other value or no
            entry leaves the automatic criteria in charge.
        ids: keep only these fit ids.
    """

    rules: QualityRules | None = None
    decisions: Mapping[str, str] | None = None
    ids: frozenset[str] | None = None

    @classmethod
    def of(cls, criteria, **rest) -> Selection:
        """The selection with the criteria of ``criteria`` (a :class:`QualityCriteria`,
        or any record with its fields, e.g. a training dataset's settings) and ``rest``
        (``rules``, ``decisions``, ``ids``)."""
        return cls(**{f.name: getattr(criteria, f.name)
                      for f in dataclasses.fields(QualityCriteria)}, **rest)

    @property
    def active(self) -> bool:
        """Whether any criterion is set to a value that can drop a fit (a truthy one)."""
        return any(getattr(self, f.name) for f in dataclasses.fields(self))

    @property
    def uses_quality(self) -> bool:
        return bool(self.accepted_only or self.rules is not None or any(
            v is not None for v in (self.max_loss_2d, self.max_reproj_px,
                                    self.max_abs_beta, self.min_keypoints)))

    def _check(self, missing) -> None:
        if "quality" in missing and self.uses_quality:
            raise AnnotationError("this file holds no fit quality (its format cannot), so it "
                                  "cannot be filtered by acceptance or quality thresholds")

    def _automatic(self, q: FitQuality) -> bool:
        if self.accepted_only and not q.accepted:
            return False
        if self.max_loss_2d is not None and not q.loss_2d_final <= self.max_loss_2d:
            return False
        if self.max_reproj_px is not None and not q.reproj_px <= self.max_reproj_px:
            return False
        if self.max_abs_beta is not None and not q.max_abs_beta <= self.max_abs_beta:
            return False
        return not (self.min_keypoints is not None and q.n_valid_keypoints < self.min_keypoints)

    def keep(self, fit_id: str, quality: FitQuality) -> bool:
        """Whether a fit with this id and (already re-judged) quality is kept."""
        if self.ids is not None and fit_id not in self.ids:
            return False
        decision = None
        if self.decisions is not None:
            decision = str(self.decisions.get(fit_id, "")).strip().lower()
        if decision in REJECT_DECISIONS:
            return False
        if decision in ACCEPT_DECISIONS:
            return True
        return self._automatic(quality)

    def apply_set(self, aset):
        """A new :class:`~eft.annotations.AnnotationSet` with the kept annotations."""
        self._check(aset.missing)
        kept = []
        for a in aset.annotations:
            q = a.fit.quality if self.rules is None else apply_rules(a.fit.quality, self.rules)
            if self.keep(a.id, q):
                if q is not a.fit.quality:
                    a = Annotation(fit=dataclasses.replace(a.fit, quality=q),
                                   exemplar=a.exemplar)
                kept.append(a)
        return dataclasses.replace(aset, annotations=kept)

    def apply(self, columns: Columns, missing=frozenset()) -> Columns:
        """The kept rows of ``columns`` (quality re-judged when ``rules`` is set)."""
        self._check(missing)
        if self.rules is not None:
            columns = _rejudge(columns, self.rules)
        mask = np.ones(len(columns), bool)
        for i in range(len(columns)):
            mask[i] = self.keep(str(columns.fit_id[i]), columns.quality_at(i))
        return columns.take(mask)


def _rejudge(columns: Columns, rules: QualityRules) -> Columns:
    q = {k: v.copy() for k, v in columns.quality.items()}
    for i in range(len(columns)):
        new = apply_rules(columns.quality_at(i), rules)
        q["accepted"][i] = new.accepted
        q["flags"][i] = new.flags
    return dataclasses.replace(columns, quality=q)


def read_decisions(path: str | os.PathLike) -> dict[str, str]:
    """Review decisions ``{fit_id: decision}`` matched **by id alone** (the latest per
    id, whatever fit it judged) from ``eft review``'s SQLite database or a JSON file:
    ``{fit_id: decision}``, ``{"decisions": {fit_id: decision}}`` or a list of
    ``{"id", "decision"}`` objects.  To apply decisions only to the fits they judged,
    use :func:`eft.annotations.decisions.load_bound_decisions`."""
    return load_bound_decisions(path, any_file=True).latest_by_id()
