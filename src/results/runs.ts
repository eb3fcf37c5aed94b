import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { damagedFile, readStateFile } from '../core/fs-errors.js';
import { readStatus, type RunStatus } from './run-dir.js';
import { inspectLock, type LockInspection, type LockTiming, LOCK_TIMING } from './run-lock.js';

/** One run folder as `fgsm status` shows it. */
export interface RunOverview {
  dir: string;
  experiment: string;
  runId: string;
  /** The resolved config's hash: with the experiment, what names the run's config. */
  configHash: string;
  seed: number | null;
  /**
   * complete / interrupted / failed as the run recorded it; running when a live process holds its lock; dead when
   * it says running but no live process holds it (killed, or its machine went away): rerunning resumes it;
   * unknown when it says running but was begun by an fgsm without run locks, which left nothing to tell by.
   */
  state: RunStatus['state'] | 'dead' | 'unknown';
  /** Where training stands: the last epoch written, and stage 1's best validation error so far with its epoch. */
  stage: 1 | 2 | null;
  epoch: number | null;
  best: { error: number; epoch: number; metric: 'validation' | 'adversarial validation' } | null;
  heartbeat: Date | null;
  lock: LockInspection;
  message: string | null;
}

function findRunDirs(dir: string, depth: number): string[] {
  if (depth < 0 || !existsSync(dir) || !statSync(dir).isDirectory()) return [];
  if (existsSync(join(dir, 'status.json'))) return [dir];
  return readdirSync(dir)
    .filter((entry) => !entry.startsWith('.') && entry !== 'checkpoints' && statSync(join(dir, entry)).isDirectory())
    .flatMap((entry) => findRunDirs(join(dir, entry), depth - 1));
}

/** The columns of epochs.csv that `fgsm status` reads. */
const PROGRESS_COLUMNS = ['stage', 'epoch', 'validation_error', 'adversarial_validation_error'];

function progressOf(dir: string): Pick<RunOverview, 'stage' | 'epoch' | 'best'> {
  const path = join(dir, 'epochs.csv');
  const fix = `restore ${path} from a copy, or delete it (the run's checkpoint holds the same history; an unfinished run writes it again at its next epoch)`;
  const bytes = readStateFile(path, fix);
  if (bytes === null) return { stage: null, epoch: null, best: null };
  const text = bytes.toString('utf8');
  if (text.trim() === '') throw damagedFile(path, 'it is empty', fix);
  if (!text.endsWith('\n')) throw damagedFile(path, 'it ends part-way through a line (cut short?)', fix);
  const lines = text.trim().split('\n');
  const header = lines[0]!.split(',');
  const column = (name: string) => header.indexOf(name);
  const missing = PROGRESS_COLUMNS.filter((name) => column(name) < 0);
  if (missing.length) throw damagedFile(path, `its header lacks the column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`, fix);
  const rows = lines.slice(1).map((line) => line.split(','));
  const bad = rows.findIndex((row) => row.length !== header.length || !/^[12]$/.test(row[column('stage')]!) || !/^\d+$/.test(row[column('epoch')]!));
  if (bad >= 0) throw damagedFile(path, `line ${bad + 2} is not an epoch's row (${header.length} values, stage 1 or 2, a whole epoch)`, fix);
  if (rows.length === 0) return { stage: null, epoch: null, best: null };
  const last = rows.at(-1)!;
  let best: RunOverview['best'] = null;
  for (const row of rows) {
    if (row[column('stage')] !== '1') continue;
    const adversarial = row[column('adversarial_validation_error')] ?? '';
    const value = adversarial !== '' ? adversarial : (row[column('validation_error')] ?? '');
    if (value === '') continue;
    const error = Number(value);
    if (best === null || error < best.error) {
      best = { error, epoch: Number(row[column('epoch')]), metric: adversarial !== '' ? 'adversarial validation' : 'validation' };
    }
  }
  return { stage: Number(last[column('stage')]) as 1 | 2, epoch: Number(last[column('epoch')]), best };
}

/** Every run folder (one holding status.json) under `resultsDir`, up to 4 levels down, oldest first. */
export function listRuns(resultsDir: string, timing: LockTiming = LOCK_TIMING): RunOverview[] {
  return findRunDirs(resultsDir, 4)
    .map((dir): RunOverview => {
      const status = readStatus(dir)!;
      const lock = inspectLock(dir, timing);
      const live = lock.state === 'live';
      const legacy = lock.state === 'free' && status.pid === undefined;
      const state = status.state === 'running' ? (live ? 'running' : legacy ? 'unknown' : 'dead') : status.state;
      return {
        dir,
        experiment: status.experiment ?? basename(dirname(dir)),
        runId: basename(dir),
        configHash: status.configHash,
        seed: status.seed ?? null,
        state,
        ...progressOf(dir),
        heartbeat: lock.heartbeat,
        lock,
        message: status.message ?? null,
      };
    })
    .sort((a, b) => a.experiment.localeCompare(b.experiment) || a.runId.localeCompare(b.runId));
}
