import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CLAIMS } from '../src/paper/claims.js';
import { findResultFiles, readRecord } from '../src/report/collect.js';
import { compareClaims, failedChecks, withSeedMeans } from '../src/report/compare.js';
import { renderCsv, renderJson, renderMarkdown, renderTerminal } from '../src/report/render.js';
import { renderRunReport } from '../src/report/run-report.js';
import type { ResultRecord } from '../src/results/record.js';

const result = (claims: string[], metrics: Record<string, unknown>): ResultRecord =>
  ({ experiment: 'e', runId: 'r', claims, metrics }) as unknown as ResultRecord;

describe('paper table', () => {
  test('every claim of docs/paper.md §1 is recorded once, with a metric path for each quantity', () => {
    assert.equal(CLAIMS.length, 30); // the rows of docs/paper.md §1
    assert.equal(new Set(CLAIMS.map((c) => c.id)).size, CLAIMS.length);
    for (const c of CLAIMS) for (const q of c.quantities) assert.ok(q.metric.length >= 2, c.id);
  });

  test('each quantity says what it is: the attack and its ε, clean, rubbish, training, training set or agreement', () => {
    for (const claim of CLAIMS) {
      for (const q of claim.quantities) {
        const [source, epsilon] = q.metric;
        const says =
          source === 'fgsm'
            ? `FGSM ε=${epsilon!.replace(/^0/, '')} `
            : source === 'ensemble' || source === 'transfer'
              ? 'FGSM ε=.25 '
              : { clean: 'clean test ', rubbish: 'rubbish', training: 'training', trainingSet: 'training-set', agreement: 'agreement' }[source!];
        assert.ok(says && q.name.includes(says), `${claim.id} (${q.metric.join('.')}): "${q.name}" should say "${says}"`);
      }
    }
  });

  test("on data that is not the paper's, the verdict is one statement: not comparable, and why the check cannot pass", () => {
    const embedded = {
      ...result(['s4.softmax.fgsm'], { fgsm: { '0.25': { error: 1, meanConfidenceOnMistakes: 0.8 } } }),
      data: { warning: 'embedded subset' },
    } as unknown as ResultRecord;
    const verdicts = renderMarkdown(compareClaims(embedded))
      .trim()
      .split('\n')
      .slice(2)
      .map((line) => line.split(' | ')[7]);
    assert.deepEqual(verdicts, [
      'not comparable: not the paper\'s data, so it cannot show "≥ 99" (needs full MNIST)',
      "not comparable: not the paper's data",
    ]);
  });

  test('verdicts: within tolerance, off, must-hold conditions, not measured, out of scope', () => {
    const rows = compareClaims(
      result(['s4.softmax.fgsm', 's5.logreg37.clean', 's6.maxout1600_adv.clean', 's4.cifar'], {
        fgsm: { '0.25': { error: 0.985, meanConfidenceOnMistakes: 0.793 } },
        clean: { error: 0.0275 },
      }),
    );
    const byKey = Object.fromEntries(rows.map((r) => [`${r.id}/${r.quantity}`, r]));
    const error = byKey['s4.softmax.fgsm/FGSM ε=.25 error']!;
    assert.ok(Math.abs(error.ours! - 98.5) < 1e-9 && Math.abs(error.delta! + 1.4) < 1e-9);
    assert.equal(error.verdict, 'off');
    assert.equal(error.holds, false); // must hold ≥ 99
    assert.equal(byKey['s4.softmax.fgsm/FGSM ε=.25 confidence on mistakes']!.verdict, 'reproduced');
    const logreg = byKey['s5.logreg37.clean/clean test error']!;
    assert.equal(logreg.holds, false); // 2.75 is 1.15 points from 1.6: outside ±1
    const seeds = byKey['s6.maxout1600_adv.clean/clean test error']!;
    assert.ok(Math.abs(seeds.paper - 0.782) < 1e-9); // the mean of 0.77 ×4 and 0.83
    assert.equal(seeds.verdict, 'off');
    assert.equal(byKey['s4.cifar/FGSM ε=.1 error']!.verdict, 'out of scope');
    assert.deepEqual(
      failedChecks(rows).map((r) => r.id),
      ['s4.softmax.fgsm', 's5.logreg37.clean'],
    );
    const unmeasured = compareClaims(result(['s5.logreg37.fgsm'], { clean: { error: 0.01 } }))[0]!;
    assert.equal(unmeasured.verdict, 'not measured');
    assert.equal(unmeasured.holds, false, 'a must-hold claim that was not measured fails the check');
    const embedded = {
      ...result(['s4.softmax.fgsm'], { fgsm: { '0.25': { error: 1, meanConfidenceOnMistakes: 0.8 } } }),
      data: { warning: 'embedded subset' },
    };
    const notComparable = compareClaims(embedded as unknown as ResultRecord)[0]!;
    assert.equal(notComparable.verdict, 'not comparable');
    assert.equal(notComparable.holds, false, 'numbers on other data never pass the check');
  });

  test('claims no run measured are listed as such, and are not judged by --check', async () => {
    const { unmeasuredClaims } = await import('../src/report/compare.js');
    const rows = compareClaims(result(['s4.softmax.fgsm'], { fgsm: { '0.25': { error: 0.999, meanConfidenceOnMistakes: 0.8 } } }));
    const rest = unmeasuredClaims(rows);
    assert.equal(new Set([...rows, ...rest].map((r) => r.id)).size, CLAIMS.length);
    assert.ok(rest.every((r) => r.ours === null && r.holds === null && r.experiment === '—'));
    assert.equal(rest.find((r) => r.id === 's4.cifar')!.verdict, 'out of scope');
    assert.equal(rest.find((r) => r.id === 's6.maxout.clean')!.verdict, 'not measured');
    assert.deepEqual(failedChecks([...rows, ...rest]), []);
  });

  test('Markdown and CSV carry every row', () => {
    const rows = compareClaims(result(['s4.softmax.fgsm'], { fgsm: { '0.25': { error: 0.999, meanConfidenceOnMistakes: 0.8 } } }));
    assert.equal(renderMarkdown(rows).trim().split('\n').length, 2 + rows.length);
    const csv = renderCsv(rows).trim().split('\n');
    assert.equal(csv[0], 'id,section,quantity,paper,ours,ours_stable_gradient,delta,tolerance,verdict,must_hold,holds,experiment,run_id');
    assert.equal(csv[1], 's4.softmax.fgsm,4,FGSM ε=.25 error,99.9,99.9,,0,0.5,reproduced,≥ 99,true,e,r');
  });

  test('FGSM claims take the standard gradient, whichever the run configured, and show the stable one beside it', () => {
    const attack = (gradient: string, error: number) => ({ '0.25': { gradient, error, meanConfidenceOnMistakes: 0.9, saturated: 1191 } });
    for (const [fgsm, fgsmOtherGradient] of [
      [attack('standard', 0.9145), attack('stable', 0.9973)],
      [attack('stable', 0.9973), attack('standard', 0.9145)],
    ]) {
      const rows = compareClaims(result(['s4.maxout.fgsm', 's6.maxout.clean'], { fgsm, fgsmOtherGradient, clean: { error: 0.0094 } }));
      const error = rows.find((r) => r.id === 's4.maxout.fgsm' && r.quantity === 'FGSM ε=.25 error')!;
      assert.ok(Math.abs(error.ours! - 91.45) < 1e-9 && Math.abs(error.oursStableGradient! - 99.73) < 1e-9);
      assert.equal(rows.find((r) => r.id === 's6.maxout.clean')!.oursStableGradient, null, 'not an FGSM quantity');
      assert.match(renderMarkdown(rows), /\| 91\.45% \| 99\.73% \|[\s\S]*stable ∇J: the same attack/);
      assert.match(renderCsv(rows).split('\n')[1]!, /^s4\.maxout\.fgsm,4,FGSM ε=\.25 error,89\.4,91\.45,99\.73,/);
      assert.ok(Math.abs(JSON.parse(renderJson(rows))[0].oursStableGradient - 99.73) < 1e-9);
      assert.match(renderTerminal(rows), /99\.73%/);
    }
    const seeds = withSeedMeans(
      [0.9, 0.92]
        .map((e, i) => ({
          ...result(['s4.maxout.fgsm'], { fgsm: attack('standard', e), fgsmOtherGradient: attack('stable', e + 0.07) }),
          runId: `r${i}`,
        }))
        .flatMap((r) => compareClaims(r as ResultRecord)),
    );
    assert.ok(Math.abs(seeds.find((r) => r.seeds && r.quantity === 'FGSM ε=.25 error')!.oursStableGradient! - 98) < 1e-9);
  });

  test("a run whose attack is BIM or PGD measured none of the paper's FGSM figures", () => {
    const fgsm = { '0.25': { gradient: 'standard', error: 0.999, meanConfidenceOnMistakes: 0.9 } };
    const record = (method: string) =>
      ({ ...result(['s4.maxout.fgsm'], { fgsm, fgsmOtherGradient: fgsm }), config: { attack: { method } } }) as unknown as ResultRecord;
    const error = (method: string) => compareClaims(record(method)).find((r) => r.quantity === 'FGSM ε=.25 error')!;
    assert.ok(Math.abs(error('fgsm').ours! - 99.9) < 1e-9);
    for (const method of ['bim', 'pgd']) assert.deepEqual([error(method).ours, error(method).oursStableGradient], [null, null], method);
  });

  test('transfer and agreement rows take the standard gradient too and show the stable one beside it; older records show none', () => {
    const pair = (error: number) => ({ epsilon: 0.25, error, meanConfidenceOnMistakes: 0.9 });
    const transfer = (configured: string, metrics: Record<string, unknown>) =>
      ({
        format: 'fgsm-transfer/1',
        experiment: 'transfer',
        runId: 'r',
        claims: ['s6.transfer.orig_to_adv'],
        config: { attack: { gradient: configured } },
        metrics,
      }) as unknown as ResultRecord;
    const standard = { originalToAdversarial: pair(0.2337) };
    const stable = { originalToAdversarial: pair(0.3438) };
    for (const record of [
      transfer('standard', { transfer: standard, matrices: [], otherGradient: { gradient: 'stable', transfer: stable, matrices: [] } }),
      transfer('stable', { transfer: stable, matrices: [], otherGradient: { gradient: 'standard', transfer: standard, matrices: [] } }),
    ]) {
      const [row] = compareClaims(record);
      assert.ok(Math.abs(row!.ours! - 23.37) < 1e-9 && Math.abs(row!.oursStableGradient! - 34.38) < 1e-9);
    }
    const [old] = compareClaims(transfer('standard', { transfer: standard, matrices: [] }));
    assert.ok(Math.abs(old!.ours! - 23.37) < 1e-9);
    assert.equal(old!.oursStableGradient, null);
    const agreement = {
      format: 'fgsm-agreement/1',
      experiment: 'agreement',
      runId: 'r',
      claims: ['s8.agree.rbf_all'],
      metrics: { agreement: { rbfAll: 0.1559 }, byEpsilon: [], otherGradient: { gradient: 'stable', agreement: { rbfAll: 0.157 }, byEpsilon: [] } },
    } as unknown as ResultRecord;
    const [rbf] = compareClaims(agreement);
    assert.ok(Math.abs(rbf!.ours! - 15.59) < 1e-9 && Math.abs(rbf!.oursStableGradient! - 15.7) < 1e-9);
  });

  test('the committed results written before the stable gradient existed still render (standard only)', () => {
    // every committed run, not only the newest of each experiment: the old ones are the point here
    const records = findResultFiles('results/reference', 3)
      .map(readRecord)
      .filter((record): record is ResultRecord => record.format === 'fgsm-result/1' && record.metrics.fgsmOtherGradient === undefined);
    assert.ok(records.length >= 1, 'results/reference keeps runs from before both gradients were measured');
    for (const record of records) {
      const rows = compareClaims(record);
      for (const row of rows.filter((r) => r.quantity === 'FGSM ε=.25 error' && r.id.endsWith('fgsm'))) {
        assert.ok(Math.abs(row.ours! - 100 * record.metrics.fgsm['0.25']!.error) < 1e-9, row.id);
        assert.equal(row.oursStableGradient, null);
      }
      assert.doesNotMatch(renderMarkdown(rows), /stable ∇J: the same attack/);
      renderTerminal(rows);
      renderCsv(rows);
      const report = renderRunReport(record, rows);
      assert.match(report, /\| FGSM ε=0\.25 \| standard \(configured\) \|/);
      assert.match(report, /Saturated examples \(p_y = 1 in float32\) were not counted in this run/);
    }
  });
});

describe('--eps ranges', () => {
  test('START:STOP:STEP is inclusive and exact; lists are read as given; bad input names what was expected', async () => {
    const { parseEpsilons } = await import('../src/pipeline/sweep.js');
    assert.deepEqual(parseEpsilons('0:0.3:0.025').length, 13);
    assert.deepEqual(parseEpsilons('0:0.3:0.1'), [0, 0.1, 0.2, 0.3]);
    assert.deepEqual(parseEpsilons('0.1,0.25'), [0.1, 0.25]);
    assert.throws(() => parseEpsilons('0:1'), /--eps 0:1: expected three numbers/);
    assert.throws(() => parseEpsilons('0.1,2'), /expected every ε in \[0, 1\], found 2/);
    assert.throws(() => parseEpsilons('0:0.3:0'), /expected STEP > 0/);
  });
});
