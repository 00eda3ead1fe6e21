#!/usr/bin/env bash
# A spectralstyle batch as a Slurm job array: task i of n runs shard i/n of the plan on its own GPU.
#
#   sbatch --array=0-7 scripts/batch_slurm_array.sh photos/ --prompts prompts.txt --bands c2,none --out /shared/results
#
# OUT must be on a filesystem all nodes share. Each job id goes to exactly one task (job k of the sorted
# plan to task k mod n); the array size (here 8) is free. Finished jobs are skipped, so a resubmission
# (or `scontrol requeue` of preempted tasks) resumes the batch; failed jobs are retried. Afterwards
# `spectralstyle batch ... --dry-run` (same arguments) shows what is done, and OUT/manifest.json
# holds the merged state. For several GPUs per task, use scripts/batch_multi_gpu.sh inside the
# task: ranks then split the task's shard again.
#SBATCH --job-name=spectralstyle-batch
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail

: "${SLURM_ARRAY_TASK_ID:?submit with sbatch --array=0-N (this script is one task of a job array)}"
task=$(( SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0} ))
SPECTRALSTYLE=${SPECTRALSTYLE:-spectralstyle}

# Slurm sends SIGTERM before preempting or at the time limit (KillWait seconds before SIGKILL): the
# running job stops after its current step, saves a checkpoint in OUT/.checkpoints/ and the command exits
# 130; the requeued or resubmitted task continues that job from its checkpoint. A task resubmitted while
# the first still runs skips the jobs the first holds (OUT/.jobs/<job-id>.lock).
exec "$SPECTRALSTYLE" batch "$@" --shard "$task/$SLURM_ARRAY_TASK_COUNT"
