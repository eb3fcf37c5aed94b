import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BackendAttempt, BackendName } from './select.js';

/** What `fgsm doctor` reports: each backend's attempt, auto's choice, the WebGPU adapter, the tfjs packages. */
export interface DoctorFindings {
  attempts: BackendAttempt[];
  autoWouldUse: BackendName | null;
  webgpu: string[];
  installed: Record<string, string>;
}

/**
 * A diagnostic Dawn writes to the process's stderr from native code while it enumerates adapters (lavapipe:
 * "Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced …"), and the "    at …" lines of its
 * source location: nothing a user can act on, and nothing Node can redirect within the process.
 */
export const isDawnDiagnostic = (line: string): boolean => /^Warning: |^\s+at \S+ \(.*dawn\//.test(line);

/** Output less Dawn's own diagnostics. */
export function withoutDawnDiagnostics(text: string): string {
  return text
    .split('\n')
    .filter((line) => !isDawnDiagnostic(line))
    .join('\n');
}

/**
 * Probes the backends in a child process (doctor-probe.ts), whose stderr is passed on without Dawn's
 * diagnostics; the findings come back as the last line of its stdout.
 */
export function doctorFindings(): DoctorFindings {
  const probe = fileURLToPath(new URL('./doctor-probe.js', import.meta.url));
  const child = spawnSync(process.execPath, [probe], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr = withoutDawnDiagnostics(child.stderr);
  const lines = withoutDawnDiagnostics(child.stdout).trimEnd().split('\n');
  if (child.status !== 0) throw new Error(`the backend probe (${probe}) failed with status ${child.status}:\n${stderr}`);
  if (stderr.trim()) process.stderr.write(stderr);
  if (lines.length > 1) process.stdout.write(`${lines.slice(0, -1).join('\n')}\n`);
  return JSON.parse(lines.at(-1)!) as DoctorFindings;
}
