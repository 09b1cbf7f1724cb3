"""BVH motion-capture files: parser, units, forward kinematics, resampling.

Conventions
-----------
* **End Sites are kept as joints without channels.**  Each ``End Site`` block
  becomes a joint named ``"<parent>_end"`` (a numeric suffix is added in the
  unlikely case of a clash) with ``channels[j] == []`` and ``is_end_site[j]``
  set.  Forward kinematics therefore returns their positions too (head top,
  toe tips, finger tips), and every array indexed by joint covers them.  The
  number of *animated* joints is ``(~clip.is_end_site).sum()``.
* **Rotations** follow the BVH convention: a joint's rotation channels are
  Euler angles in degrees, applied as intrinsic rotations in the order they are
  listed.  With column vectors, ``CHANNELS 3 Zrotation Xrotation Yrotation``
  means ``R = Rz(z) @ Rx(x) @ Ry(y)``, and a point ``v`` in the joint's frame is
  ``R @ v + local_position`` in its parent's frame.
* **Translations**: a joint's local position is ``OFFSET + (Xposition,
  Yposition, Zposition)`` for whichever position channels it has (missing ones
  count as 0).  Root joints normally have a zero OFFSET, so their position is
  the translation channels.  Exporters that write *absolute* local positions
  into a non-root joint's position channels are not distinguished.
* **Parsing**: whitespace, tabs and any line endings are accepted; joint names
  are single tokens.  The number of motion lines must equal the ``Frames:``
  header and every line must hold one finite value per channel.
* **Axes**: positions are in the BVH world frame, which for the CMU clips is
  right-handed and Y-up, with the subject's rest pose facing +Z and the
  subject's left side on +X -- the same axes as SMPL's canonical frame.
* **Units** are not stored in BVH files.  :func:`infer_units` guesses them
  from the skeleton's standing height (see :func:`standing_height`); pass
  ``units=`` to :func:`read_bvh` to override.  Besides metric units and inches
  there is ``"cmu_asf"``: the length unit of the CMU ASF skeletons
  (``:units length 0.45``, i.e. 1/0.45 inch = 5.644 cm), which BVH files
  converted directly from CMU ASF/AMC keep.

Notes on the shared CMU clips (``shared/data/mocap``)
-----------------------------------------------------
* Frame 0 of every ``cmu_daz43`` clip is the same near-T reference pose and the
  next ~4 frames blend from it into the motion; frame 0 of ``cmu_31/01_01`` is
  also a reference pose.  Drop these frames when building pose banks.
* The ``salsa`` clips' header says ``Frame Time: 0.00833333`` (120 fps) while the
  source's readme.txt says 60 fps; use ``read_bvh(path, frame_time=1/60)`` if
  the readme is right.
* All ``cmu_daz43`` files share one standard skeleton (identical OFFSETs), not
  the subjects' own, so feet can sink below or float above the floor.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

import numpy as np

from eft.errors import EftError

__all__ = [
    "BvhError",
    "BvhClip",
    "UNIT_METRES",
    "read_bvh",
    "parse_bvh",
    "infer_units",
    "standing_height",
    "rest_positions",
    "euler_to_rotmat",
    "forward_kinematics",
    "subsample",
    "to_smpl_frame",
]

# Metres per file unit.
UNIT_METRES: dict[str, float] = {
    "m": 1.0,
    "cm": 0.01,
    "mm": 0.001,
    "in": 0.0254,
    "cmu_asf": 0.0254 / 0.45,
}

# Typical adult standing height used to pick the units, and the range of
# heights (in metres) that counts as a plausible human skeleton.
_TYPICAL_HEIGHT_M = 1.7
_PLAUSIBLE_HEIGHT_M = (1.0, 2.6)

_CHANNEL_NAMES: dict[str, str] = {
    f"{axis}{kind}".lower(): f"{axis}{kind}"
    for axis in "XYZ"
    for kind in ("position", "rotation")
}
_AXIS_INDEX = {"X": 0, "Y": 1, "Z": 2}

_FRAMES_RE = re.compile(r"^frames\s*:\s*(\S+)\s*$", re.IGNORECASE)
_FRAME_TIME_RE = re.compile(r"^frame\s*time\s*:\s*(\S+)\s*$", re.IGNORECASE)


class BvhError(EftError):
    """A BVH file is malformed or cannot be interpreted."""


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class BvhClip:
    """One BVH clip: skeleton (HIERARCHY) plus raw channel values (MOTION).

    Attributes
    ----------
    names : tuple of str, (J,)
        Joint names in file order (depth-first, as declared); End Sites included
        as ``"<parent>_end"``.
    parents : (J,) int64
        Parent index of each joint, -1 for a root.  Parents precede children.
    offsets : (J, 3) float64
        OFFSET of each joint in its parent's frame, in file units.
    channels : list of list of str
        Channel names of each joint in file order (``[]`` for End Sites),
        normalised to ``Xposition`` ... ``Zrotation``.
    frame_time : float
        Seconds per frame.
    motion : (T, C) float64
        Raw channel values; columns follow ``channels`` joint by joint.
    source : str
        Where the clip came from (file path or a label).
    units : str
        Length unit of offsets and position channels, a key of ``UNIT_METRES``.
    is_end_site : (J,) bool
        Which joints are End Sites.

    Arrays are read-only; derive modified clips with ``dataclasses.replace``.
    """

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: list[list[str]]
    frame_time: float
    motion: np.ndarray
    source: str
    units: str
    is_end_site: np.ndarray = field(default=cast(np.ndarray, None))  # None: no End Sites

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        n = len(names)
        parents = _readonly(np.array(self.parents, dtype=np.int64).reshape(-1))
        offsets = _readonly(np.array(self.offsets, dtype=np.float64).reshape(-1, 3))
        channels = [[str(c) for c in chans] for chans in self.channels]
        motion = _readonly(np.array(self.motion, dtype=np.float64))
        if self.is_end_site is None:
            is_end = np.zeros(n, dtype=bool)
        else:
            is_end = np.array(self.is_end_site, dtype=bool).reshape(-1)
        is_end = _readonly(is_end)
        if len(parents) != n or len(offsets) != n or len(channels) != n or len(is_end) != n:
            raise ValueError(
                f"BvhClip: names, parents, offsets, channels and is_end_site must all have "
                f"{n} entries, got {len(parents)}, {len(offsets)}, {len(channels)}, "
                f"{len(is_end)}"
            )
        for j, p in enumerate(parents):
            if not -1 <= p < j:
                raise ValueError(f"BvhClip: joint {j} ({names[j]}) has parent {p}; "
                                 "parents must precede their children")
        num_channels = sum(len(c) for c in channels)
        if motion.ndim != 2 or motion.shape[1] != num_channels:
            raise ValueError(f"BvhClip: motion must have shape (T, {num_channels}), "
                             f"got {motion.shape}")
        if self.units not in UNIT_METRES:
            raise ValueError(f"BvhClip: unknown units {self.units!r}; "
                             f"expected one of {sorted(UNIT_METRES)}")
        if not (math.isfinite(self.frame_time) and self.frame_time > 0):
            raise ValueError(f"BvhClip: frame_time must be positive, got {self.frame_time}")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "motion", motion)
        object.__setattr__(self, "is_end_site", is_end)
        object.__setattr__(self, "frame_time", float(self.frame_time))

    @property
    def fps(self) -> float:
        """Frames per second, ``1 / frame_time`` (not rounded)."""
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def num_joints(self) -> int:
        """Number of joints, End Sites included."""
        return len(self.names)

    @property
    def num_channels(self) -> int:
        return int(self.motion.shape[1])

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Names of the animated joints (End Sites excluded), in file order."""
        return tuple(n for n, e in zip(self.names, self.is_end_site, strict=True) if not e)

    @property
    def metres_per_unit(self) -> float:
        return UNIT_METRES[self.units]

    @property
    def channel_start(self) -> np.ndarray:
        """(J,) index of each joint's first column in ``motion``."""
        counts = np.array([len(c) for c in self.channels], dtype=np.int64)
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    def index(self, name: str) -> int:
        """Index of the joint called ``name``; ``KeyError`` if there is none."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"{self.source}: no joint named {name!r}") from None


# ----------------------------------------------------------------------------- parsing


def read_bvh(
    path: str | Path,
    *,
    units: str | None = None,
    frame_time: float | None = None,
) -> BvhClip:
    """Read a BVH file.

    ``units`` overrides unit inference (a key of ``UNIT_METRES``); ``frame_time``
    overrides the file's ``Frame Time:`` header (for files whose header is known
    to be wrong).  Raises :class:`BvhError` for unreadable or malformed files.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BvhError(f"{path}: cannot read BVH file ({exc.strerror or exc})") from None
    text = data.decode("utf-8", errors="replace")
    return parse_bvh(text, source=str(path), units=units, frame_time=frame_time)


def parse_bvh(
    text: str,
    *,
    source: str = "<bvh>",
    units: str | None = None,
    frame_time: float | None = None,
) -> BvhClip:
    """Parse BVH file contents; see :func:`read_bvh`."""
    lines = text.lstrip("\ufeff").splitlines()
    first = _next_nonblank(lines, 0)
    if first is None or lines[first].strip().upper() != "HIERARCHY":
        raise BvhError(f"{source}: not a BVH file (it does not start with 'HIERARCHY')")
    motion_at = None
    for i in range(first + 1, len(lines)):
        if lines[i].strip().upper() == "MOTION":
            motion_at = i
            break
    if motion_at is None:
        raise BvhError(f"{source}: no 'MOTION' section")

    tokens = [
        (tok, i + 1) for i in range(first + 1, motion_at) for tok in lines[i].split()
    ]
    names, parents, offsets, channels, is_end = _parse_hierarchy(tokens, source, motion_at + 1)
    num_channels = sum(len(c) for c in channels)
    file_frame_time, motion = _parse_motion(lines, motion_at + 1, num_channels, source)

    if frame_time is not None:
        if not (math.isfinite(frame_time) and frame_time > 0):
            raise BvhError(f"{source}: frame_time override must be positive, got {frame_time}")
        file_frame_time = float(frame_time)

    clip = BvhClip(
        names=tuple(names),
        parents=np.array(parents, dtype=np.int64),
        offsets=np.array(offsets, dtype=np.float64).reshape(-1, 3),
        channels=channels,
        frame_time=file_frame_time,
        motion=motion,
        source=source,
        units="m",  # placeholder until the units are known
        is_end_site=np.array(is_end, dtype=bool),
    )
    if units is None:
        units = infer_units(clip)[0]
    elif units not in UNIT_METRES:
        raise BvhError(f"{source}: unknown units {units!r}; expected one of "
                       f"{sorted(UNIT_METRES)}")
    return replace(clip, units=units)


def _next_nonblank(lines: Sequence[str], start: int) -> int | None:
    for i in range(start, len(lines)):
        if lines[i].strip():
            return i
    return None


def _parse_float(tok: str, what: str, line: int, source: str) -> float:
    try:
        value = float(tok)
    except ValueError:
        raise BvhError(f"{source}: line {line}: {what} is not a number: {tok!r}") from None
    if not math.isfinite(value):
        raise BvhError(f"{source}: line {line}: {what} is not finite: {tok!r}")
    return value


def _parse_hierarchy(tokens: list[tuple[str, int]], source: str, motion_line: int):
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float] | None] = []
    channels: list[list[str] | None] = []
    is_end: list[bool] = []
    stack: list[int] = []
    pos = 0
    n = len(tokens)

    def take(what: str) -> tuple[str, int]:
        nonlocal pos
        if pos >= n:
            raise BvhError(f"{source}: line {motion_line}: HIERARCHY ends while expecting {what}")
        item = tokens[pos]
        pos += 1
        return item

    def expect_brace(after: str) -> None:
        tok, line = take(f"'{{' after {after}")
        if tok != "{":
            raise BvhError(f"{source}: line {line}: expected '{{' after {after}, got {tok!r}")

    def add_joint(name: str, parent: int, end_site: bool) -> None:
        names.append(name)
        parents.append(parent)
        offsets.append(None)
        channels.append([] if end_site else None)
        is_end.append(end_site)
        stack.append(len(names) - 1)

    while pos < n:
        tok, line = take("a keyword")
        key = tok.upper()
        if key in ("ROOT", "JOINT"):
            if key == "ROOT" and stack:
                raise BvhError(f"{source}: line {line}: ROOT inside joint {names[stack[-1]]!r}")
            if key == "JOINT" and not stack:
                raise BvhError(f"{source}: line {line}: JOINT outside any ROOT")
            if stack and is_end[stack[-1]]:
                raise BvhError(f"{source}: line {line}: JOINT inside an End Site")
            name, name_line = take(f"a name after {tok}")
            if name in ("{", "}"):
                raise BvhError(f"{source}: line {name_line}: {tok} has no name")
            if name in names:
                raise BvhError(f"{source}: line {name_line}: duplicate joint name {name!r}")
            expect_brace(f"{tok} {name}")
            add_joint(name, stack[-1] if stack else -1, end_site=False)
        elif key == "END":
            site, site_line = take("'Site' after 'End'")
            if site.upper() != "SITE":
                raise BvhError(f"{source}: line {site_line}: expected 'End Site', "
                               f"got 'End {site}'")
            if not stack or is_end[stack[-1]]:
                raise BvhError(f"{source}: line {line}: End Site outside a joint")
            parent = stack[-1]
            base = f"{names[parent]}_end"
            name, k = base, 1
            while name in names:
                k += 1
                name = f"{base}{k}"
            expect_brace("End Site")
            add_joint(name, parent, end_site=True)
        elif key == "OFFSET":
            if not stack:
                raise BvhError(f"{source}: line {line}: OFFSET outside any joint")
            j = stack[-1]
            if offsets[j] is not None:
                raise BvhError(f"{source}: line {line}: second OFFSET for {names[j]!r}")
            values = []
            for axis in "XYZ":
                vtok, vline = take(f"{axis} of OFFSET of {names[j]!r}")
                values.append(_parse_float(vtok, f"OFFSET {axis} of {names[j]!r}", vline,
                                           source))
            offsets[j] = values
        elif key == "CHANNELS":
            if not stack:
                raise BvhError(f"{source}: line {line}: CHANNELS outside any joint")
            j = stack[-1]
            if is_end[j]:
                raise BvhError(f"{source}: line {line}: End Site of {names[parents[j]]!r} "
                               "has CHANNELS")
            if channels[j] is not None:
                raise BvhError(f"{source}: line {line}: second CHANNELS for {names[j]!r}")
            ctok, cline = take(f"the channel count of {names[j]!r}")
            try:
                count = int(ctok)
            except ValueError:
                count = -1
            if count < 0:
                raise BvhError(f"{source}: line {cline}: bad channel count {ctok!r} "
                               f"for {names[j]!r}")
            chans: list[str] = []
            for _ in range(count):
                chtok, chline = take(f"{count} channel names for {names[j]!r}")
                canonical = _CHANNEL_NAMES.get(chtok.lower())
                if canonical is None:
                    raise BvhError(f"{source}: line {chline}: unknown channel {chtok!r} "
                                   f"for {names[j]!r} (CHANNELS {count} declared)")
                if canonical in chans:
                    raise BvhError(f"{source}: line {chline}: channel {canonical} repeated "
                                   f"for {names[j]!r}")
                chans.append(canonical)
            channels[j] = chans
        elif tok == "}":
            if not stack:
                raise BvhError(f"{source}: line {line}: unmatched '}}'")
            j = stack.pop()
            what = f"End Site of {names[parents[j]]!r}" if is_end[j] else f"joint {names[j]!r}"
            if offsets[j] is None:
                raise BvhError(f"{source}: line {line}: {what} has no OFFSET")
            if channels[j] is None:
                raise BvhError(f"{source}: line {line}: {what} has no CHANNELS")
        else:
            raise BvhError(f"{source}: line {line}: unexpected {tok!r} in HIERARCHY")

    if stack:
        raise BvhError(f"{source}: line {motion_line}: joint {names[stack[-1]]!r} is not "
                       "closed with '}' before MOTION")
    if not names:
        raise BvhError(f"{source}: HIERARCHY has no ROOT joint")
    return names, parents, offsets, channels, is_end


def _parse_motion(
    lines: list[str], start: int, num_channels: int, source: str
) -> tuple[float, np.ndarray]:
    i = _next_nonblank(lines, start)
    frames = _FRAMES_RE.match(lines[i].strip()) if i is not None else None
    if i is None or frames is None:
        where = f"line {i + 1}" if i is not None else "end of file"
        raise BvhError(f"{source}: {where}: missing 'Frames:' header after MOTION")
    frames_tok = frames.group(1)
    try:
        num_frames = int(frames_tok)
    except ValueError:
        num_frames = -1
    if num_frames < 0:
        raise BvhError(f"{source}: line {i + 1}: bad frame count {frames_tok!r}")

    j = _next_nonblank(lines, i + 1)
    match = _FRAME_TIME_RE.match(lines[j].strip()) if j is not None else None
    if j is None or match is None:
        where = f"line {j + 1}" if j is not None else "end of file"
        raise BvhError(f"{source}: {where}: missing 'Frame Time:' header after 'Frames:'")
    frame_time = _parse_float(match.group(1), "Frame Time", j + 1, source)
    if frame_time <= 0:
        raise BvhError(f"{source}: line {j + 1}: Frame Time must be positive, got {frame_time}")

    rows = [k for k in range(j + 1, len(lines)) if lines[k].strip()]
    if len(rows) != num_frames:
        kind = "truncated motion" if len(rows) < num_frames else "extra motion lines"
        raise BvhError(f"{source}: {kind}: 'Frames: {num_frames}' but the file has "
                       f"{len(rows)} motion lines")
    if num_frames == 0:
        return frame_time, np.zeros((0, num_channels), dtype=np.float64)

    tokens: list[str] = []
    for k in rows:
        values = lines[k].split()
        if len(values) != num_channels:
            raise BvhError(f"{source}: line {k + 1}: motion line has {len(values)} values, "
                           f"expected {num_channels} (one per channel)")
        tokens.extend(values)
    try:
        motion = np.array(tokens, dtype=np.float64)
    except ValueError:
        for k in rows:
            for tok in lines[k].split():
                _parse_float(tok, "motion value", k + 1, source)
        raise  # pragma: no cover - the loop above always finds the bad value
    if not np.isfinite(motion).all():
        bad = int(np.flatnonzero(~np.isfinite(motion))[0]) // max(num_channels, 1)
        raise BvhError(f"{source}: line {rows[bad] + 1}: motion line has a non-finite value")
    return frame_time, motion.reshape(num_frames, num_channels)


# ------------------------------------------------------------------------------- units


def rest_positions(clip: BvhClip) -> np.ndarray:
    """(J, 3) joint positions of the rest pose (all channels zero), in file units."""
    pos = np.zeros((clip.num_joints, 3))
    for j, p in enumerate(clip.parents):
        pos[j] = clip.offsets[j] + (pos[p] if p >= 0 else 0.0)
    return pos


def standing_height(clip: BvhClip) -> float:
    """Estimated standing height of the skeleton, in file units (Y up).

    The rest pose of a mocap skeleton often has splayed legs (CMU) or is not
    quite upright, so its vertical extent underestimates the height.  Instead:

    * above the root: the largest rest-pose height of any joint (the head end);
    * below the root: along the path from the root to every joint, bones that
      point mostly downward (more than 30 degrees below horizontal) count with
      their full length, as if the leg were straightened, and other bones with
      their vertical component only (hip offsets, foot-to-toe bones); the
      largest such drop is taken.

    The sum is the stature from the lowest foot point to the head End Site;
    it needs the skeleton to be Y-up.
    """
    rest = rest_positions(clip)
    roots = np.flatnonzero(clip.parents < 0)
    up = 0.0
    drop = np.zeros(clip.num_joints)
    for j, p in enumerate(clip.parents):
        if p < 0:
            continue
        off = clip.offsets[j]
        length = float(np.linalg.norm(off))
        steep = length > 0 and -off[1] > 0.5 * length
        drop[j] = drop[p] + (length if steep else -off[1])
    for r in roots:
        up = max(up, float((rest[:, 1] - rest[r, 1]).max()))
    return up + float(drop.max())


def infer_units(clip: BvhClip) -> tuple[str, float]:
    """Guess the length unit from the skeleton's standing height.

    Returns ``(units, metres_per_unit)``: the unit of ``UNIT_METRES`` that makes
    :func:`standing_height` closest (in ratio) to 1.7 m.  Raises :class:`BvhError`
    if even that height is outside 1.0-2.6 m (then pass ``units=`` explicitly).
    """
    height = standing_height(clip)
    if not height > 0:
        raise BvhError(f"{clip.source}: cannot infer units: the skeleton has no height "
                       "along Y (pass units= explicitly)")
    best = min(UNIT_METRES,
               key=lambda u: abs(math.log(height * UNIT_METRES[u] / _TYPICAL_HEIGHT_M)))
    metres = height * UNIT_METRES[best]
    lo, hi = _PLAUSIBLE_HEIGHT_M
    if not lo <= metres <= hi:
        raise BvhError(f"{clip.source}: cannot infer units: skeleton height {height:.4g} "
                       f"file units is not a human height in any of {sorted(UNIT_METRES)} "
                       "(pass units= explicitly)")
    return best, UNIT_METRES[best]


# -------------------------------------------------------------------- forward kinematics


def _axis_rotation(axis: int, degrees: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation by ``degrees`` about coordinate axis 0, 1 or 2."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    out = np.zeros(a.shape + (3, 3))
    i, k = [(1, 2), (2, 0), (0, 1)][axis]  # the plane rotated: y->z, z->x, x->y
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., k, k] = c
    out[..., i, k] = -s
    out[..., k, i] = s
    return out


def euler_to_rotmat(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Rotation matrices from BVH Euler angles.

    ``angles_deg`` (..., len(order)) in degrees, ``order`` such as ``"ZXY"``
    naming the axis of each column.  Returns ``R_first @ R_second @ ...``
    (intrinsic rotations in the listed order), shape (..., 3, 3).
    """
    angles = np.asarray(angles_deg, dtype=np.float64)
    order = order.upper()
    if angles.shape[-1:] != (len(order),) or any(a not in _AXIS_INDEX for a in order):
        raise ValueError(f"euler_to_rotmat: order {order!r} does not fit angles of shape "
                         f"{angles.shape}")
    out = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for k, axis in enumerate(order):
        out = out @ _axis_rotation(_AXIS_INDEX[axis], angles[..., k])
    return out


def _select_frames(motion: np.ndarray, frames) -> np.ndarray:
    if frames is None:
        return motion
    if isinstance(frames, slice):
        return motion[frames]
    idx = np.asarray(frames)
    if idx.dtype == bool:
        return motion[idx]
    return motion[np.atleast_1d(idx).astype(np.int64)]


def forward_kinematics(
    clip: BvhClip,
    frames=None,
    metres: bool = True,
    *,
    return_rotations: bool = False,
):
    """World positions of every joint (End Sites included), vectorised over frames.

    ``frames``: None (all), a slice, an index array or a boolean mask into the
    clip's frames.  ``metres``: scale positions by ``clip.metres_per_unit``
    (otherwise they are in file units).  Returns positions (T, J, 3) float64, or
    ``(positions, rotations)`` with global rotations (T, J, 3, 3) when
    ``return_rotations`` (an End Site gets its parent's rotation).  Axes are
    the file's (Y-up for CMU); see :func:`to_smpl_frame`.
    """
    motion = _select_frames(clip.motion, frames)
    num_frames = motion.shape[0]
    num_joints = clip.num_joints
    positions = np.zeros((num_frames, num_joints, 3))
    rotations = np.zeros((num_frames, num_joints, 3, 3))
    eye = np.broadcast_to(np.eye(3), (num_frames, 3, 3))
    starts = clip.channel_start
    for j in range(num_joints):
        chans = clip.channels[j]
        local_pos = np.broadcast_to(clip.offsets[j], (num_frames, 3)).copy()
        rot_cols: list[int] = []
        rot_order = ""
        for k, name in enumerate(chans):
            col = int(starts[j]) + k
            if name.endswith("position"):
                local_pos[:, _AXIS_INDEX[name[0]]] += motion[:, col]
            else:
                rot_cols.append(col)
                rot_order += name[0]
        local_rot = euler_to_rotmat(motion[:, rot_cols], rot_order) if rot_cols else eye
        p = int(clip.parents[j])
        if p < 0:
            positions[:, j] = local_pos
            rotations[:, j] = local_rot
        else:
            parent_rot = rotations[:, p]
            positions[:, j] = positions[:, p] + np.einsum("tab,tb->ta", parent_rot, local_pos)
            rotations[:, j] = parent_rot @ local_rot
    if metres:
        positions *= clip.metres_per_unit
    if return_rotations:
        return positions, rotations
    return positions


# ---------------------------------------------------------------------------- resampling


def subsample(clip: BvhClip, target_fps: float) -> BvhClip:
    """Keep every ``stride``-th frame, ``stride = round(clip.fps / target_fps)``.

    Frames 0, stride, 2*stride, ... are kept and ``frame_time`` becomes
    ``clip.frame_time * stride``, so the result runs at ``clip.fps / stride``,
    the achievable rate nearest to ``target_fps``; a target up to twice the clip's
    rate returns the clip unchanged, a higher one raises :class:`BvhError` (no
    upsampling).
    """
    if not (math.isfinite(target_fps) and target_fps > 0):
        raise ValueError(f"subsample: target_fps must be positive, got {target_fps}")
    ratio = clip.fps / target_fps
    stride = int(round(ratio))
    if stride < 1:
        raise BvhError(f"{clip.source}: cannot subsample {clip.fps:.4g} fps to "
                       f"{target_fps:.4g} fps (upsampling is not supported)")
    if stride == 1:
        return clip
    return replace(clip, motion=clip.motion[::stride], frame_time=clip.frame_time * stride)


# --------------------------------------------------------------------------- axes / units


def to_smpl_frame(positions: np.ndarray, *, units: str = "m", up: str = "y") -> np.ndarray:
    """Convert BVH world positions (..., 3) to SMPL's axes, in metres.

    ``units``: the unit ``positions`` are in (``"m"`` for :func:`forward_kinematics`
    output with ``metres=True``, else ``clip.units``).  ``up``: the file's up axis.
    CMU BVH files are right-handed and Y-up with the subject's left on +X when
    facing +Z, exactly SMPL's canonical axes, so for ``up="y"`` only the scale
    changes.  For ``up="z"`` the points are rotated by -90 degrees about X
    (``(x, y, z) -> (x, z, -y)``) to make Y the up axis.  The facing direction
    (heading) is left as it is: retargeting solves the global orientation.
    """
    if units not in UNIT_METRES:
        raise ValueError(f"to_smpl_frame: unknown units {units!r}; "
                         f"expected one of {sorted(UNIT_METRES)}")
    pts = np.asarray(positions, dtype=np.float64)
    if pts.shape[-1:] != (3,):
        raise ValueError(f"to_smpl_frame: positions must have shape (..., 3), got {pts.shape}")
    pts = pts * UNIT_METRES[units]
    up = up.lower()
    if up == "y":
        return pts
    if up == "z":
        return np.stack((pts[..., 0], pts[..., 2], -pts[..., 1]), axis=-1)
    raise ValueError(f"to_smpl_frame: up must be 'y' or 'z', got {up!r}")
