"""How well can a hidden limb be placed at all? 2D-only references for bench_real2d.

    python scripts/bench_heldout_2d.py                     # both references, --n 1000
    python scripts/bench_heldout_2d.py --steps 300 --out try    # a quick look

``bench_real2d`` scores a fit by where it puts a limb it was not shown (elbow + wrist,
or knee + ankle), from the rest of the body.  Its target (a mean error of at most 0.09
of the box on COCO val) is only meaningful next to what the task allows: the rest of
the body does not fix where a hidden hand is.  These references skip the 3D body and
learn the answer directly in 2D, from the real train labels the keypoint prior also
learns from (COCO 2017 train and MPII train, the MPII validation images left out), on
exactly the benchmark's task - one limb hidden, the crop rebuilt from the visible
keypoints (:func:`eft.fitting.heldout.make_held_out`).  They then score the same val
people as ``bench_real2d`` (same ``--n`` and ``--seed``):

* ``knn``: the ``--k`` train people whose ten visible limb joints (shoulders, hips and
  the three other limbs' distal joints) are closest after removing translation and
  size (centroid and RMS radius of those joints); their hidden joints, mapped into the
  query's frame the same way, averaged.  No training, no random numbers.
* ``mlp``: a multilayer perceptron (``--width``, 3 hidden layers) from the visible
  crop-normalised keypoints (every labelled slot, with its confidence) to every slot's
  position, trained (AdamW, cosine rate, seeded) to minimise the mean image-plane
  distance of the hidden joints; every train person appears with each of its four
  limbs hidden.

Neither is a 3D body, so neither is a fit; they estimate how much of the benchmark's
error any predictor from those inputs keeps.  ``--against`` (default
``scripts/results/bench_real2d.json``) pairs them with its methods on the same people.
Writes ``scripts/results/<--out>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from eft.body.joints import SPIN49_INDEX
from eft.data.readers import read_dataset
from eft.fitting.heldout import (
    LIMB_ORDER,
    LIMB_SLOTS,
    HeldOut,
    held_out_errors,
    limb_shape,
    make_held_out,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real2d import DATA, DATASETS, held_out_people, machine, paired  # noqa: E402
from pretrain_prior import REAL_LABELS  # noqa: E402  (the prior's real train labels)

RESULTS = Path(__file__).resolve().parent / "results"
#: The twelve limb joints every real format labels; the kNN compares people on these.
CORE = tuple(SPIN49_INDEX[n] for n in (
    "Right Ankle", "Right Knee", "Right Hip", "Left Hip", "Left Knee", "Left Ankle",
    "Right Wrist", "Right Elbow", "Right Shoulder", "Left Shoulder", "Left Elbow",
    "Left Wrist"))
REFERENCES = ("knn", "mlp")


# ---------------------------------------------------------------------------
# The task on arrays
# ---------------------------------------------------------------------------

def task_arrays(held: list[HeldOut]) -> dict[str, np.ndarray]:
    """Arrays of held-out people: ``visible`` (N, 49, 3) image px (hidden slots zero),
    ``labels`` (N, 49, 3), ``hidden`` (N, 49) bool, ``center`` (N, 2), ``scale`` (N,),
    ``limb`` (N,) int index into :data:`LIMB_ORDER`."""
    return {
        "visible": np.stack([h.exemplar.keypoints for h in held]).astype(np.float64),
        "labels": np.stack([h.labels for h in held]).astype(np.float64),
        "hidden": np.stack([h.hidden for h in held]),
        "center": np.stack([h.exemplar.center for h in held]).astype(np.float64),
        "scale": np.array([h.exemplar.scale for h in held], dtype=np.float64),
        "limb": np.array([LIMB_ORDER.index(h.limb) for h in held]),
    }


def every_limb(exemplars) -> list[HeldOut]:
    """Each eligible person four times, hiding each limb once (for training)."""
    return make_held_out([e for e in exemplars for _ in LIMB_ORDER])


def _normalise(xy: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Translation and size removed: ``(xy - c) / r`` with ``c`` the centroid and ``r``
    the RMS radius of the ``ref`` slots; ``xy`` (..., J, 2), ``ref`` index array."""
    c = xy[..., ref, :].mean(axis=-2, keepdims=True)
    r = np.sqrt(((xy[..., ref, :] - c) ** 2).sum(-1).mean(-1))[..., None, None]
    r = np.maximum(r, 1e-6)
    return (xy - c) / r, c, r


def knn_predict(train_labels: np.ndarray, query: dict[str, np.ndarray], k: int = 16,
                chunk: int = 256) -> np.ndarray:
    """(Q, 49, 2) image-px predictions of the query people's hidden limb joints.

    ``train_labels`` (N, 49, 3): train people with every :data:`CORE` joint labelled.
    For a query hiding limb L, the compared joints are the :data:`CORE` joints outside
    L; train people and the query are normalised on them (:func:`_normalise`), the
    ``k`` nearest by summed squared distance are taken, and their L joints (in their
    normalised frame) are averaged and mapped back with the query's centroid and radius.
    Slots outside the hidden limb are returned as the query's visible keypoints."""
    pred = query["visible"][..., :2].copy()
    train_xy = train_labels[:, :, :2]
    for li, limb in enumerate(LIMB_ORDER):
        rows = np.flatnonzero(query["limb"] == li)
        if len(rows) == 0:
            continue
        limb_slots = [s for s in CORE if s in LIMB_SLOTS[limb]]
        ref = np.array([s for s in CORE if s not in LIMB_SLOTS[limb]])
        tn, _, _ = _normalise(train_xy, ref)
        t_ref = tn[:, ref].reshape(len(tn), -1)
        t_hid = tn[:, limb_slots]
        for start in range(0, len(rows), chunk):
            r = rows[start:start + chunk]
            qn, qc, qr = _normalise(query["visible"][r, :, :2], ref)
            q_ref = qn[:, ref].reshape(len(r), -1)
            d = ((q_ref ** 2).sum(1)[:, None] + (t_ref ** 2).sum(1)[None]
                 - 2.0 * q_ref @ t_ref.T)
            nn_idx = np.argpartition(d, min(k, d.shape[1] - 1), axis=1)[:, :k]
            guess = t_hid[nn_idx].mean(axis=1)  # (q, L, 2)
            pred[r[:, None], np.array(limb_slots)[None]] = guess * qr + qc
    return pred


class InpaintMLP(nn.Module):
    """(B, 49, 3) crop-normalised visible keypoints + confidence -> (B, 49, 2)
    crop-normalised positions of every slot."""

    def __init__(self, width: int = 512, depth: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(49 * 3, width), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.ReLU()]
        layers.append(nn.Linear(width, 49 * 2))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(len(x), -1)).reshape(len(x), 49, 2)


def crop_tensors(task: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor,
                                                        torch.Tensor]:
    """``inputs`` (N, 49, 3) crop-normalised visible keypoints with confidence 0/1
    (missing slots zero), ``targets`` (N, 49, 2) crop-normalised labels, ``weights``
    (N, 49) the hidden slots (1) - what the MLP learns and is scored on."""
    c = task["center"][:, None, :]
    s = 100.0 * task["scale"][:, None, None]
    vis = task["visible"]
    on = (vis[..., 2] > 0)[..., None]
    x = np.concatenate([np.where(on, (vis[..., :2] - c) / s, 0.0), on.astype(float)], -1)
    y = (task["labels"][..., :2] - c) / s
    return (torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32),
            torch.as_tensor(task["hidden"], dtype=torch.float32))


#: The MLP's training losses: ``distance``, the metric itself (mean distance of the
#: hidden joints); ``all-squared``, the prior's 2D loss (mean squared distance over
#: every labelled joint, visible and hidden), an ablation.
LOSSES = ("distance", "all-squared")


def train_mlp(task: dict[str, np.ndarray], *, steps: int, batch_size: int = 512,
              lr: float = 1e-3, width: int = 512, seed: int = 0, loss: str = "distance",
              progress: bool = True) -> tuple[InpaintMLP, list[float]]:
    """:class:`InpaintMLP` trained on ``task`` (:func:`task_arrays` of train people) to
    minimise ``loss`` (:data:`LOSSES`; by default the mean crop-normalised distance of
    the hidden joints).  Returns the model and the mean loss of each tenth of the run."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x, y, w = crop_tensors(task)
    if loss == "all-squared":  # every labelled slot: the hidden ones and the inputs
        w = torch.maximum(w, x[..., 2])
    model = InpaintMLP(width)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=0.05 * lr)
    losses, curve = [], []
    for step in tqdm(range(steps), desc="mlp", disable=not progress, mininterval=5):
        idx = torch.randint(len(x), (batch_size,), generator=g)
        d = torch.linalg.norm(model(x[idx]) - y[idx], dim=-1)
        if loss == "all-squared":
            d = d ** 2
        value = (d * w[idx]).sum() / w[idx].sum().clamp(min=1.0)
        opt.zero_grad()
        value.backward()
        opt.step()
        sched.step()
        losses.append(value.item())
        if (step + 1) % max(1, steps // 10) == 0:
            curve.append(float(np.mean(losses)))
            losses = []
    return model, curve


@torch.no_grad()
def mlp_predict(model: InpaintMLP, task: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 49, 2) image-px predictions of every slot for the people of ``task``."""
    x, _, _ = crop_tensors(task)
    y = model.eval()(x).double().numpy()
    return task["center"][:, None, :] + 100.0 * task["scale"][:, None, None] * y


# ---------------------------------------------------------------------------
# Benchmark
# ---------------------------------------------------------------------------

def load_train(limit: int | None) -> tuple[list, dict]:
    """The eligible train people of both sets (every arm and leg labelled)."""
    from eft.fitting.heldout import limbs_labelled

    people, counts = [], {}
    for name, (kind, rel, opts) in REAL_LABELS.items():
        opts = {k: str(DATA / v) for k, v in opts.items()}
        ex = read_dataset(kind, DATA / rel, min_keypoints=6, **opts).exemplars
        kp = np.stack([e.keypoints for e in ex])
        ok = np.flatnonzero(limbs_labelled(kp) & (kp[:, list(CORE), 2] > 0).all(1))
        if limit is not None:
            ok = ok[:limit]
        people += [ex[i] for i in ok]
        counts[name] = {"read": len(ex), "eligible": int(len(ok))}
    return people, counts


def score(held: list[HeldOut], pred: np.ndarray) -> tuple[dict, np.ndarray]:
    errs = held_out_errors(held, pred)
    length = limb_shape(held, pred).length_ratio
    return ({**errs.summary().as_dict(),
             "hidden_length_ratio_median": float(np.nanmedian(length)),
             "by_limb": {k: v.as_dict() for k, v in errs.by_limb().items()}},
            errs.per_person(len(held)))


def against(path: Path, name: str, ids: list[str], per_person: dict) -> dict:
    """Paired differences (reference minus method) against ``path``'s methods on the
    same people; empty when the file does not hold the same people."""
    if not path.exists():
        return {}
    other = json.loads(path.read_text())["datasets"].get(name)
    if other is None or other.get("held_out_ids") != ids:
        return {}
    theirs = {m: np.array(v["held_out"]["per_person"], dtype=float)
              for m, v in other["methods"].items()}
    out = {}
    for ref, mine in per_person.items():
        pairs = paired({ref: mine, **theirs})[ref]
        out[ref] = {m: {**pairs[m], "method_mean": float(np.nanmean(theirs[m]))}
                    for m in theirs}
    return out


def markdown(r: dict) -> str:
    lines = [f"# {r['out']}: hidden limbs predicted in 2D from real train labels", "",
             f"`{r['command']}`", "",
             f"{r['date']}; {r['machine']}; torch {r['torch']}; {r['total_seconds']:.0f} s. "
             f"Train people (every limb labelled): "
             + ", ".join(f"{k} {v['eligible']}" for k, v in r["train"].items())
             + f", each with every limb hidden once; kNN k = {r['k']}; MLP width "
             f"{r['width']}, {r['steps']} steps x {r['batch_size']}, loss "
             f"{r.get('loss', 'distance')}, seed {r['seed']}.", "",
             "Hidden-joint error / box side (bench_real2d's metric, same people); "
             "lower is better.", "",
             "| set | reference | mean | median | share < 0.1 | hidden bones' length / "
             "label (median) |",
             "|---|---|---|---|---|---|"]
    for name, d in r["datasets"].items():
        for ref, m in d["references"].items():
            lines.append(f"| {name} | {ref} | {m['mean']:.4f} ± {m['mean_se']:.4f} | "
                         f"{m['median']:.4f} | {m['share_below_0_1']:.3f} | "
                         f"{m.get('hidden_length_ratio_median', float('nan')):.3f} |")
    paired_rows = [(n, ref, meth, p) for n, d in r["datasets"].items()
                   for ref, ps in d.get("paired", {}).items() for meth, p in ps.items()]
    if paired_rows:
        lines += ["", f"Paired against `{r['against']}` (reference minus method, same "
                  "people; negative: the 2D reference places the hidden joints better):",
                  "", "| set | reference | method | method's mean | difference |",
                  "|---|---|---|---|---|"]
        for n, ref, meth, p in paired_rows:
            lines.append(f"| {n} | {ref} | {meth} | {p['method_mean']:.4f} | "
                         f"{p['diff']:+.4f} ± {p['se']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="val people per set (bench_real2d's)")
    ap.add_argument("--seed", type=int, default=0, help="bench_real2d's subset seed; also "
                    "the MLP's")
    ap.add_argument("--datasets", default="coco,mpii")
    ap.add_argument("--references", default=",".join(REFERENCES))
    ap.add_argument("--k", type=int, default=16, help="kNN neighbours")
    ap.add_argument("--steps", type=int, default=6000, help="MLP steps")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--loss", choices=LOSSES, default="distance",
                    help="the MLP's training loss (all-squared: the prior's 2D loss, an "
                         "ablation)")
    ap.add_argument("--train-limit", type=int, default=None,
                    help="at most this many train people per set (a quick look)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--against", default=str(RESULTS / "bench_real2d.json"))
    ap.add_argument("--out", default="bench_heldout_2d")
    args = ap.parse_args(argv)
    refs = [x for x in args.references.split(",") if x]
    datasets = [x for x in args.datasets.split(",") if x]
    if any(x not in REFERENCES for x in refs) or any(x not in DATASETS for x in datasets):
        ap.error(f"references from {REFERENCES}, datasets from {tuple(DATASETS)}")
    if args.n < 1 or args.k < 1 or args.steps < 1:
        ap.error("--n, --k and --steps must be >= 1")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    train_people, counts = load_train(args.train_limit)
    train_task = task_arrays(every_limb(train_people))
    result: dict = {
        "out": args.out,
        "command": "python scripts/bench_heldout_2d.py" + "".join(
            " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "torch": torch.__version__, "train": counts,
        "k": args.k, "width": args.width, "steps": args.steps,
        "batch_size": args.batch_size, "lr": args.lr, "loss": args.loss, "seed": args.seed,
        "n": args.n,
        "against": str(Path(args.against).relative_to(Path(__file__).resolve().parents[1]))
        if Path(args.against).resolve().is_relative_to(Path(__file__).resolve().parents[1])
        else args.against,
        "datasets": {},
    }
    model = None
    if "mlp" in refs:
        model, curve = train_mlp(train_task, steps=args.steps, batch_size=args.batch_size,
                                 lr=args.lr, width=args.width, seed=args.seed,
                                 loss=args.loss)
        result["mlp_loss_curve"] = curve
    train_labels = np.stack([p.keypoints for p in train_people]).astype(np.float64)
    for name in datasets:
        kind, path = DATASETS[name]
        held = held_out_people(read_dataset(kind, path).exemplars, name, args.n, args.seed)
        task = task_arrays(held)
        out: dict = {"n_held_out": len(held), "references": {}}
        per_person = {}
        for ref in refs:
            pred = (knn_predict(train_labels, task, args.k) if ref == "knn"
                    else mlp_predict(model, task))
            out["references"][ref], per_person[ref] = score(held, pred)
            out["references"][ref]["per_person"] = [round(float(v), 6)
                                                    for v in per_person[ref]]
            tqdm.write(f"[{name}] {ref}: mean {out['references'][ref]['mean']:.4f}")
        out["paired"] = against(Path(args.against), name, [h.exemplar.id for h in held],
                                per_person)
        result["datasets"][name] = out
    result["total_seconds"] = time.perf_counter() - t0
    dest = RESULTS / f"{args.out}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(result, indent=1) + "\n")
    dest.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
