"""eft.jobs: batch fitting jobs (``eft fit``, ``eft merge``, ``eft demo``).

* :func:`load_config` / :class:`JobConfig` - the YAML job config (``fitting/*.yaml``).
* :func:`run_job` - read, shard, fit what is missing in resumable chunks, export.
* :func:`merge_outputs` - join the output folders of a job's shards.
* :class:`Shard` / :func:`parse_shard` / :func:`shard_of` - ``--shard i/N``.
* :class:`Manifest`, :func:`read_part` - the output folder's files.
"""

from .config import (
    DatasetConfig,
    JobConfig,
    JobConfigError,
    OutputConfig,
    config_from_dict,
    load_config,
    parse_override,
)
from .merge import merge_outputs
from .runner import JobResult, run_job
from .sharding import Shard, parse_shard, plan_chunks, select_shard, shard_of
from .store import Failure, JobStoreError, Manifest, Part, read_part
from .summary import Summary

__all__ = [
    "DatasetConfig", "JobConfig", "JobConfigError", "OutputConfig", "config_from_dict",
    "load_config", "parse_override", "merge_outputs", "JobResult", "run_job", "Shard",
    "parse_shard", "plan_chunks", "select_shard", "shard_of", "Failure", "JobStoreError",
    "Manifest", "Part", "read_part", "Summary",
]
