"""eft.jobs: batch fitting jobs (``eft fit``, ``eft merge``, ``eft demo``).

* :func:`load_config` / :class:`JobConfig` - the YAML job config (``fitting/*.yaml``).
* :func:`run_job` - read, shard, fit what is missing in resumable chunks, export.
* :func:`merge_outputs` - join the output folders of a job's shards.
* :class:`Shard` / :func:`parse_shard` / :func:`shard_of` - ``--shard i/N``.
* :class:`Manifest`, :func:`read_part` - the output folder's files.
"""
from eft._lazy import lazy_exports

_EXPORTS = {
    "DatasetConfig": "config",
    "JobConfig": "config",
    "JobConfigError": "config",
    "OutputConfig": "config",
    "config_from_dict": "config",
    "load_config": "config",
    "parse_override": "config",
    "merge_outputs": "merge",
    "JobResult": "runner",
    "run_job": "runner",
    "Shard": "sharding",
    "parse_shard": "sharding",
    "plan_chunks": "sharding",
    "select_shard": "sharding",
    "shard_of": "sharding",
    "Failure": "store",
    "JobStoreError": "store",
    "Manifest": "store",
    "Part": "store",
    "read_part": "store",
    "Summary": "summary",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
