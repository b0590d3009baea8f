"""Utterance table → Avalanche benchmark, in three steps:

1. :mod:`~cl_spoof.benchmark.planning`: which table rows form each experience;
2. :mod:`~cl_spoof.benchmark.loading`: read and check the table, cache the audio
   of the rows used;
3. :mod:`~cl_spoof.benchmark.datasets`: the Avalanche datasets and benchmark
   (one train and one test experience per attack). Only this step imports
   Avalanche, so it is not re-exported here.
"""

from cl_spoof.benchmark.loading import (
    BenchmarkData,
    cache_samples,
    load_benchmark_data,
    load_evaluation_set,
    prepare_benchmark_data,
    read_run_table,
    resolve_source,
)
from cl_spoof.benchmark.planning import (
    JOINT,
    ExperiencePlan,
    configured_attacks,
    default_attacks,
    joint_plan,
    plan_experiences,
    split_eval_only_attacks,
)

__all__ = ["JOINT", "BenchmarkData", "ExperiencePlan", "cache_samples", "configured_attacks",
           "default_attacks", "joint_plan", "load_benchmark_data", "load_evaluation_set",
           "plan_experiences", "prepare_benchmark_data", "read_run_table", "resolve_source",
           "split_eval_only_attacks"]
