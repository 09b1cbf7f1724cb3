"""Z-buffer triangle rasterisation in torch (no OpenGL, no display).

Conventions
-----------
* **Pixels.** Pixel ``(row r, column c)`` is sampled at its centre, the point
  ``(x, y) = (c, r)`` of the continuous image plane (x right, y down): integer
  coordinates are pixel centres, the convention of ``np.fliplr`` and of
  :func:`eft.body.joints.flip_keypoints`.
* **Screen vertices** ``(B, V, 3)``: ``x, y`` in pixels and a depth ``z`` where smaller
  is nearer.  For a perspective camera pass the camera-frame depth with
  ``perspective=True``: triangles are then interpolated perspective-correctly (``1/z``
  is linear on screen) and triangles with a vertex at ``z <= near`` are dropped (there
  is no near-plane clipping).
* **Coverage.** A pixel centre is inside a triangle when all three barycentric
  coordinates are ``>= 0`` (edges included), so two triangles that share an edge leave
  no crack; the nearer triangle wins, ties go to the lower face index (deterministic).
  Degenerate (zero-area) triangles and triangles with a non-finite vertex are skipped.
  Both windings are drawn (no back-face culling).

Method
------
For every triangle the integer pixel centres inside its screen bounding box are
enumerated exactly (``repeat_interleave`` over the bounding-box sizes, batch folded into
the triangle index), each candidate is tested with precomputed barycentric plane
coefficients (float64), and the nearest covering triangle per pixel is found with a
single ``scatter_reduce(amin)`` over a 64-bit key that packs an order-preserving integer
image of the float32 depth above the triangle index.  Candidates are processed in
chunks of at most ``max_candidates`` so memory stays bounded whatever the triangle
sizes.  Barycentrics and depth are then recomputed for the winning triangle of each
covered pixel only.  On the 24k-face open body model this costs about as much as a few
hundred thousand candidate tests per 512 px image (see the README's timing).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from eft.render.errors import RenderError

__all__ = ["Fragments", "rasterize"]

_EMPTY = torch.iinfo(torch.int64).max
_LOW32 = (1 << 32) - 1


@dataclass(frozen=True)
class Fragments:
    """Per-pixel result of :func:`rasterize`.

    Attributes:
        face: (B, H, W) int64 index of the visible face in ``faces``, -1 where empty.
        depth: (B, H, W) interpolated depth of the visible surface (camera depth for
            ``perspective=True``), ``inf`` where empty.
        bary: (B, H, W, 3) barycentric coordinates of the pixel centre in that face
            (perspective-corrected when ``perspective=True``), 0 where empty.
    """

    face: torch.Tensor
    depth: torch.Tensor
    bary: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """(B, H, W) bool: pixels covered by some face."""
        return self.face >= 0


def _ordered_int(values: torch.Tensor) -> torch.Tensor:
    """float -> int64 with the same order, through the float32 bit pattern.

    Shapes: (N,) -> (N,), values in ``[-2**31, 2**31)``.
    """
    bits = values.to(torch.float32).view(torch.int32).to(torch.int64)
    return torch.where(bits < 0, -1 - (bits + (1 << 31)), bits)


def _plane_coefficients(tri: torch.Tensor, depth: torch.Tensor):
    """Edge functions and depth plane of triangles.

    Shapes: ``tri`` (N, 3, 2) screen xy (float64), ``depth`` (N, 3) -> ``planes`` (12, N)
    with rows ``a, b, c`` of ``e0, e1, e2, depth`` (``value = a * x + b * y + c``), and
    ``area2`` (N,) twice the absolute area.  ``e_i`` is twice the area of the triangle
    (pixel, v_j, v_k), signed to be >= 0 inside, so ``l_i = e_i / area2``.  A shared edge
    gives its two triangles edge functions that are exact negatives of each other (same
    products, same order of operations), so no pixel centre on it is lost (watertight).
    """
    x = [tri[:, i, 0].contiguous() for i in range(3)]
    y = [tri[:, i, 1].contiguous() for i in range(3)]
    d = [depth[:, i].contiguous() for i in range(3)]
    area2 = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0])
    sign = torch.where(area2 < 0, -1.0, 1.0).to(tri.dtype)
    rows = []
    for j, k in ((1, 2), (2, 0), (0, 1)):
        rows += [(y[j] - y[k]) * sign, (x[k] - x[j]) * sign, (x[j] * y[k] - x[k] * y[j]) * sign]
    area2 = area2.abs()
    inv = 1.0 / torch.where(area2 == 0, torch.ones_like(area2), area2)
    for c in range(3):  # depth = sum_i l_i d_i
        rows.append((rows[c] * d[0] + rows[3 + c] * d[1] + rows[6 + c] * d[2]) * inv)
    return torch.stack(rows), area2


def _check(screen: torch.Tensor, faces: torch.Tensor, size) -> tuple[int, int]:
    if not isinstance(screen, torch.Tensor) or screen.ndim != 3 or screen.shape[-1] != 3:
        shape = tuple(getattr(screen, "shape", ()))
        raise RenderError(f"screen vertices must be a (B, V, 3) tensor, got shape {shape}")
    if not screen.is_floating_point():
        raise RenderError(f"screen vertices must be floating point, got {screen.dtype}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise RenderError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= screen.shape[1]):
        raise RenderError(f"faces index vertices outside 0..{screen.shape[1] - 1}")
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise RenderError(f"image size must be positive, got {(h, w)}")
    return h, w


def rasterize(
    screen: torch.Tensor,
    faces: torch.Tensor,
    size: tuple[int, int],
    *,
    perspective: bool = False,
    near: float = 1e-6,
    max_candidates: int = 1 << 22,
) -> Fragments:
    """Rasterise a batch of triangle meshes with a z-buffer.

    Shapes: ``screen`` (B, V, 3) pixel ``x, y`` and depth (see module doc); ``faces``
    (F, 3) int vertex indices shared by the batch; ``size`` = ``(H, W)``
    -> :class:`Fragments` of (B, H, W).
    """
    faces = torch.as_tensor(faces, device=screen.device if torch.is_tensor(screen) else None)
    h, w = _check(screen, faces, size)
    faces = faces.long()
    bsz, f = screen.shape[0], faces.shape[0]
    device, out_dtype = screen.device, screen.dtype
    tri = screen.detach().to(torch.float64)[:, faces].reshape(bsz * f, 3, 3)
    xy, z = tri[..., :2], tri[..., 2]
    ok = torch.isfinite(tri).all(dim=(1, 2))
    key_depth = z
    if perspective:
        ok &= (z > near).all(dim=1)
        key_depth = -1.0 / torch.where(z > near, z, torch.ones_like(z))
    planes, area2 = _plane_coefficients(torch.where(ok[:, None, None], xy, 0.0), key_depth)
    ok &= area2 != 0

    lo = torch.ceil(xy.amin(dim=1)).clamp(min=0)
    hi = torch.floor(xy.amax(dim=1))
    hi = torch.minimum(hi, torch.tensor([w - 1.0, h - 1.0], dtype=hi.dtype, device=device))
    ok &= (hi >= lo).all(dim=1)
    lo = torch.where(ok[:, None], lo, 0.0).long()
    span = torch.where(ok[:, None], hi, -1.0).long() - lo + 1  # (N, 2) bbox width, height
    count = span[:, 0] * span[:, 1]

    buf = torch.full((bsz * h * w,), _EMPTY, dtype=torch.int64, device=device)
    bw, lo_x, lo_y = span[:, 0].contiguous(), lo[:, 0].contiguous(), lo[:, 1].contiguous()
    live = torch.nonzero(count > 0).squeeze(1)
    if live.numel():
        ends = torch.cumsum(count[live], 0)
        # Chunk boundaries: consecutive faces whose candidate counts sum <= max_candidates.
        cuts = torch.searchsorted(
            ends, torch.arange(max_candidates, int(ends[-1]) + max_candidates, max_candidates,
                               device=device), right=True)
        start = 0
        for stop in [int(c) for c in cuts]:
            stop = max(stop, start + 1)
            if start >= live.numel():
                break
            _scatter_chunk(buf, live[start:stop], count, bw, lo_x, lo_y, planes, h, w, f)
            start = stop

    return _resolve(buf, tri, planes, area2, bsz, h, w, f, perspective, out_dtype)


def _plane_at(planes: torch.Tensor, row: int, owner, pxf, pyf) -> torch.Tensor:
    """``a * x + b * y + c`` of plane ``row`` (rows of ``planes`` (12, N) are
    ``a, b, c`` of ``e0, e1, e2, depth``) for each candidate; (P,)."""
    a, b, c = (planes[3 * row + i].index_select(0, owner) for i in range(3))
    return torch.addcmul(torch.addcmul(c, a, pxf), b, pyf)


def _scatter_chunk(buf, ids, count, bw, lo_x, lo_y, planes, h, w, f) -> None:
    """Test every candidate pixel of the faces ``ids`` and z-min them into ``buf``."""
    cnt = count.index_select(0, ids)
    owner = torch.repeat_interleave(ids, cnt)  # (P,) flattened (batch, face) index
    first = torch.cumsum(cnt, 0) - cnt
    local = torch.arange(int(cnt.sum()), device=buf.device) - torch.repeat_interleave(first, cnt)
    width = bw.index_select(0, owner)
    px = lo_x.index_select(0, owner) + local % width
    py = lo_y.index_select(0, owner) + local // width
    pxf, pyf = px.to(planes.dtype), py.to(planes.dtype)
    inside = _plane_at(planes, 0, owner, pxf, pyf) >= 0
    inside &= _plane_at(planes, 1, owner, pxf, pyf) >= 0
    inside &= _plane_at(planes, 2, owner, pxf, pyf) >= 0
    keep = torch.nonzero(inside).squeeze(1)
    if not keep.numel():
        return
    owner, px, py = owner[keep], px[keep], py[keep]
    depth = _plane_at(planes, 3, owner, pxf[keep], pyf[keep])
    pixel = (owner // f) * (h * w) + py * w + px
    key = _ordered_int(depth) * (1 << 32) + owner
    buf.scatter_reduce_(0, pixel, key, reduce="amin")


def _resolve(buf, tri, planes, area2, bsz, h, w, f, perspective, out_dtype) -> Fragments:
    device = buf.device
    hit = torch.nonzero(buf != _EMPTY).squeeze(1)
    owner = buf[hit] & _LOW32
    rem = hit % (h * w)
    px, py = (rem % w).to(planes.dtype), (rem // w).to(planes.dtype)
    bary = torch.stack([_plane_at(planes, i, owner, px, py) for i in range(3)], dim=1)
    bary = bary / area2[owner, None]
    if perspective:
        z = tri[owner, :, 2]
        wgt = bary / z
        depth = 1.0 / wgt.sum(dim=1)
        bary = wgt * depth[:, None]
    else:
        depth = _plane_at(planes, 3, owner, px, py)
    face = torch.full((bsz * h * w,), -1, dtype=torch.int64, device=device)
    face[hit] = owner % f
    zbuf = torch.full((bsz * h * w,), float("inf"), dtype=out_dtype, device=device)
    zbuf[hit] = depth.to(out_dtype)
    bbuf = torch.zeros((bsz * h * w, 3), dtype=out_dtype, device=device)
    bbuf[hit] = bary.to(out_dtype)
    return Fragments(face.view(bsz, h, w), zbuf.view(bsz, h, w), bbuf.view(bsz, h, w, 3))
