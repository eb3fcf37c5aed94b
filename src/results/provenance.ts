import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { installedTfjsVersions, type BackendChoice } from '../backend/select.js';
import { packageRoot } from '../core/package-root.js';
import { GRADIENT_FORMS } from '../models/classifier.js';

/** Where a result came from: code, runtime, machine. Stored in every result.json. */
export interface Provenance {
  fgsmVersion: string;
  git: { commit: string | null; dirty: boolean | null };
  node: string;
  tfjs: Record<string, string>;
  /** detail and threads: absent in records written before threaded wasm existed */
  backend: { name: string; requested: string; reason: string; device: string; detail?: string; threads?: number | null };
  machine: { platform: string; arch: string; cpu: string; cores: number; memoryGiB: number; hostname: string };
  command: string[];
  /** What trained this invocation's epochs: tfjs's ops, or the WebGPU engine (src/engine); absent in older records. */
  trainer?: 'tfjs' | 'webgpu-engine';
  /** What ran the test set's attack: tfjs's ops, or the WebGPU engine's resident FGSM; absent in older records. */
  attacker?: 'tfjs' | 'webgpu-engine';
  /** The gradient forms the figures were measured with (see GRADIENT_FORMS); absent in records written before it. */
  gradientForms?: number;
}

function git(args: string[], cwd: string): string | null {
  try {
    return execFileSync('git', args, { cwd, stdio: ['ignore', 'pipe', 'ignore'], encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

/** The provenance of a result computed now, on the backend `initBackend` chose. */
export function collectProvenance(chosen: BackendChoice): Provenance {
  const { name, requested, reason, detail, threads, device } = chosen;
  const backend = { name, requested, reason, detail, threads, device };
  const tfjs = installedTfjsVersions();
  const root = packageRoot();
  const commit = git(['rev-parse', 'HEAD'], root);
  const status = commit === null ? null : git(['status', '--porcelain', '--untracked-files=no'], root);
  const cpus = os.cpus();
  return {
    fgsmVersion: (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version,
    git: { commit, dirty: status === null ? null : status.length > 0 },
    node: process.version,
    tfjs,
    backend,
    machine: {
      platform: os.platform(),
      arch: os.arch(),
      cpu: cpus[0]?.model ?? 'unknown',
      cores: cpus.length,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      hostname: os.hostname(),
    },
    command: process.argv.slice(1),
    gradientForms: GRADIENT_FORMS,
  };
}
