"""Leeds Sports Pose (LSP) and LSP extended (LSPet) ``joints.mat`` files.

Both hold 14 joints per image in LSP order (``lsp14``: ankles, knees, hips, wrists,
elbows, shoulders, neck, head top), one person per image, and need scipy
(``pip install eft[datasets]``).  They differ in layout *and* in the meaning of the
third value:

=========  ============  ================================  =========================
variant    ``joints``    third value                       images
=========  ============  ================================  =========================
``lsp``    3 x 14 x N    1 = **occluded**, 0 = visible     ``im0001.jpg`` ...
``lspet``  14 x 3 x N    1 = visible/annotated, 0 = not    ``im00001.png`` (hr-lspet)
                         annotated (its x, y are junk)     or ``im00001.jpg``
=========  ============  ================================  =========================

(the LSP flag is inverted as in the usual LSP-to-MPII conversions, which compute
``1 - flag``).  In LSP every joint is annotated, occluded ones included, so - like
SPIN's ``lsp_dataset_original`` preprocessing - every LSP joint gets confidence 1
(``visible_only=True`` keeps only the visible ones); in LSPet the flag is the
confidence (SPIN's ``hr-lspet``).  The flags are kept in ``meta["visible"]``.
The variant is detected from the array's shape when ``variant="auto"``; asking for one
that contradicts the shape is an error.

Exemplar ``k`` (0-based) is image ``k + 1``: id ``"<dataset>/im0001"`` (LSP) or
``"<dataset>/im00001"`` (LSPet).  Crop: SPIN's, the box of the annotated joints times
``rescale`` (1.2).  LSP's usual split is images 1-1000 train and 1001-2000 test
(``indices=range(1000)`` / ``range(1000, 2000)``).  Skipped with a reason:
``no_keypoints``, ``too_few_keypoints``, ``bad_keypoints``, ``bad_bbox`` (no crop, or an
absurd one: :func:`~eft.data.readers.base.crop_problems`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from eft.body import joints as J
from eft.data.exemplar import Exemplar

from . import _matlab as M
from .base import ReaderError, ReadResult, Skipped, keypoint_box_center_scale

__all__ = ["read_lsp"]

_FMT = "lsp14"
_VARIANTS = ("auto", "lsp", "lspet")


def _layout(joints: np.ndarray, path: Path) -> tuple[str, np.ndarray]:
    """(variant, (N, 14, 3) array) from the raw ``joints`` variable."""
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim == 2:  # a single image squeezed away by loadmat
        j = j[..., None]
    if j.ndim == 3 and j.shape[:2] == (3, 14):
        return "lsp", np.transpose(j, (2, 1, 0))
    if j.ndim == 3 and j.shape[:2] == (14, 3):
        return "lspet", np.transpose(j, (2, 0, 1))
    raise ReaderError(f"{path}: 'joints' has shape {j.shape}; expected 3x14xN (LSP) or "
                      "14x3xN (LSPet)")


def read_lsp(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    variant: str = "auto",
    dataset: str | None = None,
    min_keypoints: int = 6,
    rescale: float = 1.2,
    visible_only: bool = False,
    image_pattern: str | None = None,
    indices: Iterable[int] | None = None,
) -> ReadResult:
    """Read an LSP or LSPet ``joints.mat``.

    Args:
        path: the ``joints.mat`` file.
        image_root: folder of the images; default ``<its folder>/images``.
        variant: ``"lsp"``, ``"lspet"`` or ``"auto"`` (from the array's shape).
        dataset: id prefix and provenance name; default the variant.
        min_keypoints: fewest annotated keypoints to keep a person (EFT: 6).
        rescale: crop side / longer side of the keypoint box.
        visible_only: LSP only - confidence 0 for occluded joints.
        image_pattern: ``str.format`` pattern of the image name from the 1-based index;
            default ``im{:04d}.jpg`` (LSP), ``im{:05d}.png`` or ``im{:05d}.jpg`` (LSPet,
            whichever exists).
        indices: 0-based images to read (default all), e.g. ``range(1000)``.
    """
    path = Path(path)
    if variant not in _VARIANTS:
        raise ReaderError(f"lsp: variant must be one of {_VARIANTS}, got {variant!r}")
    mat = M.load_mat(path)
    if "joints" not in mat:
        raise ReaderError(f"{path}: no 'joints' variable (not an LSP/LSPet joints.mat)")
    found, joints = _layout(mat["joints"], path)
    if variant != "auto" and variant != found:
        raise ReaderError(f"{path}: 'joints' is laid out as {found} "
                          f"({'3x14xN' if found == 'lsp' else '14x3xN'}) but {variant!r} "
                          f"was asked; read it as {found!r}")
    dataset = dataset or found
    root = Path(image_root) if image_root is not None else path.parent / "images"
    if image_pattern is None:
        if found == "lsp":
            image_pattern = "im{:04d}.jpg"
        else:
            png = (root / "im00001.png").exists()
            jpg = (root / "im00001.jpg").exists()
            image_pattern = "im{:05d}.jpg" if jpg and not png else "im{:05d}.png"
    n = joints.shape[0]
    order = range(n) if indices is None else [int(i) for i in indices]
    out = ReadResult()
    for k in order:
        if not 0 <= k < n:
            raise ReaderError(f"{path}: image index {k} out of range (0..{n - 1})")
        name = image_pattern.format(k + 1)
        eid = f"{dataset}/{Path(name).stem}"
        raw = joints[k].copy()
        flag = raw[:, 2].copy()
        if found == "lsp":
            visible = flag == 0
            raw[:, 2] = visible if visible_only else 1.0
        else:
            visible = flag > 0
            raw[:, 2] = visible
        kps49 = J.to_spin49(raw, _FMT)
        if out.skip_unusable(eid, kps49, min_keypoints):
            continue
        cs = keypoint_box_center_scale(kps49, rescale)
        if cs is None:
            out.skipped.append(Skipped(eid, "bad_bbox", "degenerate keypoint box"))
            continue
        if out.skip_bad_crop(eid, cs[0], cs[1]):
            continue
        out.exemplars.append(Exemplar(
            id=eid, image_path=str(root / name), center=cs[0], scale=cs[1],
            keypoints=kps49.astype(np.float64), source=_FMT,
            meta={"imageName": name, "imageIndex": k, "dataset": dataset,
                  "variant": found, "visible": [int(v) for v in visible]},
        ))
    return out
