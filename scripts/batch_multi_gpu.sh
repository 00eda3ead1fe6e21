#!/usr/bin/env bash
# Run a spectralstyle batch on every GPU of this machine, or of several machines, with torchrun.
#
# Each torchrun rank takes every WORLD_SIZE-th job of the (deterministically sorted) plan and runs it on
# cuda:LOCAL_RANK; finished jobs are skipped, so re-running this script after a crash resumes the batch.
#
# One machine, all GPUs:
#   scripts/batch_multi_gpu.sh photos/ --prompts prompts.txt --bands c2,none --out results/
# Several machines (run the same line on each; OUT must be on a filesystem they all share):
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0.example.org scripts/batch_multi_gpu.sh photos/ ... --out /shared/results
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=node0.example.org scripts/batch_multi_gpu.sh photos/ ... --out /shared/results
#
# Environment: NPROC_PER_NODE (default: number of visible GPUs, else 1), NNODES (1), NODE_RANK (0),
# MASTER_ADDR / MASTER_PORT (multi-node rendezvous, default port 29517), TORCHRUN (default: the
# torchrun on PATH; activate the environment where spectralstyle is installed first).
set -euo pipefail

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 2
fi

gpus=$(nvidia-smi --list-gpus 2>/dev/null | wc -l || true)
NPROC_PER_NODE=${NPROC_PER_NODE:-$(( gpus > 0 ? gpus : 1 ))}
NNODES=${NNODES:-1}
TORCHRUN=${TORCHRUN:-$(command -v torchrun || true)}
[[ -n "$TORCHRUN" ]] || { echo "torchrun not found: activate the environment where spectralstyle is installed" >&2; exit 2; }

if [[ "$NNODES" -eq 1 ]]; then
    # --standalone: a private rendezvous on a free local port (no clash with other jobs on the machine)
    exec "$TORCHRUN" --standalone --nproc-per-node "$NPROC_PER_NODE" -m spectralstyle batch "$@"
fi

: "${MASTER_ADDR:?set MASTER_ADDR to the host name of node 0 for a multi-node run}"
: "${NODE_RANK:?set NODE_RANK (0..NNODES-1) for a multi-node run}"
exec "$TORCHRUN" --nnodes "$NNODES" --node-rank "$NODE_RANK" --nproc-per-node "$NPROC_PER_NODE" \
    --rdzv-backend c10d --rdzv-endpoint "$MASTER_ADDR:${MASTER_PORT:-29517}" --rdzv-id spectralstyle-batch \
    -m spectralstyle batch "$@"
