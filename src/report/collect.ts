import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { damagedFile, readJsonState } from '../core/fs-errors.js';
import { FgsmError } from '../core/errors.js';
import { staleGradientFigures, type ClaimSource } from '../results/record.js';

/** The result.json files under `dir`, up to `depth` folders deep (checkpoints and hidden folders skipped). */
export function findResultFiles(dir: string, depth: number): string[] {
  if (depth < 0) return [];
  if (!statSync(dir).isDirectory())
    throw new FgsmError(`${dir} is a file, not a results folder`, 'name the folder that `fgsm run --results-dir` wrote');
  const found: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (entry === 'result.json') found.push(path);
    else if (entry !== 'checkpoints' && !entry.startsWith('.') && statSync(path).isDirectory()) found.push(...findResultFiles(path, depth - 1));
  }
  return found;
}

/** A result.json file's record (of whatever format); a file that is not a JSON object is an error naming it. */
export function readRecord(file: string): ClaimSource {
  const fix = `restore ${file} from a copy, or move its run folder ${dirname(file)} out of the results folder`;
  const record = readJsonState(file, fix);
  if (record === null) throw new FgsmError(`${file}: no such file`);
  if (typeof record !== 'object' || Array.isArray(record)) throw damagedFile(file, 'not a result (expected a JSON object)', fix);
  const result = record as ClaimSource;
  const stale = result.format === 'fgsm-result/1' ? staleGradientFigures(result) : null;
  if (stale) {
    throw new FgsmError(
      `${file}: ${stale}`,
      `re-evaluate it with today's code: \`fgsm audit ${dirname(dirname(dirname(file)))} --repair\` rewrites its FGSM figures, result.json and report.md`,
    );
  }
  return result;
}

const FORMATS: readonly string[] = ['fgsm-result/1', 'fgsm-transfer/1', 'fgsm-agreement/1', 'fgsm-ensemble/1'] satisfies ClaimSource['format'][];

/** The newest complete result of every experiment and seed (runs and experiments over runs) under `dir`, up to 4 deep. */
export function latestResults(dir: string): ClaimSource[] {
  return latestResultFiles(dir).map(({ record }) => record);
}

/** latestResults with the result.json each record was read from (its run folder holds the run's figures). */
export function latestResultFiles(dir: string): { file: string; record: ClaimSource }[] {
  if (!existsSync(dir)) throw new FgsmError(`${dir}: no such directory`, 'run an experiment first: fgsm run configs/softmax.yaml');
  const latest = new Map<string, { file: string; record: ClaimSource }>();
  for (const file of findResultFiles(dir, 4)) {
    const record = readRecord(file);
    if (!FORMATS.includes(record.format)) continue;
    const key = `${record.experiment}#${record.seed}`;
    const known = latest.get(key);
    if (!known || known.record.finishedAt < record.finishedAt) latest.set(key, { file, record });
  }
  return [...latest.values()].sort(({ record: a }, { record: b }) => a.experiment.localeCompare(b.experiment) || (a.seed ?? -1) - (b.seed ?? -1));
}
