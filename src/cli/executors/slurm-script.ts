import { logPath, scriptPath, taskListPath } from './slurm-submission.js';

/** What a user says about the jobs: the options fgsm models, and any other sbatch option verbatim. */
export interface SlurmSettings {
  partition?: string;
  time?: string;
  gpus?: string;
  /** sbatch options fgsm does not model, e.g. --account=ml, written into the script as they are. */
  extra: string[];
  /** Seconds before the time limit at which Slurm warns the task (enough for one epoch and its checkpoint). */
  graceSeconds: number;
  /** How often a task interrupted at a checkpoint requeues itself before it is left interrupted. */
  maxRequeues: number;
}

/** A word for the shell, quoted only when it needs it. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The batch script of a submission folder: array task i runs `fgsm task tasks.json i`. Slurm's warning signal
 * goes to this shell only (B:), which passes it on to fgsm; fgsm stops within a few minibatches, keeping its finished epochs' checkpoint, and exits
 * 130 (143 if the signal came before fgsm could catch it), and then the task requeues itself (the same array element) and resumes from that checkpoint. Exit 2 (a
 * user error: bad config, missing or corrupt data) and 1 (a bug) are final, as re-running cannot fix them.
 * `fgsm` is this installation, run by this node binary: the cluster's nodes see the same file system.
 */
export function batchScript(dir: string, jobName: string, count: number, settings: SlurmSettings, fgsm: { node: string; bin: string }): string {
  const options = [
    `--job-name=${jobName}`,
    `--array=0-${count - 1}`,
    `--output=${logPath(dir, '%a')}`,
    '--open-mode=append',
    '--requeue',
    `--signal=B:TERM@${settings.graceSeconds}`,
    ...(settings.partition ? [`--partition=${settings.partition}`] : []),
    ...(settings.time ? [`--time=${settings.time}`] : []),
    ...(settings.gpus ? [`--gpus=${settings.gpus}`] : []),
    ...settings.extra,
  ];
  const restarts = '${SLURM_RESTART_COUNT:-0}';
  return `#!/bin/bash
# fgsm: ${count} run(s) as one Slurm job array; array task i runs entry i of ${taskListPath(dir)}.
# Resubmit by hand with: sbatch [--array=INDICES] ${scriptPath(dir)}
${options.map((option) => `#SBATCH ${option}`).join('\n')}

echo "== $(date -Is) array task $SLURM_ARRAY_TASK_ID (job $SLURM_JOB_ID, restart ${restarts}) on $(hostname)"
# the trap is set before fgsm starts: a warning that comes early (Slurm may send it up to a minute early) is kept
stop=
fgsm=
trap 'stop=1; [ -n "$fgsm" ] && kill -TERM "$fgsm" 2>/dev/null' TERM
${shellWord(fgsm.node)} ${shellWord(fgsm.bin)} task ${shellWord(taskListPath(dir))} "$SLURM_ARRAY_TASK_ID" &
fgsm=$!
[ -n "$stop" ] && kill -TERM "$fgsm" 2>/dev/null
# wait returns early each time the trap runs; the last wait gives fgsm's own exit status
while :; do
  wait "$fgsm"
  kill -0 "$fgsm" 2>/dev/null || break
done
wait "$fgsm"
status=$?
# 130: stopped at a checkpoint; 143: the signal came before fgsm could catch it, so nothing was begun
if [ "$status" -eq 130 ] || [ "$status" -eq 143 ]; then
  if [ "${restarts}" -lt ${settings.maxRequeues} ]; then
    echo "== interrupted at a checkpoint: requeued, to resume (restart ${restarts} of at most ${settings.maxRequeues})"
    scontrol requeue "$SLURM_JOB_ID" # this array element
  else
    echo "== interrupted at a checkpoint after ${settings.maxRequeues} restarts: not requeued again (rerun fgsm run to resubmit)"
  fi
fi
exit "$status"
`;
}
