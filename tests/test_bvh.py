"""BVH parsing, forward kinematics, units, resampling and SMPL joint maps.

Real clips come from the shared CMU mocap data (``shared_data/mocap``); the
rotation-order and error-handling tests use small BVH texts written here.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from eft.body.joints import SMPL24_NAMES
from eft.errors import EftError
from eft.synthetic.mocap.bvh import (
    UNIT_METRES,
    BvhClip,
    BvhError,
    euler_to_rotmat,
    forward_kinematics,
    infer_units,
    parse_bvh,
    read_bvh,
    rest_positions,
    standing_height,
    subsample,
    to_smpl_frame,
)
from eft.synthetic.mocap.skeleton_maps import (
    SKELETON_MAPS,
    detect_skeleton,
    skeleton_map,
    smpl_joint_positions,
)
from tests.helpers import require_file

SMPL_INDEX = {n: i for i, n in enumerate(SMPL24_NAMES)}

# (relative path, frame_time override, expected skeleton, naming variant, fps, units)
# The salsa clips' header says 1/120 s but the source's readme.txt says they are
# 60 fps, so the 60 fps case reads one with an explicit frame_time.
CLIPS = [
    ("cmu_31/131_01.bvh", None, "cmu31", "cmu31_anatomical", 120, "cmu_asf"),
    ("cmu_31/01_01.bvh", None, "cmu31", "cmu31_bvh", 120, "cmu_asf"),
    ("cmu_daz43/cmu_subjects/16/16_01.bvh", None, "cmu31", "cmu31_asf", 30, "cmu_asf"),
    ("cmu_daz43/cmu_subjects/02/02_01.bvh", None, "daz43", "daz43", 120, "cm"),
    ("cmu_daz43/salsa/10.bvh", 1 / 60, "daz43", "daz43", 60, "cm"),
]
CLIP_IDS = [c[0].rsplit("/", 2)[-2] + "/" + c[0].rsplit("/", 1)[-1] for c in CLIPS]

_CACHE: dict[tuple[str, float | None], BvhClip] = {}


def _load(shared_data: Path, rel: str, frame_time: float | None) -> BvhClip:
    key = (rel, frame_time)
    if key not in _CACHE:
        path = require_file(shared_data / "mocap" / rel)
        _CACHE[key] = read_bvh(path, frame_time=frame_time)
    return _CACHE[key]


def _sample(clip: BvhClip, count: int = 150) -> np.ndarray:
    return np.unique(np.linspace(0, clip.num_frames - 1, min(count, clip.num_frames)).astype(int))


@pytest.fixture(params=CLIPS, ids=CLIP_IDS)
def real(request, shared_data):
    rel, frame_time, skeleton, variant, fps, units = request.param
    clip = _load(shared_data, rel, frame_time)
    text = (shared_data / "mocap" / rel).read_text()
    return clip, text, skeleton, variant, fps, units


# ------------------------------------------------------------------------ real clips


def test_frames_and_channels_match_the_file(real):
    clip, text, *_ = real
    header = int(re.search(r"Frames:\s*(\d+)", text).group(1))
    assert clip.num_frames == header
    motion_lines = text.split("MOTION", 1)[1].strip().splitlines()[2:]
    assert len([ln for ln in motion_lines if ln.strip()]) == header
    declared = [int(n) for n in re.findall(r"CHANNELS\s+(\d+)", text)]
    assert [len(c) for c in clip.channels if c] == [n for n in declared if n]
    assert clip.num_channels == sum(declared) == clip.motion.shape[1]
    assert len(clip.joint_names) == len(re.findall(r"\b(?:ROOT|JOINT)\s", text))
    assert int(clip.is_end_site.sum()) == len(re.findall(r"End Site", text))
    assert all(clip.channels[j] == [] for j in np.flatnonzero(clip.is_end_site))
    # the first motion line, parsed independently
    first = np.array(motion_lines[0].split(), dtype=float)
    np.testing.assert_array_equal(clip.motion[0], first)


def test_fps_skeleton_and_units(real):
    clip, _, skeleton, variant, fps, units = real
    assert clip.fps == pytest.approx(fps, rel=1e-3)
    assert detect_skeleton(clip) == skeleton
    assert skeleton_map(clip).variant == variant
    assert clip.units == units
    assert infer_units(clip) == (units, UNIT_METRES[units])
    height_m = standing_height(clip) * clip.metres_per_unit
    assert 1.4 <= height_m <= 2.1


def test_bone_lengths_are_constant_and_equal_offsets(real):
    clip, *_ = real
    pos = forward_kinematics(clip, frames=_sample(clip), metres=False)
    child = np.flatnonzero(clip.parents >= 0)
    # no non-root joint of these skeletons has position channels
    assert not any(
        c.endswith("position") for j in child for c in clip.channels[j]
    )
    length = np.linalg.norm(pos[:, child] - pos[:, clip.parents[child]], axis=-1)
    expected = np.linalg.norm(clip.offsets[child], axis=-1)
    scale = np.maximum(expected, 1.0)
    assert np.abs(length - expected).max(axis=0).max() < 1e-6 * scale.max()
    assert (np.abs(length - expected) <= 1e-6 * scale).all()


def test_root_follows_its_translation_channels(real):
    clip, *_ = real
    frames = _sample(clip, 20)
    pos = forward_kinematics(clip, frames=frames, metres=False)
    cols = [clip.channels[0].index(a) for a in ("Xposition", "Yposition", "Zposition")]
    np.testing.assert_allclose(pos[:, 0], clip.motion[frames][:, cols] + clip.offsets[0])
    metres = forward_kinematics(clip, frames=frames)
    np.testing.assert_allclose(metres, pos * clip.metres_per_unit)


def test_subsample_to_30_fps(real):
    clip, _, _, _, fps, _ = real
    stride = fps // 30
    sub = subsample(clip, 30)
    assert sub.fps == pytest.approx(30, rel=1e-3)
    assert sub.frame_time == pytest.approx(clip.frame_time * stride)
    assert sub.num_frames == len(range(0, clip.num_frames, stride))
    np.testing.assert_array_equal(sub.motion, clip.motion[::stride])
    assert sub.names == clip.names and sub.units == clip.units


def test_left_is_on_the_subjects_left(real):
    """Labels against geometry: facing from the feet (label-free), left = up x facing."""
    clip, *_ = real
    frames = np.concatenate([[0], _sample(clip, 40)])
    joints, mask = smpl_joint_positions(clip, forward_kinematics(clip, frames=frames))
    assert mask[[SMPL_INDEX[n] for n in (
        "left_hip", "right_hip", "left_shoulder", "right_shoulder", "left_ankle",
        "right_ankle", "left_foot", "right_foot")]].all()

    def j(name):
        return joints[:, SMPL_INDEX[name]]

    # Both feet together (left + right, so the labels cancel) point forward.
    toes = (j("left_foot") - j("left_ankle")) + (j("right_foot") - j("right_ankle"))
    toes[:, 1] = 0.0
    facing = toes / np.linalg.norm(toes, axis=-1, keepdims=True)
    leftward = np.cross([0.0, 1.0, 0.0], facing)
    hips = np.einsum("ti,ti->t", j("left_hip") - j("right_hip"), leftward)
    shoulders = np.einsum("ti,ti->t", j("left_shoulder") - j("right_shoulder"), leftward)
    assert hips[0] > 0.05 and shoulders[0] > 0.05  # first frame, metres
    assert (hips > 0).mean() >= 0.9 and (shoulders > 0).mean() >= 0.9
    assert (np.sign(hips) == np.sign(shoulders)).mean() >= 0.9


def test_smpl_joint_positions_mask_and_anatomy(real):
    clip, _, _, variant, *_ = real
    smap = SKELETON_MAPS[variant]
    pos = forward_kinematics(clip, frames=[0, clip.num_frames - 1])
    joints, mask = smpl_joint_positions(clip, pos)
    assert joints.shape == (2, 24, 3) and mask.shape == (24,)
    assert [n for n, m in zip(SMPL24_NAMES, mask, strict=True) if not m] == ["spine2"]
    assert smap.unmapped == ("spine2",)
    assert (joints[:, ~mask] == 0).all()
    for smpl_name, src in smap.sources.items():
        np.testing.assert_array_equal(joints[:, SMPL_INDEX[smpl_name]], pos[:, clip.index(src)])
    # rest pose: anatomical ordering along Y and limb lengths of a human (metres)
    rest = rest_positions(clip)[None] * clip.metres_per_unit
    r, _ = smpl_joint_positions(clip, rest)
    y = r[0, :, 1]
    for upper, lower in [("head", "neck"), ("neck", "pelvis"), ("left_hip", "left_knee"),
                         ("left_knee", "left_ankle"), ("right_knee", "right_ankle"),
                         ("spine3", "spine1")]:
        assert y[SMPL_INDEX[upper]] > y[SMPL_INDEX[lower]], (upper, lower)
    for a, b in [("left_hip", "left_knee"), ("left_knee", "left_ankle"),
                 ("left_shoulder", "left_elbow"), ("right_elbow", "right_wrist")]:
        bone = np.linalg.norm(r[0, SMPL_INDEX[a]] - r[0, SMPL_INDEX[b]])
        assert 0.15 < bone < 0.55, (a, b, bone)


def test_units_override_and_to_smpl_frame(shared_data):
    path = require_file(shared_data / "mocap" / "cmu_daz43" / "cmu_subjects" / "02" / "02_01.bvh")
    as_inches = read_bvh(path, units="in")
    assert as_inches.units == "in"
    frames = [0, 5]
    raw = forward_kinematics(as_inches, frames=frames, metres=False)
    np.testing.assert_allclose(forward_kinematics(as_inches, frames=frames), raw * 0.0254)
    np.testing.assert_allclose(to_smpl_frame(raw, units="in"), raw * 0.0254)
    np.testing.assert_allclose(to_smpl_frame(raw * 0.0254), raw * 0.0254)
    with pytest.raises(BvhError, match="unknown units"):
        read_bvh(path, units="furlong")


# ------------------------------------------------------------------ synthetic clips

# root (6 channels, Z X Y), a (3 channels, X Y Z), b (6 channels: translation + Y Z X)
# and b's End Site.  Frame 0 is the rest pose; frame 1 uses 90 degree turns only.
SYNTHETIC = """HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT a
  {
    OFFSET 0 10 0
    CHANNELS 3 Xrotation Yrotation Zrotation
    JOINT b
    {
      OFFSET 5 0 0
      CHANNELS 6 Xposition Yposition Zposition Yrotation Zrotation Xrotation
      End Site
      {
        OFFSET 0 0 2
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.5
0 0 0 0 0 0  0 0 0  0 0 0 0 0 0
1 2 3 90 90 0  0 90 90  0 1 0 90 0 0
"""


# 90 degree turns about each axis (right-handed, counter-clockwise seen from +axis).
def _rx(v):
    return np.array([v[0], -v[2], v[1]])


def _ry(v):
    return np.array([v[2], v[1], -v[0]])


def _rz(v):
    return np.array([-v[1], v[0], v[2]])


def test_rotation_orders_by_hand():
    clip = parse_bvh(SYNTHETIC, source="synthetic", units="m")
    assert clip.names == ("root", "a", "b", "b_end")
    assert clip.parents.tolist() == [-1, 0, 1, 2]
    assert clip.is_end_site.tolist() == [False, False, False, True]
    assert clip.channels[1] == ["Xrotation", "Yrotation", "Zrotation"]
    assert clip.fps == 2.0
    pos, rot = forward_kinematics(clip, return_rotations=True)
    assert pos.shape == (2, 4, 3) and rot.shape == (2, 4, 3, 3)

    # Rest pose: accumulated offsets.
    np.testing.assert_allclose(pos[0], [[0, 0, 0], [0, 10, 0], [5, 10, 0], [5, 10, 2]])
    np.testing.assert_allclose(rot[0], np.broadcast_to(np.eye(3), (4, 3, 3)), atol=1e-12)

    # Frame 1.  root: R0 = Rz(90) Rx(90) (listed order Z X Y, Y = 0).
    def r0(v):
        return _rz(_rx(v))

    # a: Ra = Rx(0) Ry(90) Rz(90); b: Rb = Ry(90) Rz(0) Rx(0), b translated by (0, 1, 0).
    def ra(v):
        return _ry(_rz(v))

    def rb(v):
        return _ry(v)

    root = np.array([1.0, 2.0, 3.0])
    a = root + r0(np.array([0.0, 10.0, 0.0]))
    b = a + r0(ra(np.array([5.0, 1.0, 0.0])))
    end = b + r0(ra(rb(np.array([0.0, 0.0, 2.0]))))
    # ... which by hand is:
    np.testing.assert_allclose([a, b, end], [[1, 2, 13], [2, 2, 18], [2, 2, 20]])
    np.testing.assert_allclose(pos[1], [root, a, b, end], atol=1e-12)

    # Global rotations: columns are the images of the unit axes.
    basis = np.eye(3)
    want_a = np.stack([r0(ra(e)) for e in basis], axis=1)
    want_b = np.stack([r0(ra(rb(e))) for e in basis], axis=1)
    np.testing.assert_allclose(rot[1, 1], want_a, atol=1e-12)
    np.testing.assert_allclose(rot[1, 2], want_b, atol=1e-12)
    np.testing.assert_allclose(rot[1, 3], rot[1, 2])

    # The wrong (reversed) order would put a elsewhere.
    assert not np.allclose(root + _rx(_rz(np.array([0.0, 10.0, 0.0]))), a)


def test_euler_to_rotmat_matches_explicit_matrices():
    def rx(t):
        c, s = np.cos(np.radians(t)), np.sin(np.radians(t))
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])

    def ry(t):
        c, s = np.cos(np.radians(t)), np.sin(np.radians(t))
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])

    def rz(t):
        c, s = np.cos(np.radians(t)), np.sin(np.radians(t))
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])

    angles = np.array([[30.0, -50.0, 120.0], [5.0, 80.0, -170.0]])
    got = euler_to_rotmat(angles, "ZXY")
    for k, (z, x, y) in enumerate(angles):
        np.testing.assert_allclose(got[k], rz(z) @ rx(x) @ ry(y), atol=1e-12)
    np.testing.assert_allclose(euler_to_rotmat(angles[0], "XYZ"),
                               rx(30) @ ry(-50) @ rz(120), atol=1e-12)


def test_parser_tolerates_crlf_tabs_and_blank_lines():
    messy = SYNTHETIC.replace("  ", "\t").replace("\n", "\r\n").replace(
        "Frames: 2", "Frames:\t2").replace("Frame Time: 0.5", "Frame Time:\t.5") + "\r\n\r\n"
    clean = parse_bvh(SYNTHETIC, units="m")
    clip = parse_bvh(messy, units="m")
    assert clip.names == clean.names
    np.testing.assert_array_equal(clip.motion, clean.motion)
    np.testing.assert_array_equal(clip.offsets, clean.offsets)
    assert clip.frame_time == 0.5


def test_synthetic_clip_needs_explicit_units():
    with pytest.raises(BvhError, match="cannot infer units"):
        parse_bvh(SYNTHETIC, source="tiny")


def test_subsample_edge_cases():
    clip = parse_bvh(SYNTHETIC, units="m")  # 2 fps
    assert subsample(clip, 2) is clip
    one = subsample(clip, 1)
    assert one.num_frames == 1 and one.frame_time == 1.0
    with pytest.raises(BvhError, match="upsampling"):
        subsample(clip, 10)
    with pytest.raises(ValueError):
        subsample(clip, 0)


def test_to_smpl_frame_z_up():
    pts = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(to_smpl_frame(pts, units="cm", up="z"), [[0.01, 0.03, -0.02]])


def test_unknown_skeleton_is_named():
    clip = parse_bvh(SYNTHETIC, source="tiny.bvh", units="m")
    expected = r"tiny\.bvh: unknown BVH skeleton with 3 joints: root, a, b$"
    with pytest.raises(BvhError, match=expected):
        detect_skeleton(clip)
    with pytest.raises(ValueError, match="shape"):
        smpl_joint_positions(clip, np.zeros((1, 3, 3)))


def _lines_replaced(old: str, new: str) -> str:
    assert old in SYNTHETIC
    return SYNTHETIC.replace(old, new)


@pytest.mark.parametrize("text, message", [
    (SYNTHETIC.rsplit("\n", 2)[0] + "\n", r"truncated motion: 'Frames: 2' but the file has 1"),
    (SYNTHETIC + "0 0 0 0 0 0  0 0 0  0 0 0 0 0 0\n", r"extra motion lines: 'Frames: 2'.* 3"),
    (_lines_replaced("0 0 0 0 0 0  0 0 0  0 0 0 0 0 0", "0 0 0 0 0 0  0 0 0  0 0 0 0 0"),
     r"line 24: motion line has 14 values, expected 15"),
    (_lines_replaced("Frames: 2\n", ""), r"missing 'Frames:' header"),
    (_lines_replaced("Frame Time: 0.5\n", ""), r"missing 'Frame Time:' header"),
    (_lines_replaced("Frames: 2", "Frames: two"), r"bad frame count 'two'"),
    (_lines_replaced("1 2 3 90", "1 2 x 90"), r"line 25: motion value is not a number: 'x'"),
    (_lines_replaced("1 2 3 90", "1 2 nan 90"), r"line 25: motion line has a non-finite value"),
    (_lines_replaced("MOTION\n", ""), r"no 'MOTION' section"),
    (_lines_replaced("HIERARCHY", "HIERARCHIE"), r"not a BVH file"),
    (_lines_replaced("Zrotation Xrotation Yrotation", "Zrotation Xrotation Wrotation"),
     r"line 5: unknown channel 'Wrotation'"),
    (_lines_replaced("CHANNELS 3 Xrotation", "CHANNELS 4 Xrotation"),
     r"unknown channel 'JOINT'"),
    (_lines_replaced("OFFSET 0 10 0", "OFFSET 0 10"), r"OFFSET Z of 'a' is not a number"),
    (SYNTHETIC.replace("}\n}\nMOTION", "}\nMOTION"), r"joint 'root' is not closed"),
    (_lines_replaced("JOINT b", "JOINT a"), r"duplicate joint name 'a'"),
    (_lines_replaced("      OFFSET 5 0 0\n", ""), r"joint 'b' has no OFFSET"),
    (_lines_replaced("Frame Time: 0.5", "Frame Time: 0"), r"Frame Time must be positive"),
])
def test_malformed_files_raise_one_line_errors(text, message):
    with pytest.raises(BvhError, match=message) as info:
        parse_bvh(text, source="bad.bvh", units="m")
    assert isinstance(info.value, EftError)
    assert "\n" not in str(info.value) and str(info.value).startswith("bad.bvh: ")


def test_read_bvh_file_errors(tmp_path):
    with pytest.raises(BvhError, match="cannot read BVH file"):
        read_bvh(tmp_path / "missing.bvh")
    path = tmp_path / "cut.bvh"
    path.write_text(SYNTHETIC.rsplit("\n", 2)[0] + "\n")
    with pytest.raises(BvhError, match=rf"{re.escape(str(path))}: truncated motion"):
        read_bvh(path, units="m")
    path.write_text(SYNTHETIC)
    assert read_bvh(path, units="m", frame_time=0.25).fps == 4.0


def test_clip_is_read_only():
    clip = parse_bvh(SYNTHETIC, units="m")
    with pytest.raises(ValueError):
        clip.motion[0, 0] = 1.0
    with pytest.raises(AttributeError):
        clip.units = "cm"  # type: ignore[misc]
