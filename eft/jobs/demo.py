"""``eft demo``: the whole pipeline on a small synthetic dataset, with no download.

1. Sample people from the pose bank's validation poses (``eft.synthetic.exemplars``: shape,
   orientation, camera, annotation noise, missing joints, truncation), render each one
   with the open body model into an image (grey mesh on a plain background,
   ``eft.render``) and write a COCO ``person_keypoints`` file for them (boxes from the
   rendered silhouettes, 17 noisy keypoints).
2. Run the same job as ``eft fit fitting/demo.yaml`` (COCO reader, the shipped prior,
   EFT's defaults) into ``annotations/demo``: every annotation format, and overlay PNGs.
3. Print where everything is, the job summary, and how close the fits are to the
   ground truth the synthetic people carry.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from eft.annotations import read_annotations
from eft.body import BodyModel
from eft.body.joints import COCO17_NAMES, from_spin49
from eft.geometry.metrics import pa_mpjpe
from eft.render import PerspectiveCamera, render_mesh
from eft.synthetic.exemplars import SyntheticConfig, generate
from eft.synthetic.pose_bank import load_pose_bank

from .config import ANNOTATION_FORMATS, config_from_dict
from .runner import CONFIG_FILE, run_job
from .store import MANIFEST, PARTS_DIR, SKIPPED, SUMMARY

__all__ = ["demo_config", "make_demo_dataset", "run_demo", "DEMO_JSON"]

log = logging.getLogger("eft.jobs")

DEMO_JSON = "person_keypoints_demo.json"
_IMAGE_SIZES = ((320, 240), (240, 320))
_BACKGROUND = (0.93, 0.94, 0.96)
_GREY = (0.62, 0.62, 0.64)


def demo_config(out: str | os.PathLike = "annotations/demo") -> dict:
    """The demo job (``fitting/demo.yaml`` is this with ``out = annotations/demo``)."""
    out = Path(out).as_posix()
    return {
        "datasets": [{"kind": "coco", "path": f"{out}/dataset/{DEMO_JSON}",
                      "image_root": f"{out}/dataset/images", "name": "demo",
                      "split": "synthetic"}],
        "body": "open",
        "regressor": "default",
        "eft": {},
        "output": {"dir": out, "formats": list(ANNOTATION_FORMATS), "name": "fits",
                   "overlays": 4},
        "batch_size": 16,
        "chunk_size": 8,
        "devices": ["cpu"],
        "workers": 1,
    }


def make_demo_dataset(folder: str | os.PathLike, n_people: int = 12, seed: int = 0,
                      body=None):
    """Render ``n_people`` synthetic people into ``folder/images`` and write
    ``folder/person_keypoints_demo.json`` (its ``info.seed`` is ``seed``, so a dataset
    records how to draw it again); returns ``(json path, SyntheticSet)``."""
    import torch
    from PIL import Image

    folder = Path(folder)
    images = folder / "images"
    if images.exists():
        shutil.rmtree(images)
    images.mkdir(parents=True)
    body = body if body is not None else BodyModel.load("open")
    cfg = SyntheticConfig(image_sizes=_IMAGE_SIZES, truncation_prob=0.1)
    people = generate(load_pose_bank().val().poses, n_people, seed, cfg, body=body)
    with torch.no_grad():
        verts = body(torch.as_tensor(people.pose, dtype=torch.float32),
                     torch.as_tensor(people.betas, dtype=torch.float32)).vertices
    coco: dict[str, Any] = {
        "info": {"description": "eft demo: synthetic people rendered with the open body model",
                 "version": "1", "seed": int(seed)},
        "images": [], "annotations": [],
        "categories": [{"id": 1, "name": "person", "supercategory": "person",
                        "keypoints": list(COCO17_NAMES), "skeleton": []}]}
    for i in range(n_people):
        w, h = (int(v) for v in people.image_size[i])
        cam = PerspectiveCamera(float(people.focal[i]), people.principal_point[i],
                                people.transl[i])
        r = render_mesh(verts[i], body.faces, cam, (h, w), color=_GREY, supersample=2)
        name = f"demo_{i:04d}.png"
        Image.fromarray(r.image(background=_BACKGROUND)).save(images / name)
        mask = r.alpha[0].numpy() > 0
        ys, xs = np.nonzero(mask)
        if len(xs):
            bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                    float(ys.max() - ys.min() + 1)]
        else:
            bbox = [0.0, 0.0, 0.0, 0.0]
        kp = from_spin49(people.keypoints[i], "coco17").astype(np.float64)
        present = kp[:, 2] > 0
        flat = np.where(present[:, None], np.c_[kp[:, :2], np.full(17, 2.0)], 0.0)
        coco["images"].append({"id": i + 1, "file_name": name, "width": w, "height": h})
        coco["annotations"].append({
            "id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
            "keypoints": [round(float(v), 2) for v in flat.reshape(-1)],
            "num_keypoints": int(present.sum()), "bbox": [round(v, 2) for v in bbox],
            "area": float(mask.sum())})
    path = folder / DEMO_JSON
    path.write_text(json.dumps(coco))
    return path, people


def _accuracy(result, people) -> str:
    """Median PA-MPJPE (mm) of the fits' 24 GT keypoints against the ground truth."""
    import torch

    files = result.summary.outputs
    if "h5" not in files:
        return ""
    aset = read_annotations(files["h5"])
    if len(aset) == 0:
        return ""
    rows = [int(a.id.rsplit("/", 1)[1]) - 1 for a in aset]  # annotation id = index + 1
    pred = torch.as_tensor(np.stack([a.fit.keypoints3d[25:] for a in aset]))
    gt = torch.as_tensor(people.keypoints3d[rows, 25:], dtype=pred.dtype)
    err = pa_mpjpe(pred.double(), gt.double()).numpy() * 1000.0
    return (f"3D error   median PA-MPJPE {np.median(err):.0f} mm over {len(err)} fits "
            "(24 SPIN GT keypoints vs the synthetic ground truth)")


def run_demo(out: str | os.PathLike = "annotations/demo", n_people: int = 12,
             progress: bool = True, seed: int = 0) -> str:
    """Make the demo dataset (its people drawn with ``seed``), fit it, write every format
    and overlays; returns the report to print."""
    import torch

    t0 = time.perf_counter()
    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log.info("rendering %d synthetic people into %s", n_people, out / "dataset")
    json_path, people = make_demo_dataset(out / "dataset", n_people, seed=seed)
    for name in (MANIFEST, SKIPPED, SUMMARY):  # always a fresh run
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / PARTS_DIR, ignore_errors=True)
    shutil.rmtree(out / "overlays", ignore_errors=True)
    config = config_from_dict(demo_config(out), source="eft demo")
    result = run_job(config, progress=progress)
    overlays = sorted((out / "overlays").glob("*.png"))
    lines = [
        f"eft demo: {n_people} synthetic people rendered with the open body model, "
        "fitted by EFT from the shipped prior",
        f"dataset    {json_path} + {out / 'dataset' / 'images'}/ (COCO person_keypoints)",
        result.summary.format(),
    ]
    acc = _accuracy(result, people)
    if acc:
        lines.append(acc)
    lines += [
        f"overlays   {len(overlays)} PNG(s) in {out / 'overlays'}/ (the rejected fits, then "
        "the worst accepted)",
        f"job files  {out / MANIFEST}, {out / PARTS_DIR}/ (resumable: "
        f"eft fit {shlex.quote(str(out / CONFIG_FILE))})",
        f"total      {time.perf_counter() - t0:.1f} s",
    ]
    return "\n".join(lines)
