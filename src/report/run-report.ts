import type { ResultRecord } from '../results/record.js';
import type { ReportRow } from './compare.js';
import { renderMarkdown } from './render.js';

const pct = (v: number | null | undefined): string => (v === null || v === undefined ? '—' : `${(100 * v).toFixed(2)}%`);
const duration = (seconds: number): string => (seconds < 120 ? `${seconds.toFixed(1)} s` : `${(seconds / 60).toFixed(1)} min`);

/** report.md of one run: the paper table, every measured number, the open choices and the provenance. */
export function renderRunReport(result: ResultRecord, rows: ReportRow[]): string {
  const m = result.metrics;
  const t = m.training;
  const lines: string[] = [`# ${result.experiment} — run ${result.runId}`, '', result.config.description, ''];
  if (result.data.warning) lines.push(`> **Warning:** ${result.data.warning}`, '');
  lines.push('## Paper vs ours', '', rows.length ? renderMarkdown(rows) : '_This experiment names no claims of the paper._\n');
  // the configured gradient first, then the other one (results from before both were measured have only the first)
  const attacks = [...Object.values(m.fgsm), ...Object.values(m.fgsmOtherGradient ?? {})].sort((a, b) => a.epsilon - b.epsilon);
  const saturated = Object.values(m.fgsm)[0]?.saturated;
  lines.push(
    '## Test metrics',
    '',
    '| set | softmax gradient | examples | error | mean confidence | confidence on mistakes | zero-gradient examples | max ‖x̃ − x‖∞ |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    `| clean | — | ${m.clean.n} | ${pct(m.clean.error)} | ${pct(m.clean.meanConfidence)} | ${pct(m.clean.meanConfidenceOnMistakes)} | — | — |`,
    ...attacks.map(
      (f) =>
        `| ${(result.config.attack.method ?? 'fgsm').toUpperCase()} ε=${f.epsilon} | ${f.gradient ?? 'standard'}${f === m.fgsm[String(f.epsilon)] ? ' (configured)' : ''} | ${f.n} | ${pct(f.error)} | ${pct(f.meanConfidence)} | ${pct(f.meanConfidenceOnMistakes)} | ${f.zeroGradient ?? '—'} | ${f.maxPerturbation.toFixed(4)} |`,
    ),
    '',
    saturated === undefined
      ? 'Saturated examples (p_y = 1 in float32) were not counted in this run.'
      : `Saturated: ${saturated} of ${m.clean.n} clean test examples have p_y = 1 exactly in float32; there the standard gradient loses its true-class part (∂J/∂z_y = 0) and ∇ₓJ turns, the stable one does not (docs/paper.md §3).`,
    '',
  );
  if (m.rubbish) {
    const shares = Object.entries(m.rubbish.classShares)
      .map(([digit, share]) => `${digit}: ${(100 * share).toFixed(1)}%`)
      .join(', ');
    lines.push(
      '## Rubbish inputs (Appendix A)',
      '',
      `${m.rubbish.samples} samples of N(0, I): ${pct(m.rubbish.error)} get some class with p > 0.5, mean confidence ${pct(m.rubbish.meanConfidence)}. By class: ${shares}.`,
      '',
    );
  }
  const stage2 = t.stage2
    ? ` Stage 2 (${t.stage2.mode}): ${t.stage2.epochs} epochs (${t.stage2.steps} updates), stopped by ${t.stage2.stoppedBy}` +
      (t.stage2.targetLoss !== null
        ? `; held-out loss ${t.stage2.finalHeldOutLoss?.toFixed(4)} against the target ${t.stage2.targetLoss.toFixed(4)}`
        : '') +
      '.'
    : '';
  const resumed = t.resumedFromEpoch ? `, resumed after stage ${t.resumedFromEpoch.stage} epoch ${t.resumedFromEpoch.epoch}` : '';
  const stacked = t.stackedWith
    ? ` Trained in one network with seeds ${t.stackedWith.join(', ')} stacked (the numbers of training alone, within float rounding; epoch times are the stack's).`
    : '';
  lines.push(
    '## Training',
    '',
    `Stage 1: ${t.epochs} epochs (${t.steps} updates), stopped by ${t.stoppedBy}; parameters of epoch ${t.chosenEpoch}` +
      (t.bestValidationError !== null ? ` (best validation error ${pct(t.bestValidationError)})` : '') +
      `.${stage2} Final training error (training state) ${pct(t.finalTrainingError)}` +
      (m.trainingSet ? `; error on the ${m.trainingSet.n} training examples without dropout ${pct(m.trainingSet.error)}` : '') +
      `. Training time ${duration(t.totalSeconds)} over all invocations` +
      ` (${duration(t.seconds)} in this one${resumed}).${stacked} Per epoch: \`epochs.csv\`; curve: \`training-curve.svg\`.`,
    '',
    '## Open choices (docs/paper.md §3)',
    '',
    ...Object.entries(result.openChoices).map(([key, value]) => `- ${key}: ${JSON.stringify(value)}`),
    '',
    '## Provenance',
    '',
    `- data: ${result.data.kind} (${result.data.reason}) at ${result.data.location}; train ${result.data.counts.train}, validation ${result.data.counts.validation}, test ${result.data.counts.test}; classes [${result.data.classes}]`,
    ...result.data.files.map((f) => `  - ${f.name}${f.gzip ? '.gz' : ''}: sha256 ${f.sha256}`),
    `- backend: ${result.provenance.backend.name} — ${result.provenance.backend.reason}${result.provenance.backend.detail ? `; ${result.provenance.backend.detail}` : ''}; device ${result.provenance.backend.device}`,
    `- code: fgsm ${result.provenance.fgsmVersion}, git ${result.provenance.git.commit ?? 'unknown'}${result.provenance.git.dirty ? ' (with uncommitted changes)' : ''}; Node ${result.provenance.node}; ${Object.entries(
      result.provenance.tfjs,
    )
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `- machine: ${result.provenance.machine.cpu}, ${result.provenance.machine.cores} cores, ${result.provenance.machine.memoryGiB} GiB, ${result.provenance.machine.platform}/${result.provenance.machine.arch}`,
    `- seed ${result.seed}; config ${result.configFiles.join(' ← ')}${result.overrides.length ? `; overrides ${result.overrides.join(' ')}` : ''} (hash ${result.configHash})`,
    `- wall time ${result.wallSeconds.toFixed(1)} s; FGSM ${Math.round(result.throughput.fgsmImagesPerSecond)} images/s; training ${Math.round(result.throughput.trainingExamplesPerSecond)} examples/s`,
    ...(result.reevaluations ?? []).map(
      (r) =>
        `- re-evaluated ${r.at.slice(0, 10)} from the saved model (metrics ${r.replaced.join(', ')} replaced; fgsm ${r.provenance.fgsmVersion}, git ${r.provenance.git.commit ?? 'unknown'}, ${r.provenance.backend.name}): ${r.why}`,
    ),
    '',
    '## Figures',
    '',
    ...result.files.filter((f) => f.endsWith('.png') || f.endsWith('.svg')).map((f) => `![${f}](${f})`),
    '',
  );
  return lines.join('\n');
}
