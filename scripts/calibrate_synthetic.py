"""Real 2D-label statistics against the synthetic generators', side by side.

    python scripts/calibrate_synthetic.py

On COCO 2017 train (people with >= 6 keypoints), MPII train (CSV) and synthetic people
from the v1 generator (COCO-17 labels) and the v2 one (``eft.train.prior.V2_SYNTHETIC``,
restricted to the COCO-17 slots for the comparison), over the 12 COCO limb joints and
the 5 face points:

* per-joint missing rate (label absent);
* whole-limb missing: share of people missing both joints of a limb's distal pair
  (elbow+wrist, knee+ankle), the co-missing structure a prior must expect;
* lower body missing: share missing all of hips, knees and ankles (truncation by the
  frame or occlusion);
* box framing: the crop side (200 x scale) over the long side of the labelled
  keypoints' box, median and 10th / 90th percentiles.

Writes ``scripts/results/calibrate_synthetic.{json,md}``.  The synthetic side uses
the pose bank's val clips (a few thousand people are enough for rates).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from eft.body import BodyModel
from eft.body.joints import SPIN49_INDEX
from eft.data.readers import read_dataset
from eft.synthetic.exemplars import SyntheticConfig, annotated_slots, generate
from eft.synthetic.pose_bank import load_pose_bank
from eft.train.prior import V2_SYNTHETIC

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EFT_TEST_DATA", ROOT.parent / "shared" / "data"))

JOINTS = ("Nose", "Left Eye", "Right Eye", "Left Ear", "Right Ear",
          "Left Shoulder", "Right Shoulder", "Left Elbow", "Right Elbow", "Left Wrist",
          "Right Wrist", "Left Hip", "Right Hip", "Left Knee", "Right Knee", "Left Ankle",
          "Right Ankle")
PAIRS = {"left arm": ("Left Elbow", "Left Wrist"), "right arm": ("Right Elbow", "Right Wrist"),
         "left leg": ("Left Knee", "Left Ankle"), "right leg": ("Right Knee", "Right Ankle")}
LOWER = ("Left Hip", "Right Hip", "Left Knee", "Right Knee", "Left Ankle", "Right Ankle")


def stats(kp: np.ndarray, scale: np.ndarray, joints=JOINTS) -> dict:
    """Statistics of (N, 49, 3) keypoints (image px) and (N,) scales."""
    present = kp[..., 2] > 0
    idx = {n: SPIN49_INDEX[n] for n in joints}
    out = {"n": int(len(kp)),
           "missing": {n: float(1 - present[:, i].mean()) for n, i in idx.items()}}
    out["limb_missing"] = {k: float((~present[:, SPIN49_INDEX[a]]
                                     & ~present[:, SPIN49_INDEX[b]]).mean())
                           for k, (a, b) in PAIRS.items()}
    out["lower_body_missing"] = float((~present[:, [SPIN49_INDEX[n] for n in LOWER]])
                                      .all(1).mean())
    sel = present[:, list(idx.values())]
    xy = kp[:, list(idx.values()), :2]
    ok = sel.sum(1) >= 2
    big = np.where(sel[ok][..., None], xy[ok], np.nan)
    side = np.nanmax(np.nanmax(big, 1) - np.nanmin(big, 1), 1)
    ratio = 200.0 * scale[ok] / np.maximum(side, 1e-6)
    out["framing"] = {f"p{q}": float(np.percentile(ratio, q)) for q in (10, 50, 90)}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-synthetic", type=int, default=4000,
                    help="synthetic people drawn per generator (default 4000)")
    ap.add_argument("--seed", type=int, default=5, help="the synthetic people's seed")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = {}
    coco = read_dataset("coco", DATA / "coco2017_keypoints/person_keypoints_train2017.json")
    res["COCO 2017 train"] = stats(np.stack([e.keypoints for e in coco.exemplars]),
                                   np.array([e.scale for e in coco.exemplars]))
    mpii = read_dataset("mpii", DATA / "mpii_2d/mpii_human_pose.csv")
    mp_joints = tuple(j for j in JOINTS if j not in ("Nose", "Left Eye", "Right Eye",
                                                      "Left Ear", "Right Ear"))
    res["MPII train (CSV)"] = stats(np.stack([e.keypoints for e in mpii.exemplars]),
                                    np.array([e.scale for e in mpii.exemplars]), mp_joints)
    body = BodyModel.load()
    poses = load_pose_bank().val().poses
    coco_slots = annotated_slots("coco17")
    for name, cfg in (("synthetic v1 (default generator)", SyntheticConfig()),
                      ("synthetic v2 (V2_SYNTHETIC, COCO-17 slots)", V2_SYNTHETIC)):
        s = generate(poses, args.n_synthetic, args.seed, cfg, body=body)
        kp = s.keypoints * coco_slots[None, :, None]
        res[name] = stats(kp, s.scale)
    out = {"seconds": round(time.perf_counter() - t0, 1), "sets": res}
    dst = ROOT / "scripts" / "results"
    (dst / "calibrate_synthetic.json").write_text(json.dumps(out, indent=1))
    names = list(res)
    lines = ["# calibrate_synthetic: real 2D-label statistics vs the synthetic generators", "",
             "Command: `python scripts/calibrate_synthetic.py`. Missing = label absent. "
             "Framing = crop side (200 x scale) / long side of the labelled keypoints' box.",
             "", "| statistic | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]

    def row(label, get):
        vals = []
        for n in names:
            try:
                vals.append(f"{get(res[n]):.3f}")
            except KeyError:
                vals.append("-")
        lines.append(f"| {label} | " + " | ".join(vals) + " |")

    for j in JOINTS:
        row(f"missing {j}", lambda r, j=j: r["missing"][j])
    for k in PAIRS:
        row(f"{k} (both distal joints) missing", lambda r, k=k: r["limb_missing"][k])
    row("lower body missing", lambda r: r["lower_body_missing"])
    for q in ("p10", "p50", "p90"):
        row(f"framing {q}", lambda r, q=q: r["framing"][q])
    (dst / "calibrate_synthetic.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
