"""Run and compare directories: the only code that knows their files.

:class:`RunDir` reads and writes a run directory (config, status, EER matrix,
metrics, score files, checkpoints, logs, added attacks) and answers what the
commands ask about one; :class:`CompareDir` does the same for a compare directory.
Below the reports and the workflows: nothing here imports a model, a strategy or
Avalanche.
"""

from cl_spoof.rundir.compare_dir import (
    COMPARE_FILE,
    CompareDir,
    results_folder_of,
    run_dir_name,
)
from cl_spoof.rundir.run_dir import (
    RUN_FILES,
    STAGE_BASE,
    RunDir,
    RunDirError,
    RunProgress,
    RunRecord,
    check_label,
    check_same_config,
    data_digest,
    default_run_label,
    pretrained_columns,
    write_scores,
)

__all__ = ["COMPARE_FILE", "RUN_FILES", "STAGE_BASE", "CompareDir", "RunDir", "RunDirError",
           "RunProgress", "RunRecord", "check_label", "check_same_config", "data_digest",
           "default_run_label", "pretrained_columns", "results_folder_of", "run_dir_name",
           "write_scores"]
