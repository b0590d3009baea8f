#!/usr/bin/env bash
# The GPU benchmark (benchmarks/speed/gpu.py) as one prepared command for a GPU machine
# lent for a few minutes. It runs in the repository copy that holds it, installs nothing
# and fetches nothing:
#
#   OUT=/some/folder bash benchmarks/speed/gpu_run.sh [extra gpu.py options]
#
# Writes into $OUT (default benchmarks/results): gpu_<device>.json (rewritten after every
# setting, so a run cut short keeps what it measured), gpu_run.log and nvidia-smi.txt.
# Sizes: ASVspoof 2019 LA's input (64,600 samples at 16 kHz), 2,048 clips per epoch from
# the decoded-waveform cache, DataLoader with $WORKERS processes (default 8), batches 32
# and 128, fp32 and bf16 autocast, every preset uncompiled first (most used first), then
# compiled; no setting starts after $BUDGET_S seconds (default 330), and the benchmark is
# stopped at $BUDGET_S + 150 s, so the command ends within 8 minutes.
# Python: $PYTHON (default python3) must import cl-spoof's dependencies (pyproject.toml);
# packages the machine lacks can be given as a folder of unpacked wheels in $SITE, put
# first on PYTHONPATH. The check below names every missing one before any GPU time is
# spent on the benchmark. Extra options go to gpu.py after these (later ones win), e.g.
# --presets small,base --compile off.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-benchmarks/results}"
PYTHON="${PYTHON:-python3}"
BUDGET_S="${BUDGET_S:-330}"
WORKERS="${WORKERS:-8}"
mkdir -p "$OUT"
export PYTHONPATH="${SITE:+$SITE:}$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" > "$OUT/nvidia-smi.txt"

"$PYTHON" - <<'PY'
import importlib
import importlib.metadata as md
import re
import sys
import tomllib

deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
missing = []
for dep in deps:
    name = re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0]
    try:
        md.version(name)
    except md.PackageNotFoundError:
        missing.append(name)
if missing:
    sys.exit(f"gpu_run.sh: missing Python packages: {', '.join(missing)} (give them in SITE)")
try:
    importlib.import_module("benchmarks.speed.gpu")
except ImportError as exc:
    sys.exit(f"gpu_run.sh: the benchmark does not import: {exc} (give it in SITE)")
PY

timeout --signal=INT "$((BUDGET_S + 150))" \
    "$PYTHON" -m benchmarks.speed.gpu --budget-s "$BUDGET_S" --workers "$WORKERS" \
    --presets small,base,res_tssdnet,inc_tssdnet,lfcc_lcnn,aasist,aasist_l,tiny \
    --batches 32,128 --amp off,bf16 --compile off,on --clips 2048 \
    --num-samples 64600 --sample-rate 16000 --out-dir "$OUT" "$@" 2>&1 | tee "$OUT/gpu_run.log"
