"""Settings of Exemplar Fine-Tuning: loss weights, optimiser, stopping and acceptance.

Defaults are EFT's (facebookresearch/eft, ``eftFitter.py`` and ``train_options.py``):

* Adam, weight decay 0, at most 20 steps per exemplar, stop as soon as the 2D keypoint
  loss of the current forward pass is below ``1e-4``; the parameters kept are those of
  that forward pass (the stopping step), not the ones after a further update.
* ``loss = 60 * [5 * L2D + 0.001 * mean(beta^2) + mean(exp(-10 s)^2) + 0.005 * L_legOri]``
  with ``L2D`` the confidence-weighted squared 2D error in crop-normalised ``[-1, 1]``
  coordinates averaged over the 49 x 2 coordinates (OpenPose slots weight 0, GT slots
  weight 1; GT hips and the MPII pelvis ignored unless ``with_hips``; GT ankles enter only
  through the leg-orientation term).
* Accepted fits: EFT's ``IsValid`` filter (final ``L2D <= 1e-3``, initial
  ``L2D <= 0.03``, ``max|beta| <= 3``) plus at least 6 annotated GT keypoints;
  :meth:`QualityRules.strict` is EFT's MPII filter (``IsValid_strict``).

Learning rate
-------------
``EFTConfig.lr`` is ``None`` by default and resolved per architecture by
:meth:`EFTConfig.resolve_lr`: :class:`~eft.models.HMR` uses EFT's ``5e-6``
(:data:`EFT_LR`); the small :class:`~eft.models.KeypointRegressor` uses
:data:`KEYPOINT_REGRESSOR_LR` = ``3e-5``, measured as follows.  A KeypointRegressor
pretrained briefly with ``eft.train.prior`` (1500 steps; PA-MPJPE 85 mm) was fine-tuned
with the EFT defaults on 64 synthetic exemplars posed from the pose bank's validation
poses (COCO-17 annotation), learning rates 5e-6 ... 1e-4:

==========  ==========================  ==========================
lr          clean keypoints             COCO-like noise (default)
            converged / median iters /  converged / median iters /
            PA-MPJPE 24 (before 74 mm)  PA-MPJPE 24 (before 81 mm)
==========  ==========================  ==========================
5e-6        59 % / 17 / 64 mm           20 % / 20 / 75 mm
1e-5        75 % / 10 / 62 mm           28 % / 20 / 77 mm
2e-5        80 % /  8 / 61 mm           48 % / 20 / 81 mm
3e-5        84 % /  7 / 60 mm           55 % / 18 / 83 mm
5e-5        86 % /  9 / 59 mm           56 % / 19 / 85 mm
1e-4        66 % / 18 / 64 mm           33 % / 20 / 84 mm
==========  ==========================  ==========================

("converged": the 2D loss fell below EFT's 1e-4 within 20 steps.)  From 3e-5 on most
clean fits converge in well under 20 steps; above 5e-5 Adam's steps overshoot and fewer
converge.  3e-5 is the smallest rate at the plateau.  With annotation noise the 1e-4
threshold sits near the noise floor, and a rate that fits the 2D keypoints more closely
also fits their noise: the 3D error grows with the rate and beats the un-tuned prior only
up to ~2e-5.  Pass a smaller ``lr`` (e.g. 5e-6) to stay closer to the prior on noisy
labels.  Re-measure for another
pretrained regressor (a longer-trained prior may prefer a different rate).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from eft.body.joints import SPIN49_INDEX
from eft.errors import did_you_mean
from eft.geometry.cameras import FOCAL_LENGTH
from eft.models.hmr import EFT_LR
from eft.models.keypoint_regressor import KEYPOINT_REGRESSOR_LR
from eft.models.protocol import SCOPES, Scope

__all__ = [
    "EFT_PRESETS",
    "TILTED_REFIT",
    "eft_preset",
    "EFT_LR",
    "KEYPOINT_REGRESSOR_LR",
    "SCOPES",
    "FLAGS",
    "DEFAULT_MAX_POSE_NLL",
    "Scope",
    "SMPLIFY_INITS",
    "SmplifyInit",
    "QualityRules",
    "EFTConfig",
]

#: ``EFTConfig.smplify_init``: where the blend's SMPLify fit starts.
SmplifyInit = Literal["regressor", "eft"]
SMPLIFY_INITS: tuple[str, ...] = ("regressor", "eft")

#: Every quality flag a fit can carry.
FLAGS: tuple[str, ...] = (
    "not_converged",
    "extreme_shape",
    "implausible_pose",
    "too_few_keypoints",
    "high_initial_loss",
    "non_finite",
    "skipped",
)


#: Default ``QualityRules.max_pose_nll`` (nats under the shipped GMM pose prior).
#: Calibrated by ``scripts/bench_fitting.py`` on synthetic val exemplars: true poses of
#: the unseen val clips stay below -31 (99.9th percentile), while EFT fits above 150 are
#: a few percent of all fits, with a markedly higher 3D error than the rest.
DEFAULT_MAX_POSE_NLL = 150.0


def _check_number(name: str, value, sign: str | None = None, *,
                  inf: bool = False) -> None:
    """ValueError ``"<name> must be ..."`` unless ``value`` is a finite real number
    (bool excluded; ``inf=True``: +inf allowed too) with the given ``sign`` (``"> 0"`` or
    ``">= 0"``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and (
        math.isfinite(value) or (inf and value == math.inf))
    if ok and sign == "> 0":
        ok = value > 0
    elif ok and sign == ">= 0":
        ok = value >= 0
    if not ok:
        what = ("a number (or inf)" if inf else "a finite number") + (
            f" {sign}" if sign else "")
        raise ValueError(f"{name} must be {what}, got {value!r}")


@dataclass(frozen=True)
class QualityRules:
    """When a fit is accepted.  Defaults: EFT's ``IsValid`` filter.

    A fit gets a flag for each rule it breaks and is accepted when none of its flags is
    in ``reject_flags``.

    Attributes:
        max_loss_2d: flag ``"not_converged"`` when the final 2D loss exceeds this (EFT
            1e-3; its database export used 5e-4).
        max_initial_loss_2d: flag ``"high_initial_loss"`` when the regressor's initial
            2D loss exceeds this (EFT 0.03): the exemplar is too far from anything the
            regressor predicts for fine-tuning to be trusted.
        max_abs_beta: flag ``"extreme_shape"`` when ``max|beta|`` exceeds this (EFT 3).
        min_valid_keypoints: flag ``"too_few_keypoints"`` (and do not fit at all) when
            fewer GT keypoints (SPIN-49 slots 25..48) are annotated (EFT "All": 6).
        max_pose_nll: flag ``"implausible_pose"`` when the GMM pose prior scored the fit
            and its negative log-likelihood (nats, under the shipped pose-bank GMM)
            exceeds this; ``None`` disables the rule.  Default
            :data:`DEFAULT_MAX_POSE_NLL`.
        reject_flags: the flags that make a fit rejected (default: all of them).
    """

    max_loss_2d: float = 1e-3
    max_initial_loss_2d: float = 0.03
    max_abs_beta: float = 3.0
    min_valid_keypoints: int = 6
    max_pose_nll: float | None = DEFAULT_MAX_POSE_NLL
    reject_flags: tuple[str, ...] = FLAGS

    def __post_init__(self) -> None:
        object.__setattr__(self, "reject_flags", tuple(self.reject_flags))
        unknown = [f for f in self.reject_flags if f not in FLAGS]
        if unknown:
            raise ValueError(f"unknown quality flag(s) {unknown}; known: {list(FLAGS)}")
        # +inf switches a rule off (API use, e.g. SMPLify); job configs refuse it
        for name in ("max_loss_2d", "max_initial_loss_2d", "max_abs_beta"):
            _check_number(name, getattr(self, name), ">= 0", inf=True)
        if self.max_pose_nll is not None:
            _check_number("max_pose_nll", self.max_pose_nll, inf=True)
        if int(self.min_valid_keypoints) != self.min_valid_keypoints or (
                self.min_valid_keypoints < 1):
            raise ValueError(
                f"min_valid_keypoints must be an int >= 1, got {self.min_valid_keypoints!r}")

    @classmethod
    def strict(cls, **overrides) -> QualityRules:
        """EFT's ``IsValid_strict`` filter (used for MPII): ``max|beta| <= 1``,
        initial 2D loss ``<= 0.04``, final 2D loss ``<= 3e-4``."""
        values: dict[str, Any] = {"max_loss_2d": 3e-4, "max_initial_loss_2d": 0.04,
                                  "max_abs_beta": 1.0}
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes) -> QualityRules:
        return dataclasses.replace(self, **changes)


#: ``EFTConfig.skeleton_offsets``: measure them on a pilot of the people fitted.
MEASURE_OFFSETS = "measure"


def _offset_rows(rows) -> tuple[tuple[str, float, float, float, float], ...] | str:
    """``EFTConfig.skeleton_offsets`` checked: :data:`MEASURE_OFFSETS`, or rows of known
    SPIN-49 slots, once each, with four finite coefficients."""
    if isinstance(rows, str):
        if rows != MEASURE_OFFSETS:
            raise ValueError(f"skeleton_offsets must be {MEASURE_OFFSETS!r} or a list of "
                             f"[slot, a, b, c, d] rows, got {rows!r}")
        return rows
    out: list[tuple[str, float, float, float, float]] = []
    for row in rows:
        if isinstance(row, str) or len(row) != 5 or row[0] not in SPIN49_INDEX:
            raise ValueError(f"skeleton_offsets rows must be [slot, a, b, c, d] with a "
                             f"SPIN-49 slot name, got {row!r}")
        a, b, c, d = (float(v) for v in row[1:])
        if not all(math.isfinite(v) for v in (a, b, c, d)):
            raise ValueError(f"skeleton_offsets: {row[0]}'s coefficients must be finite")
        out.append((str(row[0]), a, b, c, d))
    names = [r[0] for r in out]
    if len(set(names)) != len(names):
        raise ValueError("skeleton_offsets: a slot is given twice")
    return tuple(out)


@dataclass(frozen=True)
class EFTConfig:
    """Every weight, threshold and optimiser setting of one EFT run.

    Attributes:
        lr: Adam learning rate; ``None`` = per architecture (:meth:`resolve_lr`).
        max_iters: forward passes per exemplar at most (EFT 20).
        stop_loss_2d: stop at the first forward pass whose 2D loss is below this
            (EFT 1e-4; its demo used 2e-5); 0 never stops early.
        adam_betas, adam_eps, weight_decay: Adam's settings (torch defaults, wd 0).
        loss_scale: overall factor (60).
        w_keypoints_2d: weight of ``L2D`` (5).
        w_betas: weight of ``mean(beta^2)`` (0.001).
        w_cam: weight of ``mean(exp(-cam_scale_k * s)^2)`` (1), which keeps the camera
            scale ``s`` positive.
        cam_scale_k: the 10 in ``exp(-10 s)``.
        w_leg_orientation: weight of the shank-direction term (0.005).
        leg_min_length: GT shank length (crop-normalised) below which a leg's
            orientation term is skipped (0.0089).
        with_hips: keep the GT hips (SPIN slots 27, 28) and the MPII pelvis (39) in L2D.
        with_ankles: keep the GT ankles in L2D too (EFT drops them there and uses them
            only for the leg-orientation term).
        openpose_weight: confidence multiplier of OpenPose slots 0..24 (0).
        gt_weight: confidence multiplier of GT slots 25..48 (1).
        scope: which weights are fine-tuned, one of :data:`SCOPES`: ``"all"``
            (EFT), ``"head"``, ``"last_stage"`` or ``"bias"`` (biases and LayerNorm
            affine parameters only, the weight matrices shared by every exemplar).
        mirror_average: also fit each exemplar's mirror image (keypoints reflected
            left-right with left and right swapped, image crops flipped) with a fresh
            copy of the regressor, mirror that fit back, and keep the average of the two
            (rotations averaged and projected back onto rotations); twice the cost.
            ``iterations`` and ``loss_2d_init`` are the direct fit's, ``loss_2d_final``
            and the acceptance are the average's.
        smplify_blend: share of SMPLify's fit in the kept fit (0 = EFT alone).  When
            > 0, the exemplars are also fitted by SMPLify (SPIN's, started from the
            regressor's prediction, the same acceptance rules), and each joint
            rotation is the chordal mean of EFT's (weight ``1 - smplify_blend``) and
            SMPLify's; betas and camera are averaged arithmetically.  A limb joint
            whose child keypoint is not labelled (a hidden elbow, knee ...), and the
            wrists, hands, ankles and feet, keep EFT's rotation: SMPLify has only its
            pose prior there.  ``iterations``, ``loss_2d_init`` and ``converged`` are
            EFT's, ``loss_2d_final`` and the acceptance the blend's.
        smplify_init: where that SMPLify fit starts: ``"regressor"`` (the
            regressor's prediction, SPIN's way) or ``"eft"`` (EFT's fit, the blend's
            other half; where that is not finite, the prediction).  Only read with
            ``smplify_blend``.
        perspective_steps: when > 0, the kept fit is then refined under each image's
            own pinhole camera (:mod:`eft.fitting.perspective`): this many Adam steps
            over every joint rotation, the betas and the translation, to reproduce the
            labels through a camera of the image's focal length (the data's, else the
            image diagonal) and centre.  For exact labels only: a real camera draws
            nearer parts larger, which tells each limb's depth apart where the labels
            carry no annotation noise, and it fits the noise where they do.  Without
            an image size the camera is guessed from the crop
            (``perspective.FOCAL_PER_CROP_SIDE``).  0 = off.
        perspective_pose_weight: weight of the squared rotation offsets (radians^2,
            summed over joints) from the fit in that refinement.
        perspective_torso_weight: weight of the hips, pelvis, spine, neck and head
            labels in that refinement, against 1 for the limbs, shoulders and face
            (studio skeletons place the former unlike the body model).
        tilted_above_deg: when > 0, each person whose fit leans more than this many
            degrees from upright in the image (the angle between the body's up axis and
            the image's, from the fit's global rotation) is fitted again with
            :data:`TILTED_REFIT` on top of the recipe: blended with SMPLify, as
            ``open-prior-exact`` fits without its camera.  The light recipes stay
            near the prior's guess, and the prior knows people lying down least.
            0 = off.
        skeleton_offsets: where the labels' skeleton places its joints relative to the
            body model's, as rows ``(slot, a, b, c, d)`` (a SPIN-49 slot name and the
            offset's coefficients along the body's torso, hip, forward and bone axes;
            :mod:`eft.fitting.calibrate`).  When given, each exemplar's labels are
            moved back by its offsets (the body's axes from the regressor's first
            prediction) before the recipe fits them.  ``eft.preset: auto`` measures
            them on exact labels (:func:`~eft.fitting.calibrate.estimate_skeleton_offsets`);
            ``"measure"`` (:data:`MEASURE_OFFSETS`) measures them on a pilot of up to 256
            of the people fitted, by this recipe without offsets, first, then again from
            the pilot refitted with them taken out
            (:func:`~eft.fitting.calibrate.remeasure_skeleton_offsets`); ``()`` = none.
        label_skeleton_keypoints: with ``skeleton_offsets``, each fit's 3D keypoints
            of those slots are moved by the offsets of its own fitted body
            (:func:`~eft.fitting.calibrate.in_label_skeleton`), so that the keypoints
            written sit where the labels' skeleton (a studio set's 3D truth) places
            them; the rotations, betas and vertices stay the body model's.  ``False``
            keeps the body model's own keypoints.  Nothing changes without offsets.
        w_pose_prior: weight of the fit's body-pose NLL under the shipped GMM pose
            prior (:func:`~eft.fitting.pose_prior.load_default_pose_prior`, nats) in
            the loss, before ``loss_scale`` (0 = EFT's loss, no pose term).
        robust_2d: when > 0, the 2D term the fit minimises is robust: each joint's
            squared distance ``d^2`` (crop-normalised) counts as the Geman-McClure
            ``rho^2 d^2 / (d^2 + rho^2)`` with ``rho = robust_2d``, the same as
            ``d^2`` for joints near their label and at most ``rho^2`` for one far from
            it (an annotator's slip pulls less).  ``L2D``, the stopping threshold and
            the acceptance rules stay squared.  0 = EFT's squared loss.
        rules: acceptance rules, :class:`QualityRules`.
        focal_length: focal length (px, 224 crop) of the perspective camera reported
            next to the weak one (5000).
        img_res: crop side in pixels the camera refers to (224).
    """

    lr: float | None = None
    max_iters: int = 20
    stop_loss_2d: float = 1e-4
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    loss_scale: float = 60.0
    w_keypoints_2d: float = 5.0
    w_betas: float = 0.001
    w_cam: float = 1.0
    cam_scale_k: float = 10.0
    w_leg_orientation: float = 0.005
    leg_min_length: float = 0.0089
    with_hips: bool = False
    with_ankles: bool = False
    openpose_weight: float = 0.0
    gt_weight: float = 1.0
    scope: Scope = "all"
    mirror_average: bool = False
    smplify_blend: float = 0.0
    smplify_init: SmplifyInit = "regressor"
    perspective_steps: int = 0
    perspective_pose_weight: float = 3e-3
    perspective_torso_weight: float = 0.1
    tilted_above_deg: float = 0.0
    skeleton_offsets: tuple[tuple[str, float, float, float, float], ...] | str = ()
    label_skeleton_keypoints: bool = True
    w_pose_prior: float = 0.0
    robust_2d: float = 0.0
    rules: QualityRules = field(default_factory=QualityRules)
    focal_length: float = FOCAL_LENGTH
    img_res: int = 224

    def __post_init__(self) -> None:
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        object.__setattr__(self, "skeleton_offsets", _offset_rows(self.skeleton_offsets))
        if self.lr is not None:
            _check_number("lr", self.lr, "> 0")
        for name in ("stop_loss_2d", "weight_decay", "w_keypoints_2d", "w_betas", "w_cam",
                     "w_leg_orientation", "leg_min_length", "openpose_weight", "gt_weight"):
            _check_number(name, getattr(self, name), ">= 0")
        for name in ("loss_scale", "cam_scale_k", "adam_eps", "focal_length"):
            _check_number(name, getattr(self, name), "> 0")
        if isinstance(self.img_res, bool) or int(self.img_res) != self.img_res or (
                self.img_res < 1):
            raise ValueError(f"img_res must be an int >= 1 (crop side in px), "
                             f"got {self.img_res!r}")
        if int(self.max_iters) != self.max_iters or self.max_iters < 1:
            raise ValueError(f"max_iters must be an int >= 1, got {self.max_iters!r}")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas}")
        _check_number("smplify_blend", self.smplify_blend, ">= 0")
        _check_number("perspective_pose_weight", self.perspective_pose_weight, ">= 0")
        _check_number("perspective_torso_weight", self.perspective_torso_weight, ">= 0")
        _check_number("tilted_above_deg", self.tilted_above_deg, ">= 0")
        _check_number("w_pose_prior", self.w_pose_prior, ">= 0")
        _check_number("robust_2d", self.robust_2d, ">= 0")
        if (isinstance(self.perspective_steps, bool) or int(self.perspective_steps)
                != self.perspective_steps or self.perspective_steps < 0):
            raise ValueError(f"perspective_steps must be an int >= 0, "
                             f"got {self.perspective_steps!r}")
        if self.smplify_blend >= 1:
            raise ValueError(f"smplify_blend must be below 1 (the share of SMPLify's fit), "
                             f"got {self.smplify_blend!r}")
        if not isinstance(self.label_skeleton_keypoints, bool):
            raise ValueError(f"label_skeleton_keypoints must be true or false, "
                             f"got {self.label_skeleton_keypoints!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {self.scope!r}")
        if self.smplify_init not in SMPLIFY_INITS:
            raise ValueError(f"smplify_init must be one of {SMPLIFY_INITS}, "
                             f"got {self.smplify_init!r}")
        if not isinstance(self.rules, QualityRules):
            raise TypeError(f"rules must be a QualityRules, got {type(self.rules).__name__}")

    def resolve_lr(self, model: nn.Module) -> float:
        """``lr`` if set, else the regressor's own ``eft_lr``
        (:class:`~eft.models.protocol.Regressor`; :data:`EFT_LR` for a module that
        declares none)."""
        if self.lr is not None:
            return float(self.lr)
        return float(getattr(model, "eft_lr", EFT_LR))

    def replace(self, **changes) -> EFTConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **overrides) -> EFTConfig:
        """The named recipe :data:`EFT_PRESETS` ``[name]`` with ``overrides`` on top."""
        return eft_preset(name, **overrides)


    @classmethod
    def strict(cls, **overrides) -> EFTConfig:
        """EFT defaults with :meth:`QualityRules.strict` acceptance (MPII)."""
        overrides.setdefault("rules", QualityRules.strict())
        return cls(**overrides)


#: Named EFT recipes (values over :class:`EFTConfig`'s defaults).
#:
#: * ``"eft"``: EFT's published recipe, exactly :class:`EFTConfig`'s defaults (Adam,
#:   <= 20 steps, stop below 2D loss 1e-4, GT ankles only through the leg-orientation
#:   term, lr per architecture: 5e-6 for HMR as published,
#:   :data:`KEYPOINT_REGRESSOR_LR` for keypoint regressors).  Equal to the original
#:   loop to float rounding (tests/test_eft.py).
#: * ``"open-prior"``: tuned for the default prior (v9) on real labels with
#:   ``scripts/tune_eft.py --n 1000`` (``scripts/results/tune_eft_v9_bias_n1000.md``,
#:   ``tune_eft_v9_mirror_n1000.md``): scope ``"bias"`` (each exemplar tunes only its
#:   biases and LayerNorm gains/offsets, the weight matrices stay shared), lr 3e-4, at
#:   most 10 steps, GT ankles kept in the 2D loss, and the fit averaged with the fit of
#:   the mirrored exemplar (``mirror_average``).  On 1,000 held-out-limb people each of
#:   COCO val / MPII val and 256 synthetic val people it gives 0.1138 / 0.1129 / 68.6 mm
#:   (without the mirror 0.1145 / 0.1136 / 69.2; ``"open-prior-all"`` 0.1145 / 0.1136 /
#:   69.1 mm) at a seventh of ``"open-prior-all"``'s cost per exemplar
#:   (``scripts/results/bench_prior_cost_recipes.md``).  The default of ``eft fit``
#:   with a shipped prior since 2026-12-06 (the third recipe of that day).  People
#:   whose fit leans more than 30 degrees from upright (lying down, bent over) are
#:   fitted again and blended with SMPLify (:data:`TILTED_REFIT`, ``tilted_above_deg``;
#:   60 degrees on 2026-12-06, 30 since the evening of that day): on 256 synthetic
#:   people all lying, at half / all of COCO's noise, 58.6 / 63.6 mm PA-MPJPE-14
#:   against 65.3 / 68.9 without a refit (SMPLify 60.1 / 67.2); bent over 56.0 / 64.4
#:   against 58.3 / 64.9 with the 60-degree threshold (SMPLify 58.1 / 69.1); held-out
#:   joints on COCO / MPII val 0.0004 / 0.0006 further than with 60 degrees
#:   (``scripts/results/tune_eft_v9_tilt_threshold_n1000.md``).  The refit's SMPLify
#:   starts from the light EFT fit (``smplify_init: "eft"``, late on 2026-12-06): 0.5-1.1
#:   mm better on people lying down, up to 0.7 on bent-over people, level elsewhere and
#:   on the real held-out joints (``tune_eft_v9_smplify_init_n1000.md``).
#: * ``"open-prior-all"``: the default before: every weight, lr 2e-5, at most 10 steps,
#:   GT ankles kept (``scripts/results/tune_eft_v9_iters10_n1000.md``).
#: * ``"open-prior-exact"``: for 2D labels without annotation noise (projected from
#:   motion capture or from a fitted body, as a studio set's are): ``"open-prior"``
#:   fitted harder (lr 1e-3, at most 30 steps), then blended half and half with
#:   SMPLify's fit from the same prior (``smplify_blend`` 0.5).  The two fitters agree
#:   on the labelled 2D and differ on each limb's depth, which such labels do not fix;
#:   their blend is nearer the truth than either.  On exact synthetic labels it is
#:   2.4-2.8 mm PA-MPJPE-14 better than SMPLify and 4.3 better than ``"open-prior"``
#:   (``scripts/results/bench_eft_formats_clean_openprior_exact.md``), and 5-17 mm
#:   better than SMPLify on seated, kneeling and bent-over people
#:   (``bench_variants_openprior_exact.md``).  On human-annotated labels it is worse
#:   than ``"open-prior"`` (``bench_eft_formats_openprior_exact.md``,
#:   ``tune_eft_v9_openprior_exact_n1000.md``).  Until 2026-12-06 (the fourth
#:   recipe change of that day) it had no blend.
#: * ``"open-prior-v2"``: the recipe tuned for prior v2 (``scripts/results/tune_eft_v2.md``)
#:   and used with every shipped prior up to 2026-12-06: all parameters, lr 1e-5, 20
#:   steps, GT ankles kept in the 2D loss.
EFT_PRESETS: dict[str, dict] = {
    "eft": {},
    "open-prior": {"lr": 3e-4, "max_iters": 10, "with_ankles": True, "scope": "bias",
                   "mirror_average": True, "tilted_above_deg": 30.0, "smplify_init": "eft"},
    "open-prior-all": {"lr": 2e-5, "max_iters": 10, "with_ankles": True},
    "open-prior-exact": {"lr": 1e-3, "max_iters": 30, "with_ankles": True, "scope": "bias",
                         "mirror_average": True, "smplify_blend": 0.5,
                         "perspective_steps": 150},
    "open-prior-v2": {"lr": 1e-5, "max_iters": 20, "with_ankles": True},
}


#: ``EFTConfig.tilted_above_deg``: the settings a tilted person is fitted again with, on
#: top of the recipe: blended half and half with SMPLify, as ``open-prior-exact`` fits
#: without its camera, but with ``open-prior``'s light steps (lr 5e-4, at most 10; on
#: annotated labels of people lying down ``open-prior-exact``'s lr 1e-3 and 30 steps
#: fit the noise: 2.8 mm worse at COCO's noise, and 1.4x the cost).  Where its SMPLify
#: half starts is the recipe's ``smplify_init`` (``open-prior``: EFT's fit).  Part of a
#: job's resume hash.
TILTED_REFIT: dict = {"lr": 5e-4, "max_iters": 10, "smplify_blend": 0.5,
                      "tilted_above_deg": 0.0}


def preset_name(config: EFTConfig) -> str | None:
    """The name of the preset (:data:`EFT_PRESETS`) ``config`` equals, or None."""
    for name in EFT_PRESETS:
        if eft_preset(name) == config:
            return name
    return None


def describe_recipe(config: EFTConfig, shown: int = 3) -> str:
    """``config`` in words: the name of the preset it equals, else the preset it differs
    least from and the keys it changes (``"open-prior-exact with max_iters=6"``; beyond
    ``shown`` keys, their count)."""
    def changed(name: str) -> list[str]:
        base = eft_preset(name)
        return [f.name for f in dataclasses.fields(EFTConfig)
                if getattr(config, f.name) != getattr(base, f.name)]

    name = min(EFT_PRESETS, key=lambda n: len(changed(n)))
    keys = changed(name)
    if not keys:
        return name
    text = ", ".join(f"{k}={getattr(config, k)}" for k in keys[:shown])
    if len(keys) > shown:
        text += f" and {len(keys) - shown} more"
    return f"{name} with {text}"


def eft_preset(name: str, also: tuple[str, ...] = (), **overrides) -> EFTConfig:
    """:class:`EFTConfig` of the preset ``name`` (:data:`EFT_PRESETS`) plus ``overrides``;
    an unknown name is a ValueError listing the presets (and the caller's other names,
    ``also``) with the nearest."""
    if name not in EFT_PRESETS:
        names = [*also, *sorted(EFT_PRESETS)]
        raise ValueError(f"unknown EFT preset {name!r}; known: {names}"
                         + did_you_mean(name, names))
    return EFTConfig(**{**EFT_PRESETS[name], **overrides})
