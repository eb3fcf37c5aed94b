import type { DoctorFindings } from './doctor.js';
import { installedTfjsVersions, probeBackends } from './select.js';
import { webgpuDoctorLines } from './webgpu.js';

/** Run by doctorFindings in a child process: probes every backend and prints the findings as one JSON line. */
const { attempts, autoWouldUse } = await probeBackends();
const findings: DoctorFindings = { attempts, autoWouldUse, webgpu: await webgpuDoctorLines(), installed: installedTfjsVersions() };
process.stdout.write(`${JSON.stringify(findings)}\n`);
