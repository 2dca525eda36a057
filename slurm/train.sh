#!/usr/bin/env bash
# One solve on one GPU node.
#
#   cd /path/to/lotj && source .venv/bin/activate        # the environment travels with the job
#   sbatch slurm/train.sh conf=baseline economy.eta=0.95
#
# Arguments are those of `python -m lotj.train` and come after this script's defaults, so they win:
# the run directory defaults to runs/slurm-JOBID; on a GPU allocation the Trainer uses the GPUs.
#
# Edit the #SBATCH lines: CPUs (--cpus-per-task), GPUs (--gpus-per-node), time.
# Multi-GPU data parallel (Lightning DDP, one process per GPU, one node): set --gpus-per-node=N and
# --ntasks-per-node=N together; Lightning reads the ranks from Slurm.
#
# Settings read from the environment (optional): LOTJ_PYTHON (default python on PATH),
# LOTJ_ROOT (repository root; default the directory sbatch was called from).
#
#SBATCH --job-name=lotj-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=%x-%j.out

set -euo pipefail

: "${SLURM_JOB_ID:?run this script with sbatch (SLURM_JOB_ID is not set)}"

python_bin=${LOTJ_PYTHON:-python}
root=${LOTJ_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
cd "$root"

tasks=${SLURM_NTASKS_PER_NODE:-1}
gpus=${SLURM_GPUS_ON_NODE:-${SLURM_GPUS_PER_NODE:-0}}
gpus=${gpus##*:}  # "a100:2" -> 2
cpus=${SLURM_CPUS_PER_TASK:-1}

defaults=("out_dir=runs/slurm-$SLURM_JOB_ID" "trainer.num_threads=$cpus" "logging.progress_bar=false")
if [[ $gpus -gt 0 ]]; then
    if [[ $tasks -ne 1 && $tasks -ne $gpus ]]; then
        echo "train.sh: --ntasks-per-node=$tasks must be 1 or equal to the GPUs per node ($gpus)" >&2
        exit 1
    fi
    defaults+=("trainer.accelerator=gpu" "trainer.devices=$tasks")
fi

echo "train.sh: job $SLURM_JOB_ID on $(hostname), $tasks tasks, $gpus GPUs, $cpus CPUs per task"
srun "$python_bin" -m lotj.train "${defaults[@]}" "$@"
