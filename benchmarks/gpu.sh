#!/usr/bin/env bash
# The prepared device benchmark of issues 14 and 23: one process, under 5 minutes on one CUDA GPU.
# Prints a table (and the fused kernel's speed-ups) and writes benchmarks/gpu.json; exits 2 with a
# message where CUDA is missing.
#   bash benchmarks/gpu.sh              # the benchmark
#   bash benchmarks/gpu.sh --dry-run    # tiny sizes on the CPU, the fused Triton kernel under
#                                       # TRITON_INTERPRET=1: checks the script, measures nothing
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PWD}${PYTHONPATH:+:$PYTHONPATH}"  # graphattn from this tree, installed or not
exec python benchmarks/gpu.py --out benchmarks/gpu.json "$@"
