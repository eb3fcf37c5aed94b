import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FgsmError } from '../core/errors.js';
import { staleGradientFigures, type ClaimSource } from '../results/record.js';

/** The result.json files under `dir`, up to `depth` folders deep (checkpoints and hidden folders skipped). */
export function findResultFiles(dir: string, depth: number): string[] {
  if (depth < 0) return [];
  const found: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (entry === 'result.json') found.push(path);
    else if (entry !== 'checkpoints' && !entry.startsWith('.') && statSync(path).isDirectory()) found.push(...findResultFiles(path, depth - 1));
  }
  return found;
}

/** A result.json file's record (of whatever format); a file that is not JSON is an error naming it. */
export function readRecord(file: string): ClaimSource {
  let record: ClaimSource;
  try {
    record = JSON.parse(readFileSync(file, 'utf8')) as ClaimSource;
  } catch (error) {
    throw new FgsmError(`${file}: not valid JSON (${(error as Error).message})`);
  }
  const stale = record.format === 'fgsm-result/1' ? staleGradientFigures(record) : null;
  if (stale) {
    throw new FgsmError(
      `${file}: ${stale}`,
      `re-evaluate it with today's code: \`fgsm audit ${dirname(dirname(dirname(file)))} --repair\` rewrites its FGSM figures, result.json and report.md`,
    );
  }
  return record;
}

const FORMATS: readonly string[] = ['fgsm-result/1', 'fgsm-transfer/1', 'fgsm-agreement/1', 'fgsm-ensemble/1'] satisfies ClaimSource['format'][];

/** The newest complete result of every experiment and seed (runs and experiments over runs) under `dir`, up to 4 deep. */
export function latestResults(dir: string): ClaimSource[] {
  if (!existsSync(dir)) throw new FgsmError(`${dir}: no such directory`, 'run an experiment first: fgsm run configs/softmax.yaml');
  const latest = new Map<string, ClaimSource>();
  for (const file of findResultFiles(dir, 4)) {
    const record = readRecord(file);
    if (!FORMATS.includes(record.format)) continue;
    const key = `${record.experiment}#${record.seed}`;
    const known = latest.get(key);
    if (!known || known.finishedAt < record.finishedAt) latest.set(key, record);
  }
  return [...latest.values()].sort((a, b) => a.experiment.localeCompare(b.experiment) || (a.seed ?? -1) - (b.seed ?? -1));
}
