import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { readJsonState } from '../core/fs-errors.js';
import type { AuditRecord } from '../results/audit-record.js';
import { confusionSvg, transferHeatmapSvg } from '../results/plots.js';
import { fgsmByGradient, type ClaimSource, type CrossRunResult, type RecordedFgsmMetrics, type ResultRecord } from '../results/record.js';
import { listRuns, type RunOverview } from '../results/runs.js';
import { latestResultFiles } from './collect.js';
import type { ReportRow } from './compare.js';
import { escapeHtml as esc, htmlTable, textColumn, type Column } from './html-table.js';
import { GRADIENT_NOTE, oursText, paperText, signed, stableText, verdictText } from './render.js';
import { ROBUSTNESS_HEADER, robustnessCells } from './robustness.js';

/**
 * `fgsm report DIR --html OUT`: one self-contained page (no network: SVG inline, PNG as data URIs, CSS in the
 * page, no script) with the paper table of `fgsm report`, and per experiment its figures, measurements, provenance
 * and run status. The figures are the run folders' own files where a run drew them (training curves, ε sweeps,
 * examples) and drawn here from the records where it did not (confusion matrices, transfer heat maps).
 */
export async function renderHtmlReport(resultsDir: string, rows: readonly ReportRow[], generatedAt = new Date()): Promise<string> {
  const figures = new FigureIds();
  const results = latestResultFiles(resultsDir);
  const runs = listRuns(resultsDir);
  const experiments = [...new Set(results.map(({ record }) => record.experiment))];
  const sections: string[] = [];
  for (const experiment of experiments) {
    const members = results.filter(({ record }) => record.experiment === experiment);
    const articles: string[] = [];
    for (const { file, record } of members) articles.push(await runArticle(dirname(file), record, runs, figures));
    const description = members[0]!.record.config.description;
    sections.push(
      `<section id="${anchor('exp', experiment)}"><h2>${esc(experiment)}</h2>${description ? `<p>${esc(description)}</p>` : ''}\n${articles.join('\n')}</section>`,
    );
  }
  const toc = experiments.map((e) => `<a href="#${anchor('exp', e)}">${esc(e)}</a>`).join(' · ');
  const audit = robustnessSection(resultsDir);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fgsm: the paper vs this reproduction</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>fgsm: the paper vs this reproduction</h1>
<p>Goodfellow, Shlens &amp; Szegedy, <i>Explaining and Harnessing Adversarial Examples</i> (ICLR 2015), MNIST. The latest
complete run of every experiment under <code>${esc(resultsDir)}</code>; written ${esc(generatedAt.toISOString())}.</p>
<nav><a href="#claims">claims</a> · ${audit ? '<a href="#robustness">robustness audit</a> · ' : ''}<a href="#status">run status</a> · ${toc}</nav>
</header>
<main>
<section id="claims"><h2>The paper's claims</h2>
<p>${verdictSummary(rows)}</p>
${claimsTable(rows)}
<p class="note">${esc(GRADIENT_NOTE)} Δ: ours − paper, in percentage points.</p>
</section>
${audit}
${sections.join('\n')}
<section id="status"><h2>Run status</h2>
<p>Every run folder under <code>${esc(resultsDir)}</code>; the report shows the latest complete one of each experiment and seed.</p>
${statusTable(runs, new Set(results.map(({ file }) => resolve(dirname(file)))))}
</section>
</main>
</body>
</html>
`;
}

/** The robustness table of `fgsm audit` (DIR/audit/audit.json) when the folder has been audited, else ''. */
function robustnessSection(resultsDir: string): string {
  const file = join(resultsDir, 'audit', 'audit.json');
  const record = readJsonState(file, `run \`fgsm audit ${resultsDir}\` again to rewrite it`) as AuditRecord | null;
  if (record === null) return '';
  const head = `<tr>${ROBUSTNESS_HEADER.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>`;
  const body = record.models.flatMap((model) =>
    robustnessCells(model).map(
      ([name, ...rest]) =>
        `<tr data-model="${esc(model.name)}"><th>${esc(name ?? '')}</th>${rest.map((cell) => `<td>${esc(cell)}</td>`).join('')}</tr>`,
    ),
  );
  const scope = record.limit === null ? 'the whole test set of each model' : `the first ${record.limit} test examples of each model only`;
  return `<section id="robustness"><h2>Robustness audit</h2>
<p>Errors under attacks past the paper's FGSM (<code>fgsm audit</code>, ${esc(scope)}): FGSM with both gradients, clipped and not, BIM-10, PGD-40, the label-leaking probe, transfer, ε = 1, and the gradient-masking flags.</p>
<table class="robustness"><thead>${head}</thead><tbody>${body.join('')}</tbody></table>
</section>`;
}

/** Writes the page of `renderHtmlReport` to `out`; returns its size in bytes. */
export async function writeHtmlReport(resultsDir: string, rows: readonly ReportRow[], out: string): Promise<number> {
  const page = await renderHtmlReport(resultsDir, rows);
  writeFileAtomic(out, page);
  return Buffer.byteLength(page);
}

const STYLE = `
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1a1a1a; margin: 0; background: #fafafa; }
header, main { max-width: 1400px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 8px; }
h1 { font-size: 26px; margin: 16px 0 4px; }
h2 { font-size: 21px; margin: 36px 0 8px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }
h3 { font-size: 17px; margin: 24px 0 6px; }
nav { margin: 8px 0 16px; line-height: 1.9; }
a { color: #0b57a3; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; background: #eee; padding: 1px 3px; border-radius: 3px; word-break: break-all; }
table { border-collapse: collapse; background: white; margin: 8px 0; font-size: 14px; }
th, td { border: 1px solid #d6d6d6; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f0f0f0; }
td.num, th.num { text-align: right; }
.claims { width: 100%; }
.claims td:first-child { white-space: nowrap; }
.claims td[data-key='quantity'] { min-width: 11em; }
.claims td[data-key='verdict'] { min-width: 18em; }
.claims td[data-key='ours'], .claims td[data-key='delta'] { white-space: nowrap; }
td[data-key='runId'] { font-size: 12px; }
.verdict-reproduced { background: #e3f4e1; }
.verdict-off { background: #fff4d6; }
.verdict-not-measured, .verdict-out-of-scope { color: #777; }
.verdict-not-comparable, .fails { background: #fde2e1; color: #8a1010; }
.note, .dim { color: #666; font-size: 13px; }
.warning { background: #fde2e1; border-left: 4px solid #c00; padding: 6px 10px; }
article { background: white; border: 1px solid #ddd; border-radius: 6px; padding: 4px 16px 12px; margin: 12px 0; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 8px 0; }
figure svg, figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 13px; max-width: 560px; }
details > summary { cursor: pointer; color: #0b57a3; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 13px; margin: 6px 0; }
dt { color: #555; }
dd { margin: 0; }
.state-complete { color: #1d6b1d; }
.state-running { color: #0b57a3; }
.state-interrupted, .state-dead, .state-unknown { color: #9a6200; }
.state-failed { color: #8a1010; }
`;

/** An HTML id from a kind and a name (experiment names and run ids hold only safe characters, but be sure). */
const anchor = (kind: string, ...names: string[]): string => `${kind}-${names.join('-').replace(/[^A-Za-z0-9_-]/g, '_')}`;

const percent = (v: number | null | undefined): string => (v === null || v === undefined ? '—' : `${(100 * v).toFixed(2)}%`);

/** The paper table: the rows of `fgsm report --json`, one table row each, in their order. */
export const CLAIM_COLUMNS: readonly Column<ReportRow>[] = [
  { key: 'id', title: 'claim', value: (r) => r.id, html: (r) => `<span title="${esc(r.description)}">${esc(r.id)}</span>` },
  textColumn(
    'section',
    '§',
    (r) => r.section,
    (r) => r.section,
  ),
  textColumn(
    'quantity',
    'quantity',
    (r) => r.quantity,
    (r) => r.quantity,
  ),
  textColumn('paper', 'paper', (r) => r.paper, paperText, true),
  textColumn('ours', 'ours', (r) => r.ours, oursText, true),
  textColumn('oursStableGradient', 'stable ∇J', (r) => r.oursStableGradient, stableText, true),
  textColumn(
    'delta',
    'Δ (pts)',
    (r) => r.delta,
    (r) => signed(r.delta),
    true,
  ),
  {
    key: 'verdict',
    title: 'verdict',
    value: (r) => r.verdict,
    html: (r) => esc(verdictText(r)),
    className: (r) => (r.holds === false ? 'fails' : `verdict-${r.verdict.replace(/ /g, '-')}`),
  },
  {
    key: 'experiment',
    title: 'experiment',
    value: (r) => r.experiment,
    html: (r) => (r.experiment === '—' ? '—' : `<a href="#${anchor('exp', r.experiment.replace(/ \(provisional\)$/, ''))}">${esc(r.experiment)}</a>`),
  },
  textColumn(
    'runId',
    'run',
    (r) => r.runId,
    (r) => r.runId,
  ),
];

export function claimsTable(rows: readonly ReportRow[], columns: readonly Column<ReportRow>[] = CLAIM_COLUMNS): string {
  return htmlTable(rows, columns, 'claims');
}

function verdictSummary(rows: readonly ReportRow[]): string {
  const counts = new Map<string, number>();
  for (const row of rows) counts.set(row.verdict, (counts.get(row.verdict) ?? 0) + 1);
  const failed = rows.filter((row) => row.holds === false).length;
  return `${rows.length} rows: ${[...counts].map(([verdict, n]) => `${n} ${verdict}`).join(', ')}; ${failed} must-hold condition${failed === 1 ? '' : 's'} failing.`;
}

const STATE_COLUMNS: readonly Column<RunOverview & { reported: boolean }>[] = [
  textColumn(
    'experiment',
    'experiment',
    (r) => r.experiment,
    (r) => r.experiment,
  ),
  textColumn(
    'runId',
    'run',
    (r) => r.runId,
    (r) => r.runId,
  ),
  textColumn(
    'seed',
    'seed',
    (r) => r.seed,
    (r) => (r.seed === null ? '—' : String(r.seed)),
    true,
  ),
  { key: 'state', title: 'state', value: (r) => r.state, html: (r) => esc(r.state), className: (r) => `state-${r.state}` },
  textColumn(
    'epoch',
    'last epoch',
    (r) => r.epoch,
    (r) => (r.epoch === null ? '—' : `stage ${r.stage}, epoch ${r.epoch}`),
  ),
  textColumn(
    'best',
    'best so far',
    (r) => r.best,
    (r) => (r.best === null ? '—' : `${percent(r.best.error)} ${r.best.metric} (epoch ${r.best.epoch})`),
  ),
  textColumn(
    'reported',
    'in this report',
    (r) => r.reported,
    (r) => (r.reported ? 'yes' : ''),
  ),
  textColumn(
    'message',
    'message',
    (r) => r.message,
    (r) => r.message ?? '',
  ),
];

function statusTable(runs: RunOverview[], reported: Set<string>): string {
  return htmlTable(
    runs.map((run) => ({ ...run, reported: reported.has(resolve(run.dir)) })),
    STATE_COLUMNS,
    'status',
  );
}

/** Unique prefixes for the ids inside inline SVGs (vega names its legend gradient gradient_0 in every figure). */
class FigureIds {
  private count = 0;

  inline(svg: string): string {
    const prefix = `fig${++this.count}`;
    const ids = [...svg.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]!);
    let out = svg.replace(/^<\?xml[^>]*>\s*/, '');
    for (const id of ids) {
      out = out
        .replace(new RegExp(`(\\s)id="${id}"`, 'g'), `$1id="${prefix}-${id}"`)
        .replaceAll(`url(#${id})`, `url(#${prefix}-${id})`)
        .replaceAll(`href="#${id}"`, `href="#${prefix}-${id}"`);
    }
    return out;
  }
}

const figure = (content: string, caption: string): string => `<figure>${content}<figcaption>${esc(caption)}</figcaption></figure>`;

const pngFigure = (file: string, alt: string, caption: string): string =>
  figure(`<img src="data:image/png;base64,${readFileSync(file).toString('base64')}" alt="${esc(alt)}">`, caption);

function statusLine(dir: string, runs: RunOverview[]): string {
  const run = runs.find((r) => resolve(r.dir) === resolve(dir));
  if (!run) return '<p class="dim">no status.json in its folder (a result copied without it)</p>';
  return `<p>status: <span class="state-${run.state}">${esc(run.state)}</span>${run.message ? ` — ${esc(run.message)}` : ''}</p>`;
}

async function runArticle(dir: string, record: ClaimSource, runs: RunOverview[], figures: FigureIds): Promise<string> {
  const seed = record.seed === null ? '' : ` (seed ${record.seed})`;
  const parts = [
    `<h3>run ${esc(record.runId)}${seed}</h3>`,
    statusLine(dir, runs),
    record.provisional ? `<p class="warning">provisional: ${esc(record.provisional)}</p>` : '',
    record.data.warning ? `<p class="warning">${esc(record.data.warning)}</p>` : '',
  ];
  if (record.format === 'fgsm-result/1')
    parts.push(metricsTable(record), `<div class="figures">${(await runFigures(dir, record, figures)).join('\n')}</div>`);
  else parts.push(usesTable(record), `<div class="figures">${(await crossRunFigures(record, figures)).join('\n')}</div>`);
  parts.push(`<details><summary>provenance</summary>${provenance(record)}</details>`);
  return `<article id="${anchor('run', record.experiment, record.runId)}">${parts.join('\n')}</article>`;
}

interface MetricsRow {
  set: string;
  gradient: string;
  n: number;
  error: number;
  meanConfidenceOnMistakes: number | null;
  zeroGradient: number | null;
}

const METRIC_COLUMNS: readonly Column<MetricsRow>[] = [
  textColumn(
    'set',
    'test set',
    (r) => r.set,
    (r) => r.set,
  ),
  textColumn(
    'gradient',
    'softmax gradient',
    (r) => r.gradient,
    (r) => r.gradient,
  ),
  textColumn(
    'n',
    'examples',
    (r) => r.n,
    (r) => String(r.n),
    true,
  ),
  textColumn(
    'error',
    'error',
    (r) => r.error,
    (r) => percent(r.error),
    true,
  ),
  textColumn(
    'meanConfidenceOnMistakes',
    'confidence on mistakes',
    (r) => r.meanConfidenceOnMistakes,
    (r) => percent(r.meanConfidenceOnMistakes),
    true,
  ),
  textColumn(
    'zeroGradient',
    'zero-gradient examples',
    (r) => r.zeroGradient,
    (r) => (r.zeroGradient === null ? '—' : String(r.zeroGradient)),
    true,
  ),
];

function metricsTable(record: ResultRecord): string {
  const m = record.metrics;
  const byGradient = fgsmByGradient(m);
  const fgsm = (['standard', 'stable'] as const).flatMap((gradient) =>
    Object.values(byGradient[gradient] ?? {}).map((f): MetricsRow => ({
      set: `FGSM ε=${f.epsilon}`,
      gradient,
      n: f.n,
      error: f.error,
      meanConfidenceOnMistakes: f.meanConfidenceOnMistakes,
      zeroGradient: f.zeroGradient,
    })),
  );
  const rows: MetricsRow[] = [
    {
      set: 'clean',
      gradient: '—',
      n: m.clean.n,
      error: m.clean.error,
      meanConfidenceOnMistakes: m.clean.meanConfidenceOnMistakes,
      zeroGradient: null,
    },
    ...fgsm.sort((a, b) => a.set.localeCompare(b.set)),
  ];
  const t = m.training;
  const training =
    `stage 1: ${t.epochs} epochs, stopped by ${t.stoppedBy}, parameters of epoch ${t.chosenEpoch}` +
    (t.bestValidationError !== null ? ` (validation error ${percent(t.bestValidationError)})` : '') +
    (t.stage2 ? `; stage 2 (${t.stage2.mode}): ${t.stage2.epochs} epochs` : '') +
    `; ${(t.totalSeconds / 3600).toFixed(2)} h of training`;
  return `${htmlTable(rows, METRIC_COLUMNS, 'metrics')}<p class="dim">${esc(training)}</p>`;
}

/** The ε at which the paper reports FGSM (.25) when measured, else the largest measured. */
function paperEpsilon(fgsm: Record<string, RecordedFgsmMetrics>): RecordedFgsmMetrics | undefined {
  return fgsm['0.25'] ?? Object.values(fgsm).sort((a, b) => b.epsilon - a.epsilon)[0];
}

async function runFigures(dir: string, record: ResultRecord, figures: FigureIds): Promise<string[]> {
  const out: string[] = [];
  const file = (name: string) => join(dir, name);
  if (existsSync(file('training-curve.svg'))) {
    out.push(figure(figures.inline(readFileSync(file('training-curve.svg'), 'utf8')), 'error per epoch (training-curve.svg)'));
  }
  for (const sweep of sweepFolders(dir)) {
    out.push(figure(figures.inline(readFileSync(join(sweep.dir, 'sweep.svg'), 'utf8')), sweep.caption));
  }
  if (existsSync(file('examples.png'))) {
    out.push(
      pngFigure(
        file('examples.png'),
        'clean test examples, their perturbation sign(∇ₓJ) and the adversarial examples, with predictions',
        'test examples: clean x, the perturbation sign(∇ₓJ), and x + ε·sign(∇ₓJ); the prediction and its confidence under each (green right, red wrong) (examples.png)',
      ),
    );
  }
  if (existsSync(file('weights.png')))
    out.push(pngFigure(file('weights.png'), 'logistic regression weights w and sign(w)', 'the weights w and sign(w) (weights.png)'));
  const classes = record.data.classes;
  out.push(
    figure(
      figures.inline(await confusionSvg(classes, record.metrics.clean.confusion, `${record.experiment}: clean test set`)),
      'confusion matrix, clean test examples',
    ),
  );
  const attacked = paperEpsilon(fgsmByGradient(record.metrics).standard ?? record.metrics.fgsm);
  if (attacked?.confusion) {
    out.push(
      figure(
        figures.inline(await confusionSvg(classes, attacked.confusion, `${record.experiment}: FGSM ε=${attacked.epsilon}`)),
        `confusion matrix, FGSM ε=${attacked.epsilon} examples (${attacked.gradient ?? 'standard'} softmax gradient)`,
      ),
    );
  }
  return out;
}

/** The ε sweeps of a run: sweeps/<key>/ folders holding sweep.svg, captioned from their sweep.json. */
function sweepFolders(dir: string): { dir: string; caption: string }[] {
  const root = join(dir, 'sweeps');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .sort()
    .map((key) => join(root, key))
    .filter((sweep) => existsSync(join(sweep, 'sweep.svg')))
    .map((sweep) => {
      let caption = 'FGSM error against ε (sweep.svg)';
      try {
        const meta = JSON.parse(readFileSync(join(sweep, 'sweep.json'), 'utf8')) as { epsilons?: number[]; attack?: { gradient?: string } };
        caption = `FGSM error against ε, ε = ${meta.epsilons?.join(', ')} (${meta.attack?.gradient ?? 'standard'} softmax gradient; sweep.svg)`;
      } catch {
        // a sweep without a readable sweep.json keeps the plain caption: its figure is still what it measured
      }
      return { dir: sweep, caption };
    });
}

const USE_COLUMNS: readonly Column<CrossRunResult['uses'][number]>[] = [
  textColumn(
    'name',
    'as',
    (u) => u.name,
    (u) => u.name,
  ),
  {
    key: 'runId',
    title: 'run',
    value: (u) => u.runId,
    html: (u) => `<a href="#${anchor('run', u.experiment, u.runId)}">${esc(`${u.experiment} / ${u.runId}`)}</a>`,
  },
  textColumn(
    'commit',
    'trained at commit',
    (u) => u.commit,
    (u) => u.commit ?? 'unknown',
  ),
  { key: 'weightsSha256', title: 'weights sha256', value: (u) => u.weightsSha256, html: (u) => `<code>${esc(u.weightsSha256)}</code>` },
];

const usesTable = (record: CrossRunResult): string => `<p>The trained runs it used:</p>${htmlTable(record.uses, USE_COLUMNS, 'uses')}`;

async function crossRunFigures(record: CrossRunResult, figures: FigureIds): Promise<string[]> {
  if (record.format !== 'fgsm-transfer/1') return [];
  const m = record.metrics;
  const configured = m.matrices.map((matrix) => ({ matrix, gradient: record.config.attack.gradient }));
  const other = (m.otherGradient?.matrices ?? []).map((matrix) => ({ matrix, gradient: m.otherGradient!.gradient }));
  const out: string[] = [];
  for (const { matrix, gradient } of [...configured, ...other]) {
    const errors = matrix.cells.map((row) => row.map((cell) => cell.error));
    const svg = await transferHeatmapSvg(matrix.names, errors, `${record.experiment}: FGSM ε=${matrix.epsilon} error (${gradient} gradient)`);
    out.push(figure(figures.inline(svg), `FGSM examples made on the row's model, scored by the column's (${gradient} softmax gradient)`));
  }
  return out;
}

function provenance(record: ClaimSource): string {
  const p = record.provenance;
  const b = p.backend;
  const d = record.data;
  const entries: [string, string][] = [
    ['code', `fgsm ${esc(p.fgsmVersion)}, commit <code>${esc(p.git.commit ?? 'unknown')}</code>${p.git.dirty ? ' (with uncommitted changes)' : ''}`],
    [
      'runtime',
      esc(
        `Node ${p.node}; ${Object.entries(p.tfjs)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
      ),
    ],
    ['backend', esc(`${b.name} (asked for ${b.requested}) — ${b.reason}`)],
    ['adapter', esc(`${b.detail ?? '—'}; device ${b.device}${b.threads ? `; ${b.threads} thread${b.threads === 1 ? '' : 's'}` : ''}`)],
    ['machine', esc(`${p.machine.cpu}, ${p.machine.cores} cores, ${p.machine.memoryGiB} GiB, ${p.machine.platform}/${p.machine.arch}`)],
    [
      'data',
      esc(
        `${d.kind} (${d.reason}) at ${d.location}; ${d.identity?.description ?? `train ${d.counts.train}, validation ${d.counts.validation}, test ${d.counts.test}`}`,
      ),
    ],
    ...d.files.map((f): [string, string] => [`${f.name}${f.gzip ? '.gz' : ''}`, `sha256 <code>${esc(f.sha256)}</code>`]),
    [
      'config',
      esc(
        `${record.configFiles.join(' ← ')}${record.overrides.length ? `; overrides ${record.overrides.join(' ')}` : ''}${'configHash' in record ? ` (hash ${record.configHash})` : ''}`,
      ),
    ],
    ['time', esc(`${record.startedAt} → ${record.finishedAt} (this invocation ${(record.wallSeconds / 60).toFixed(1)} min)`)],
    ['command', `<code>${esc(p.command.join(' '))}</code>`],
  ];
  return `<dl>${entries.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('')}</dl>`;
}
