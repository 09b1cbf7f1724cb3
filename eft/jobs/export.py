"""The final annotation files of a job, written from its committed parts (through
``eft.annotations``), in stable id order."""

from __future__ import annotations

import logging
from pathlib import Path

from eft.annotations import Provenance, write_columns
from eft.annotations.columns import Columns

__all__ = ["OUTPUT_SUFFIX", "output_file", "write_outputs", "provenance_for"]

log = logging.getLogger("eft.jobs")

#: File suffix of each format's final file.
OUTPUT_SUFFIX: dict[str, str] = {
    "eft-json": ".json",
    "spin-npz": ".spin.npz",
    "h5": ".h5",
    "humandata": ".humandata.npz",
}


def output_file(folder: Path, name: str, fmt: str) -> Path:
    return folder / f"{name}{OUTPUT_SUFFIX[fmt]}"


def provenance_for(config, identity: dict, config_hash: str, shard: str | None,
                   body=None, extra: dict | None = None):
    """The :class:`~eft.annotations.Provenance` of a job's files (``extra``: more keys
    of its ``job``)."""
    names = sorted({d.name or d.kind for d in config.datasets})
    splits = sorted({d.split for d in config.datasets if d.split})
    return Provenance.create(
        body=body if body is not None else identity.get("body"),
        regressor=identity.get("regressor"), config=config.eft,
        dataset=",".join(names) or None, split=",".join(splits) or None,
        job={"config_hash": config_hash, "shard": shard, "config": config.to_dict(),
             **(extra or {})})


def write_outputs(folder: Path, config, columns: Columns, provenance) -> dict[str, str]:
    """Write every format of ``config.output`` from ``columns`` (rows in the given
    order; only the accepted ones when ``output.include`` is ``accepted``); returns
    format -> file path."""
    if config.output.include == "accepted":
        columns = columns.take(columns.quality["accepted"].astype(bool))
    written = {}
    for fmt in config.output.formats:
        path = output_file(folder, config.output.name, fmt)
        write_columns(columns, provenance, path, format=fmt)
        written[fmt] = str(path)
        log.info("wrote %s (%s, %d fits)", path, fmt, len(columns))
    return written
