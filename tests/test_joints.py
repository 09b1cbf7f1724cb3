"""Keypoint tables derived from names must reproduce SPIN's published index arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from eft.body import joints as J

GT = J.NUM_OPENPOSE_JOINTS  # SPIN-49 index of GT joint 0

# SPIN's published arrays (constants.py / datasets preprocessing), written out here
# only to compare against the name-derived ones.
SPIN_COCO_TO_GT24 = [19, 20, 21, 22, 23, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0]
SPIN_MPII_TO_GT24 = [0, 1, 2, 3, 4, 5, 14, 15, 12, 13, 6, 7, 8, 9, 10, 11]
SPIN_POSETRACK_TO_GT24 = [19, 12, 13, 23, 22, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0]
SPIN_H36M_TO_J14 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]
EFT_OPENPOSE18_FROM_GT24 = [19, 12, 8, 7, 6, 9, 10, 11, 2, 1, 0, 3, 4, 5, 21, 20, 23, 22]
SPIN_J49_FLIP_PERM = [0, 1, 5, 6, 7, 2, 3, 4, 8, 12, 13, 14, 9, 10, 11, 16, 15, 18, 17, 22, 23,
                      24, 19, 20, 21] + [25 + i for i in [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6,
                                                          12, 13, 14, 15, 16, 17, 18, 19, 21,
                                                          20, 23, 22]]
SPIN_SMPL_JOINT_FLIP = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18,
                        21, 20, 23, 22]


def gt24(fmt: str) -> list[int]:
    idx = J.KEYPOINT_FORMATS[fmt].spin_indices
    assert all(i >= GT for i in idx)
    return [i - GT for i in idx]


# --------------------------------------------------------------------------- tables

def test_coco17_matches_spin():
    assert gt24("coco17") == SPIN_COCO_TO_GT24
    f = J.KEYPOINT_FORMATS["coco17"]
    assert f.spin_names[f.joint_names.index("left_shoulder")] == "Left Shoulder"
    assert f.spin_names[f.joint_names.index("left_eye")] == "Left Eye"


def test_mpii16_matches_spin():
    assert gt24("mpii16") == SPIN_MPII_TO_GT24
    f = J.KEYPOINT_FORMATS["mpii16"]
    assert f.spin_names[f.joint_names.index("upper_neck")] == "Neck (LSP)"
    assert f.spin_names[f.joint_names.index("head_top")] == "Top of Head (LSP)"


def test_lsp14_is_first_14_gt():
    assert gt24("lsp14") == list(range(14))


def test_posetrack17_matches_spin_including_swapped_ears():
    assert gt24("posetrack17") == SPIN_POSETRACK_TO_GT24
    f = J.KEYPOINT_FORMATS["posetrack17"]
    assert f.spin_names[f.joint_names.index("left_ear")] == "Right Ear"
    assert f.spin_names[f.joint_names.index("right_ear")] == "Left Ear"
    assert J.POSETRACK17_NAMES[5:] == J.COCO17_NAMES[5:]


def test_crowdpose14():
    assert gt24("crowdpose14") == [9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0, 13, 12]


def test_openpose_formats():
    assert J.KEYPOINT_FORMATS["openpose25"].spin_indices == tuple(range(25))
    f18 = J.KEYPOINT_FORMATS["openpose18"]
    assert f18.spin_names == tuple("OP " + n for n in J.OPENPOSE18_NAMES)
    assert f18.spin_indices == (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)


def test_openpose18_validity_order():
    assert list(J.OPENPOSE18_FROM_GT24) == EFT_OPENPOSE18_FROM_GT24


def test_h36m():
    assert list(J.H36M_TO_J14) == SPIN_H36M_TO_J14
    f = J.KEYPOINT_FORMATS["h36m17"]
    names = dict(zip(f.joint_names, f.spin_names, strict=True))
    assert names["Pelvis"] == "Pelvis (MPII)"
    assert names["Thorax"] == "Thorax (MPII)"
    assert names["Head"] == "Head (H36M)"
    assert names["Jaw"] == "Jaw (H36M)"
    assert names["Spine"] == "Spine (H36M)"
    assert names["Left Wrist"] == "Left Wrist"
    # J14 is the LSP order, expressed in SPIN names
    assert J.J14_NAMES == J.SPIN_GT24_NAMES[:14]


def test_every_format_maps_each_joint_once():
    for f in J.KEYPOINT_FORMATS.values():
        assert len(f.joint_names) == len(f.spin_names) == len(f.spin_indices)
        assert len(set(f.spin_indices)) == len(f.spin_indices)
        assert all(J.SPIN49_NAMES[i] == n for i, n in zip(f.spin_indices, f.spin_names,
                                                          strict=True))


def test_existing_tables_unchanged():
    assert len(J.SPIN49_NAMES) == 49 and len(J.SPIN49_INDEX) == 49
    assert J.SPIN49_INDEX["Left Shoulder"] == GT + 9
    assert len(J.COCO23_NAMES) == 23


def test_format_from_names_rejects_bad_tables():
    with pytest.raises(ValueError, match="no SPIN-49 name"):
        J.KeypointFormat.from_names("x", ("a", "b"), {"a": "Nose"})
    with pytest.raises(ValueError, match="not SPIN-49 names"):
        J.KeypointFormat.from_names("x", ("a",), {"a": "Elbow"})
    with pytest.raises(ValueError, match="same SPIN-49 joint"):
        J.KeypointFormat.from_names("x", ("a", "b"), {"a": "Nose", "b": "Nose"})


# --------------------------------------------------------------------------- to/from SPIN-49

@pytest.mark.parametrize("fmt", sorted(J.KEYPOINT_FORMATS))
@pytest.mark.parametrize("lead", [(), (5,), (2, 3)])
def test_round_trip_numpy(fmt, lead):
    k = J.KEYPOINT_FORMATS[fmt].num_joints
    rng = np.random.default_rng(0)
    kps = rng.normal(size=lead + (k, 3)) * 100
    kps[..., 2] = rng.integers(0, 3, size=lead + (k,))
    kps49 = J.to_spin49(kps, fmt)
    assert isinstance(kps49, np.ndarray) and kps49.shape == lead + (49, 3)
    back = J.from_spin49(kps49, fmt)
    assert back.dtype == kps.dtype
    np.testing.assert_array_equal(back, kps)
    # joints the format does not have are entirely zero, confidence included
    absent = sorted(set(range(49)) - set(J.KEYPOINT_FORMATS[fmt].spin_indices))
    assert np.all(kps49[..., absent, :] == 0)


@pytest.mark.parametrize("fmt", sorted(J.KEYPOINT_FORMATS))
def test_round_trip_torch(fmt):
    k = J.KEYPOINT_FORMATS[fmt].num_joints
    kps = torch.randn(4, k, 3, dtype=torch.float32, requires_grad=True)
    kps49 = J.to_spin49(kps, fmt)
    assert isinstance(kps49, torch.Tensor) and kps49.shape == (4, 49, 3)
    assert kps49.dtype == torch.float32
    back = J.from_spin49(kps49, fmt)
    assert torch.equal(back, kps)
    back.sum().backward()  # differentiable end to end
    assert torch.equal(kps.grad, torch.ones_like(kps))


@settings(max_examples=50, deadline=None)
@given(
    fmt=st.sampled_from(sorted(J.KEYPOINT_FORMATS)),
    data=st.data(),
)
def test_round_trip_any_values(fmt, data):
    k = J.KEYPOINT_FORMATS[fmt].num_joints
    kps = data.draw(arrays(np.float32, (k, 3), elements=st.floats(-1e6, 1e6, width=32)))
    np.testing.assert_array_equal(J.from_spin49(J.to_spin49(kps, fmt), fmt), kps)


def test_two_channel_input_gets_confidence_one_and_ints_become_float():
    kps = np.arange(34).reshape(17, 2)
    kps49 = J.to_spin49(kps, "coco17")
    assert kps49.dtype == np.float64
    idx = list(J.KEYPOINT_FORMATS["coco17"].spin_indices)
    np.testing.assert_array_equal(kps49[idx, :2], kps)
    assert np.all(kps49[idx, 2] == 1)
    np.testing.assert_array_equal(J.from_spin49(kps49, "coco17")[:, :2], kps)


def test_binarize_visibility():
    kps = np.zeros((17, 3))
    kps[:, 2] = [0, 1, 2] * 5 + [2, 0]
    out = J.to_spin49(kps, "coco17", binarize_visibility=True)
    back = J.from_spin49(out, "coco17")
    np.testing.assert_array_equal(back[:, 2], (kps[:, 2] > 0).astype(float))
    tout = J.to_spin49(torch.from_numpy(kps), "coco17", binarize_visibility=True)
    np.testing.assert_array_equal(tout.numpy(), out)


def test_shape_and_name_errors():
    with pytest.raises(ValueError, match=r"\(\.\.\., 17, 2\|3\)"):
        J.to_spin49(np.zeros((16, 3)), "coco17")
    with pytest.raises(ValueError, match="49, 3"):
        J.from_spin49(np.zeros((48, 3)), "coco17")
    with pytest.raises(KeyError, match="known formats"):
        J.to_spin49(np.zeros((17, 3)), "coco18")
    assert J.get_format("COCO17") is J.KEYPOINT_FORMATS["coco17"]


# --------------------------------------------------------------------------- flips

def test_flip_perms_match_spin():
    assert list(J.J49_FLIP_PERM) == SPIN_J49_FLIP_PERM
    assert list(J.SMPL24_FLIP_PERM) == SPIN_SMPL_JOINT_FLIP
    expected72 = [3 * j + k for j in SPIN_SMPL_JOINT_FLIP for k in range(3)]
    assert list(J.SMPL_POSE_FLIP_PERM) == expected72


def test_mirror_names():
    assert J.mirror_name("OP RShoulder") == "OP LShoulder"
    assert J.mirror_name("OP LSmallToe") == "OP RSmallToe"
    assert J.mirror_name("Right Ankle") == "Left Ankle"
    assert J.mirror_name("REye") == "LEye"
    assert J.mirror_name("left_collar") == "right_collar"
    for central in ("Neck (LSP)", "Top of Head (LSP)", "OP MidHip", "Nose", "spine1"):
        assert J.mirror_name(central) == central
    for names in (J.SPIN49_NAMES, J.SMPL24_NAMES, J.COCO23_NAMES, J.MPII16_NAMES,
                  J.OPENPOSE18_NAMES, J.H36M17_NAMES, J.CROWDPOSE14_NAMES):
        perm = J.flip_permutation(names)
        assert [perm[p] for p in perm] == list(range(len(names)))  # an involution
    with pytest.raises(ValueError, match="no mirror"):
        J.flip_permutation(("Left Ankle", "Nose"))


def test_flip_keypoints_involution_and_example():
    rng = np.random.default_rng(1)
    kps = rng.normal(size=(3, 49, 3))
    np.testing.assert_array_equal(J.flip_keypoints(J.flip_keypoints(kps)), kps)
    pixels = rng.integers(0, 640, size=(3, 49, 3)).astype(np.float64)
    np.testing.assert_array_equal(
        J.flip_keypoints(J.flip_keypoints(pixels, width=640), width=640), pixels
    )
    t = torch.from_numpy(kps)
    assert torch.equal(J.flip_keypoints(J.flip_keypoints(t)), t)

    one = np.zeros((49, 3))
    ra, la, nose = J.SPIN49_INDEX["Right Ankle"], J.SPIN49_INDEX["Left Ankle"], 0
    one[ra] = [0.3, 0.5, 1.0]
    one[nose] = [0.1, -0.2, 0.7]
    f = J.flip_keypoints(one)
    np.testing.assert_array_equal(f[la], [-0.3, 0.5, 1.0])
    np.testing.assert_array_equal(f[ra], [-0.0, 0.0, 0.0])
    np.testing.assert_array_equal(f[nose], [-0.1, -0.2, 0.7])
    assert one[ra, 0] == 0.3  # input untouched

    px = np.zeros((49, 3))
    px[ra] = [10.0, 20.0, 1.0]
    fp = J.flip_keypoints(px, width=100)
    np.testing.assert_array_equal(fp[la], [89.0, 20.0, 1.0])


def _rodrigues(aa: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(aa)
    if angle < 1e-12:
        return np.eye(3)
    k = aa / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def test_flip_smpl_pose():
    rng = np.random.default_rng(2)
    pose = rng.normal(size=(4, 72))
    np.testing.assert_array_equal(J.flip_smpl_pose(J.flip_smpl_pose(pose)), pose)
    t = torch.from_numpy(pose)
    assert torch.equal(J.flip_smpl_pose(J.flip_smpl_pose(t)), t)

    one = np.zeros(72)
    one[0:3] = [0.1, 0.2, 0.3]   # global orient (pelvis)
    one[3:6] = [0.4, 0.5, 0.6]   # left_hip
    flipped = J.flip_smpl_pose(one)
    np.testing.assert_array_equal(flipped[0:3], [0.1, -0.2, -0.3])
    np.testing.assert_array_equal(flipped[6:9], [0.4, -0.5, -0.6])  # now on right_hip
    np.testing.assert_array_equal(flipped[3:6], [0.0, 0.0, 0.0])

    # the y/z negation is the reflection x -> -x conjugating each rotation
    m = np.diag([-1.0, 1.0, 1.0])
    for j in range(24):
        src = J.SMPL24_FLIP_PERM[j]
        np.testing.assert_allclose(
            _rodrigues(flipped.reshape(24, 3)[j]),
            m @ _rodrigues(one.reshape(24, 3)[src]) @ m,
            atol=1e-12,
        )
    with pytest.raises(ValueError, match="72"):
        J.flip_smpl_pose(np.zeros(69))


# --------------------------------------------------------------------------- real data

def _coco_people(path):
    data = json.loads(path.read_text())
    return data, [a for a in data["annotations"] if "keypoints" in a]


def test_coco_sample_round_trip(shared_data):
    data, anns = _coco_people(shared_data / "coco_sample" / "test_coco.json")
    assert tuple(data["categories"][0]["keypoints"]) == J.COCO17_NAMES
    assert len(anns) == 14
    kps = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, 17, 3)
    kps49 = J.to_spin49(kps, "coco17")
    np.testing.assert_array_equal(J.from_spin49(kps49, "coco17"), kps)
    for a in anns:  # and one person at a time
        one = np.array(a["keypoints"], dtype=np.float64).reshape(17, 3)
        np.testing.assert_array_equal(J.from_spin49(J.to_spin49(one, "coco17"), "coco17"), one)

    ann = next(a for a in anns if a["id"] == 442619)
    one = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)
    left_shoulder = one[J.COCO17_NAMES.index("left_shoulder")]
    np.testing.assert_array_equal(left_shoulder, [399, 108, 2])
    mapped = J.to_spin49(one, "coco17")
    np.testing.assert_array_equal(mapped[GT + 9], left_shoulder)
    assert J.SPIN49_NAMES[GT + 9] == "Left Shoulder"
    binar = J.to_spin49(one, "coco17", binarize_visibility=True)
    np.testing.assert_array_equal(binar[GT + 9], [399, 108, 1])
    # people without keypoints map to all-zero SPIN-49
    empty = [i for i, a in enumerate(anns) if a["num_keypoints"] == 0]
    assert empty and np.all(kps49[empty] == 0)


def test_crowdpose_sample_round_trip(shared_data):
    data, anns = _coco_people(shared_data / "crowdpose_sample" / "test_crowdpose.json")
    assert tuple(data["categories"][0]["keypoints"]) == J.CROWDPOSE14_NAMES
    kps = np.array([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, 14, 3)
    kps49 = J.to_spin49(kps, "crowdpose14")
    np.testing.assert_array_equal(J.from_spin49(kps49, "crowdpose14"), kps)
    np.testing.assert_array_equal(
        kps49[:, J.SPIN49_INDEX["Top of Head (LSP)"]], kps[:, J.CROWDPOSE14_NAMES.index("head")]
    )


def test_mpii_sample_round_trip(shared_data):
    people = json.loads((shared_data / "mpii_sample" / "test_mpii.json").read_text())
    kps = np.array(
        [np.concatenate([np.array(p["joints"]), np.array(p["joints_vis"])[:, None]], axis=1)
         for p in people]
    )
    assert kps.shape == (len(people), 16, 3)
    kps49 = J.to_spin49(kps, "mpii16")
    np.testing.assert_array_equal(J.from_spin49(kps49, "mpii16"), kps)
    np.testing.assert_array_equal(
        kps49[:, J.SPIN49_INDEX["Pelvis (MPII)"]], kps[:, J.MPII16_NAMES.index("pelvis")]
    )
