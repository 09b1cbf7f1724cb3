"""The job and training configs that ship inside the package (``eft config show``).

They are the repository's ``fitting/`` folder (``eft/configs`` links to it, and the
wheel carries its YAML files as package data), so a wheel install has them too.
"""

from __future__ import annotations

import os
from pathlib import Path

from eft.errors import EftError, did_you_mean

__all__ = ["CONFIG_DIR", "shipped_configs", "find_config"]

#: Folder of the shipped configs.
CONFIG_DIR = Path(__file__).with_name("configs")


def shipped_configs() -> dict[str, Path]:
    """``{name: path}``: job configs by stem (``coco``, ``demo``, ...) and training
    configs as ``training/<stem>``."""
    out = {p.stem: p for p in sorted(CONFIG_DIR.glob("*.yaml"))}
    out.update({f"training/{p.stem}": p for p in sorted((CONFIG_DIR / "training")
                                                        .glob("*.yaml"))})
    return out


def find_config(name: str | os.PathLike) -> Path:
    """An existing file ``name``, else the shipped config called ``name`` (``coco``,
    ``fitting/coco.yaml`` and ``coco.yaml`` all name it); EftError otherwise."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    configs = shipped_configs()
    key = str(name).replace("\\", "/").removesuffix(".yaml").removesuffix(".yml")
    key = key.removeprefix("fitting/")
    if key in configs:
        return configs[key]
    raise EftError(f"{name}: no such file, and no shipped config of that name"
                   f"{did_you_mean(key, configs)}; shipped: {', '.join(configs)}")
