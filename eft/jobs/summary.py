"""The end-of-run summary: fitted, accepted, rejected by reason, skipped by reason,
failed by reason, time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from eft.annotations.columns import Columns
from eft.fitting.auto import (
    AUTO_CHOICES,
    CAPTURE_CAMERA_BELOW,
    CAPTURE_PROBE_BELOW,
    EXACT_CAMERA_BELOW,
    EXACT_LABELS_BELOW,
    EXACT_LIMBS_BELOW,
    MIXED_RIGS_SHARE,
    OFFSETS_CAMERA_BELOW,
    PERSPECTIVE_LABELS_BELOW,
    PresetChoice,
    statistic_name,
)

from .store import Failure

__all__ = ["Summary", "summarize", "EXACT_LABELS_BELOW", "ANNOTATED_LABELS_ABOVE"]

#: Median reprojection / box side under ``open-prior-exact`` above which the labels look
#: annotated: that recipe is fitting their noise (0.008-0.009 on exact labels, 0.011-0.013
#: at half the noise, 0.013-0.016 at three quarters, 0.015-0.020 with all of it).
ANNOTATED_LABELS_ABOVE = 0.014


@dataclass
class Summary:
    """Counts over everything the output folder holds for the job's exemplars.

    Attributes:
        n_work: exemplars the job had to fit (after sharding and ``limit``).
        fitted: exemplars with a fit.
        accepted: fits that pass the quality rules.
        rejected_by_flag: rejected fits per flag (a fit with two flags counts twice).
        skipped_by_reason: people the readers left out.
        failed_by_reason: exemplars that could not be fitted.
        fitted_this_run: fits made by this run (the rest were committed earlier).
        seconds: wall time of this run.
        fit_seconds: time the workers spent in this run's chunks (summed).
        outputs: final files written (format -> path).
        reproj_median: median over the fits of the distance between the fitted and the
            labelled keypoints in the image, over the box side (``reproj_frac_bbox``);
            None without fits.  How exact the labels look: README "Labels without
            annotation noise".
        recipe: the EFT preset the job's settings equal (None: none of them).
        recipe_auto: how ``eft.preset: auto`` picked it
            (:meth:`eft.jobs.recipe.AutoRecipe.summary_dict`), None when the config
            named the recipe.
        dataset_recipes: the datasets fitted with settings of their own (their
            ``eft``, named in the config or picked by their own pilot under ``auto``):
            {dataset: those in words, :func:`eft.fitting.config.describe_recipe`}.
    """

    n_work: int = 0
    fitted: int = 0
    accepted: int = 0
    rejected_by_flag: dict[str, int] = field(default_factory=dict)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    fitted_this_run: int = 0
    seconds: float = 0.0
    fit_seconds: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    reproj_median: float | None = None
    recipe: str | None = None
    recipe_auto: dict | None = None
    dataset_recipes: dict[str, str] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return self.fitted - self.accepted

    @property
    def failed(self) -> int:
        return sum(self.failed_by_reason.values())

    @property
    def skipped(self) -> int:
        return sum(self.skipped_by_reason.values())

    def to_dict(self) -> dict:
        return asdict(self)

    def labels_hint(self) -> str:
        """A hint when the labels look unlike what the recipe was made for, else ''
        (none under ``eft.preset: auto``, which picked the recipe from the labels)."""
        r = self.reproj_median
        if r is None or self.recipe_auto is not None:
            return ""
        if self.recipe == "open-prior" and r < EXACT_LABELS_BELOW:
            return ("; the labels look exact (no annotation noise): eft.preset "
                    "open-prior-exact fits such labels better")
        if self.recipe == "open-prior-exact" and r > ANNOTATED_LABELS_ABOVE:
            return ("; the labels look human-annotated: if people annotated them, use "
                    "eft.preset open-prior (open-prior-exact fits their noise); keep "
                    "open-prior-exact for labels from motion capture")
        return ""

    def format(self) -> str:
        """A few lines for the terminal."""
        def reasons(counts: dict[str, int]) -> str:
            if not counts:
                return ""
            items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            return " (" + ", ".join(f"{k} {v}" for k, v in items) + ")"

        pct = 100.0 * self.accepted / self.fitted if self.fitted else 0.0
        rate = self.fitted_this_run / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"exemplars  {self.n_work}",
            f"fitted     {self.fitted} ({self.fitted_this_run} this run, "
            f"{self.fitted - self.fitted_this_run} resumed)",
            f"accepted   {self.accepted} ({pct:.1f} %)",
            f"rejected   {self.rejected}{reasons(self.rejected_by_flag)}",
            f"skipped    {self.skipped}{reasons(self.skipped_by_reason)}",
            f"failed     {self.failed}{reasons(self.failed_by_reason)}",
            f"time       {self.seconds:.1f} s ({rate:.1f} exemplars/s this run)",
        ]
        if self.reproj_median is not None:
            lines.insert(4, f"reproj     median {self.reproj_median:.4f} of the box side"
                         + self.labels_hint())
        if self.recipe_auto is not None:
            a = self.recipe_auto
            lines.insert(4, f"recipe     {a['preset']} (eft.preset auto: pilot of "
                         f"{a['pilot']}, {statistic_name(a['pilot'])} reprojection "
                         f"{_measured(a['reproj_median'])}, "
                         f"limbs {_measured(a['limb_median'])}; exact below {EXACT_LABELS_BELOW} "
                         f"or {EXACT_LIMBS_BELOW}" + _camera_note(a) + ")")
            own = a.get("datasets") or {}
            odd = {n: r for n, r in (a.get("datasets_otherwise") or {}).items()
                   if n not in own}
            if odd:
                lines.insert(5, "mixed      " + "; ".join(
                    f"dataset {n} reads as {r} on its own" for n, r in odd.items())
                    + ": fit it as a job of its own, or give it its own eft.preset")
        per_set = []
        for name, recipe in self.dataset_recipes.items():
            pick = ((self.recipe_auto or {}).get("datasets") or {}).get(name)
            per_set.append(f"dataset {name}: {recipe}" if pick is None else
                           f"dataset {name}: {pick['recipe']} (its own pilot of "
                           f"{pick['pilot']}, {statistic_name(pick['pilot'])} reprojection "
                           f"{pick['reproj_median']:.4f})")
        if per_set:  # under the recipe line, where there is one
            at = next((i + 1 for i, line in enumerate(lines) if line.startswith("recipe ")), 4)
            lines.insert(at, "per set    " + "; ".join(per_set))
        for fmt, path in self.outputs.items():
            lines.append(f"file       {path} ({fmt})")
        return "\n".join(lines)


def _measured(value) -> str:
    """A pilot's measure as text: none where no pilot person had labels to measure."""
    return "none (no labelled pilot person)" if value is None else f"{value:.4f}"


def _camera_note(auto: dict) -> str:
    """The summary's words on the second pilot (``open-prior-exact`` measured through
    the images' cameras), from a :meth:`PresetChoice.to_dict` (nothing when it was not
    measured)."""
    median = auto.get("perspective_median")
    if median is None:
        return ""
    exact = CAPTURE_CAMERA_BELOW if auto.get("capture") else EXACT_CAMERA_BELOW
    kind = " (motion-capture labels)" if auto.get("capture") else ""
    probe = auto.get("capture_probe_median")
    if probe is not None:  # complete labels without a spine and a jaw, probed
        kind = (f" (motion-capture labels: {probe:.4f} through the cameras with their "
                f"skeleton offsets out, capture below {CAPTURE_PROBE_BELOW})"
                if auto.get("capture") else
                f" (probed as motion capture: {probe:.4f} with their skeleton offsets "
                f"out, capture below {CAPTURE_PROBE_BELOW})")
    if auto.get("preset") != AUTO_CHOICES[1]:
        return (f"; limbs {median:.4f} through the cameras after open-prior-exact, "
                f"exact below {exact}{kind}")
    after = auto.get("offsets_camera_median")
    state = "on" if PresetChoice.from_dict(auto).perspective else "off"
    offsets = auto.get("skeleton_offsets") or []
    if after is not None:
        state += (f" ({after:.4f} through the cameras with the labels' skeleton offsets "
                  "taken out" + ("" if offsets or after < OFFSETS_CAMERA_BELOW else
                                 f"; not below {OFFSETS_CAMERA_BELOW}: offsets read from "
                                 "noise, dropped") + ")")
    moved = (f"; the labels' skeleton offsets taken out for {len(offsets)} slot"
             f"{'s' if len(offsets) != 1 else ''} ({', '.join(r[0] for r in offsets)})"
             + (", the written keypoints in the labels' skeleton"
                if auto.get("label_skeleton_keypoints") else "")
             if offsets else "")
    far = auto.get("far_from_skeleton")
    mixed = (f"; {100 * far:.0f} % of the pilot's people far from the measured skeleton: "
             "mixed capture rigs? give each rig's labels a dataset of its own"
             if far is not None and far > MIXED_RIGS_SHARE else "")
    return (f"; image-camera refinement {state}: limbs {median:.4f} through the "
            f"cameras, kept below {PERSPECTIVE_LABELS_BELOW}, exact below "
            f"{exact}{kind} whatever the first pilot read" + moved + mixed)


def summarize(n_work: int, columns: Columns, failures: Iterable[Failure],
              skipped_reasons: Iterable[str], **extra) -> Summary:
    """The summary of the fits in ``columns`` (their quality columns) and the failures."""
    accepted = columns.quality["accepted"].astype(bool)
    flags = columns.quality["flags"]
    rejected = Counter(flag for i in np.flatnonzero(~accepted) for flag in flags[i])
    reproj = np.asarray(columns.quality["reproj_frac_bbox"], dtype=np.float64)
    reproj = reproj[np.isfinite(reproj)]
    return Summary(
        reproj_median=float(np.median(reproj)) if reproj.size else None,
        n_work=n_work, fitted=len(columns), accepted=int(accepted.sum()),
        rejected_by_flag=dict(rejected),
        skipped_by_reason=dict(Counter(skipped_reasons)),
        failed_by_reason=dict(Counter(f.reason for f in failures)), **extra)
