#!/usr/bin/env bash
# The SpectralCLIP study on a Slurm GPU cluster: the grid as a job array, then the summary after it.
#
#   scripts/study_slurm.sh 8 photos/ --out /shared/study                      # the paper's protocol, 8 GPUs
#   scripts/study_slurm.sh 4 photos/ --text "pop art" --bands none,c2 --out /shared/study --judge ViT-L/14
#
# Run it on a login node (it calls sbatch twice): an array of N tasks, task i running shard i/N of the grid
# (`spectralstyle study ... --phase run`, one GPU each), and one job that starts when every task succeeded
# (afterok) and judges and summarises (`--phase summary`: table.csv, table.md, report.html in OUT).
# OUT must be on a filesystem all nodes share. A study is a batch: finished jobs are skipped, so running
# the script again (or `scontrol requeue` of a preempted task) resumes it; if a task failed, the summary job
# is not started: rerun the script once the cause is fixed.
# Slurm options for both jobs: SBATCH_* environment variables, or STUDY_SBATCH="--partition=gpu --time=08:00:00".
set -euo pipefail

tasks=${1:?usage: scripts/study_slurm.sh N_TASKS CONTENT... --out DIR [study options]}
shift
[[ "$tasks" =~ ^[1-9][0-9]*$ ]] || { echo "error: N_TASKS must be a positive integer, got '$tasks'" >&2; exit 2; }
SPECTRALSTYLE=${SPECTRALSTYLE:-spectralstyle}
extra=(${STUDY_SBATCH:-})
args=$(printf '%q ' "$@")
args=${args% }

# task i of the array: SLURM_ARRAY_TASK_ID/COUNT choose the shard (as in scripts/batch_slurm_array.sh)
grid=$(sbatch --parsable --job-name=spectralstyle-study --array="0-$((tasks - 1))" --gres=gpu:1 --cpus-per-task=4 \
  --mem=16G --requeue --output=slurm-study-%A_%a.out "${extra[@]}" \
  --wrap="exec $SPECTRALSTYLE study $args --phase run")
summary=$(sbatch --parsable --job-name=spectralstyle-study-summary --dependency="afterok:${grid%%;*}" --gres=gpu:1 \
  --cpus-per-task=4 --mem=16G --output=slurm-study-summary-%j.out "${extra[@]}" \
  --wrap="exec $SPECTRALSTYLE study $args --phase summary")
echo "submitted the grid as array job $grid ($tasks tasks) and the summary as job $summary (after the grid)"
