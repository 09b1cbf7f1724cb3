"""The README's Python API example runs and means what it says."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_api_example_runs():
    text = README.read_text()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own documentation
    out = scope["out"]
    assert tuple(out.keypoints.shape) == (1, 49, 3)
    assert bool(out.keypoint_valid.all())
    # "lower the left arm": the left wrist ends below the left shoulder
    j = out.joints[0]
    assert j[20, 1] < j[16, 1] - 0.1


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci
    block = README.read_text().split("<!-- test-command -->", 1)[1]
    assert "pytest" in block.split("```")[1]


def test_layout_table_names_every_package_and_the_checks():
    """The README's layout table lists every subpackage of ``eft`` (and no folder that is
    gone), and the test command runs the layer contract and mypy."""
    text = README.read_text()
    layout = text[text.index("## Layout"):]
    layout = layout[:layout.index("\n## ", 1)]
    named = set(re.findall(r"`eft/(\w+)/`", layout))
    packages = {p.parent.name for p in (README.parent / "eft").glob("*/__init__.py")}
    assert named == packages
    command = text.split("<!-- test-command -->", 1)[1].split("```")[1]
    assert "lint-imports" in command and "mypy" in command


def test_python_fitting_example_runs(tmp_path, one_thread):
    """The README's second Python block fits a generic keypoint file with "auto"."""
    import json

    import numpy as np

    from eft.body.joints import KEYPOINT_FORMATS
    from eft.synthetic.exemplars import SyntheticConfig, generate
    from eft.synthetic.pose_bank import load_pose_bank

    text = README.read_text()
    section = text[text.index("## Python API"):]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[1]
    assert '"auto"' in code and "my_keypoints.json" in code
    coco = KEYPOINT_FORMATS["coco17"]
    people = list(generate(load_pose_bank().val().poses, 3, 2, SyntheticConfig()).exemplars())
    records = []
    for i, e in enumerate(people):
        kp = np.asarray(e.keypoints)[list(coco.spin_indices)]
        records.append({"image": f"img{i}.jpg", "keypoints": kp.ravel().tolist()})
    path = tmp_path / "my_keypoints.json"
    path.write_text(json.dumps({"keypoint_format": "coco17", "people": records}))
    scope: dict = {}
    exec(compile(code.replace("my_keypoints.json", str(path)), "README.md", "exec"), scope)  # noqa: S102
    fits = scope["fits"]
    assert len(fits) == 3 and fits[0].rotmat.shape == (24, 3, 3)
    assert all(np.isfinite(f.quality.reproj_frac_bbox) for f in fits)


def test_annotation_and_rendering_examples_run(tmp_path, one_thread, monkeypatch):
    """The README's annotation-file block and then its rendering block, as written (a
    generic keypoint file of three people with images, run in a fresh folder)."""
    import json

    import numpy as np
    from PIL import Image

    from eft.body.joints import KEYPOINT_FORMATS
    from eft.synthetic.exemplars import SyntheticConfig, generate
    from eft.synthetic.pose_bank import load_pose_bank

    text = README.read_text()
    blocks = {name: text[text.index(name):] for name in (
        "## Annotation files", "## Rendering without OpenGL")}
    annotations, rendering = (re.search(r"```python\n(.*?)```", b, re.S).group(1)
                              for b in blocks.values())
    coco = KEYPOINT_FORMATS["coco17"]
    people = list(generate(load_pose_bank().val().poses, 3, 2, SyntheticConfig()).exemplars())
    records = []
    for i, e in enumerate(people):
        Image.new("RGB", (640, 480), (90, 120, 150)).save(tmp_path / f"img{i}.png")
        kp = np.asarray(e.keypoints)[list(coco.spin_indices)]
        records.append({"image": f"img{i}.png", "keypoints": kp.ravel().tolist()})
    (tmp_path / "my_keypoints.json").write_text(
        json.dumps({"keypoint_format": "coco17", "people": records}))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(annotations, "README.md", "exec"), scope)  # noqa: S102
    back = scope["back"]
    assert len(scope["fits"]) == 3 and (tmp_path / "out" / "coco.json").is_file()
    assert len(back) == sum(f.quality.accepted for f in scope["fits"])
    exec(compile(rendering, "README.md", "exec"), scope)  # noqa: S102
    panel = np.asarray(Image.open(tmp_path / "out" / "fit.png"))
    assert panel.ndim == 3 and panel.shape[1] > panel.shape[0]  # crop | side view
    rgba = scope["out"].rgba(0)
    assert rgba.shape == (224, 224, 4) and rgba[..., 3].any()  # the body is drawn
