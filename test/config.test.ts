import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, hashConfig, loadExperiment } from '../src/config/load.js';
import { ExperimentSchema, experimentJsonSchema } from '../src/config/schema.js';
import { fgsmCli, tempDir } from './helpers.js';

const VALID = `name: t
model:
  kind: softmax
training:
  epochs: 3
attack:
  epsilons: [0.25]
evaluation:
  rubbish: null
`;

function write(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function issuesOf(fn: () => unknown): ConfigError['issues'] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.issues;
  }
  assert.fail('expected a ConfigError');
}

describe('experiment configs', () => {
  test('the paper configs validate, and defaults are filled in', () => {
    for (const file of ['configs/softmax.yaml', 'configs/logreg-3v7.yaml', 'configs/ci/softmax.yaml', 'configs/ci/logreg-3v7.yaml']) {
      const loaded = loadExperiment(file);
      assert.equal(loaded.config.training.batchSize, 100, file);
      assert.match(loaded.configHash, /^[0-9a-f]{12}$/);
    }
    const dir = tempDir();
    const config = loadExperiment(write(dir, 'e.yaml', VALID)).config;
    assert.equal(config.attack.clip, 'none');
    assert.equal(config.attack.labels, 'true');
    assert.equal(config.training.learningRate.decay, 1.000004);
    assert.equal(config.data.train, 'train');
  });

  test('every config shipped under configs/ validates (fgsm validate)', () => {
    const files = readdirSync('configs', { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => join('configs', f));
    assert.ok(files.length >= 30, `${files.length} configs`);
    const out = fgsmCli(['validate', ...files]);
    assert.equal(out.status, 0, out.stderr + out.stdout);
    assert.equal(out.stdout.split('\n').filter((line) => line.endsWith(')') && line.includes(': ok (')).length, files.length);
  });

  test('every error names the file, the line and column, the key, what was expected and what was found', () => {
    const dir = tempDir();
    const file = write(dir, 'bad.yaml', VALID.replace('epochs: 3', 'epochs: three').replace('kind: softmax', 'kind: softmax\n  maxColumNorm: 2'));
    const issues = issuesOf(() => loadExperiment(file));
    assert.equal(issues.length, 2, JSON.stringify(issues));
    const epochs = issues.find((i) => i.key === 'training.epochs')!;
    assert.equal(epochs.where, `${file}:6:3`);
    assert.match(epochs.message, /expected number; found "three"/);
    const typo = issues.find((i) => i.key === 'model.maxColumNorm')!;
    assert.equal(typo.where, `${file}:4:3`);
    assert.match(typo.message, /unknown key "maxColumNorm"/);
  });

  test('a missing required key points at its parent; bad enum values list what was found', () => {
    const dir = tempDir();
    const file = write(
      dir,
      'missing.yaml',
      VALID.replace('  epochs: 3\n', '  batchSize: 10\n').replace('epsilons: [0.25]', 'epsilons: [0.25]\n  clip: sometimes'),
    );
    const issues = issuesOf(() => loadExperiment(file));
    const epochs = issues.find((i) => i.key === 'training.epochs')!;
    assert.equal(epochs.where, `${file}:4:1`);
    assert.match(epochs.message, /found nothing \(the key is missing\)/);
    const clip = issues.find((i) => i.key === 'attack.clip')!;
    assert.equal(clip.where, `${file}:8:3`);
    assert.match(clip.message, /found "sometimes"/);
  });

  test('YAML syntax errors and cross-key rules are reported with positions', () => {
    const dir = tempDir();
    const broken = write(dir, 'broken.yaml', 'name: t\nmodel: [unclosed\n');
    assert.match(issuesOf(() => loadExperiment(broken))[0]!.where, /broken\.yaml:\d+:\d+$/);
    const logistic = write(dir, 'logistic.yaml', VALID.replace('kind: softmax', 'kind: logistic'));
    const issue = issuesOf(() => loadExperiment(logistic))[0]!;
    assert.equal(issue.key, 'data.digits');
    assert.match(issue.message, /exactly two digits/);
  });

  test('--set overrides keys, parses values as YAML, and its errors name the override', () => {
    const dir = tempDir();
    const file = write(dir, 'e.yaml', VALID);
    const loaded = loadExperiment(file, ['training.epochs=7', 'attack.clip=[0, 1]', 'data.limit.test=100']);
    assert.equal(loaded.config.training.epochs, 7);
    assert.deepEqual(loaded.config.attack.clip, [0, 1]);
    assert.equal(loaded.config.data.limit.test, 100);
    assert.notEqual(loaded.configHash, loadExperiment(file).configHash);
    const issues = issuesOf(() => loadExperiment(file, ['training.epochs=-1', 'training.epochz=2', 'nonsense']));
    assert.deepEqual(issues.map((i) => i.where).sort(), ['--set nonsense'].sort());
    const schemaIssues = issuesOf(() => loadExperiment(file, ['training.epochs=-1', 'training.epochz=2']));
    assert.deepEqual(schemaIssues.map((i) => i.where).sort(), ['--set training.epochs=-1', '--set training.epochz=2']);
  });

  test("YAML's .nan and .inf are reported as written, not as JSON's null", () => {
    const dir = tempDir();
    const file = write(
      dir,
      'nan.yaml',
      VALID.replace('epochs: 3', 'epochs: .inf').replace('epsilons: [0.25]', 'epsilons: [.nan]').replace('name: t', 'name: t\nseed: .nan'),
    );
    const found = Object.fromEntries(issuesOf(() => loadExperiment(file)).map((i) => [i.key, i.message]));
    assert.deepEqual(found, {
      seed: 'expected number; found .nan',
      'training.epochs': 'expected number; found .inf',
      'attack.epsilons.0': 'expected number; found .nan',
    });
  });

  test('an empty (or comment-only) file is one problem, "the file is empty", not a list of missing keys', () => {
    const dir = tempDir();
    for (const [name, text] of [
      ['empty.yaml', ''],
      ['comment.yaml', '# nothing yet\n'],
    ]) {
      const file = write(dir, name!, text!);
      assert.deepEqual(
        issuesOf(() => loadExperiment(file)),
        [{ where: file, key: '', message: 'the file is empty; expected a mapping of keys (name:, model:, training:, …)' }],
      );
    }
  });

  test('a --set that cannot be read: one line with the value, and a hint about --set, not about the file path', () => {
    const dir = tempDir();
    const file = write(dir, 'e.yaml', VALID);
    for (const set of ['training.epochs=[1', 'training.epochs']) {
      try {
        loadExperiment(file, [set]);
        assert.fail('expected a ConfigError');
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        assert.equal(error.issues.length, 1);
        assert.equal(error.message.trim().split('\n').length, 2, error.message);
        assert.match(error.hint!, /^write --set key\.path=value with the value in YAML/);
      }
    }
    const [issue] = issuesOf(() => loadExperiment(file, ['training.epochs=[1']));
    assert.match(issue!.message, /^expected a YAML value; found "\[1" \(Flow sequence must end with a \] at character 3\)$/);
  });

  test('--schema describes every key', () => {
    const undescribed: string[] = [];
    let keys = 0;
    const walk = (node: unknown, path: string): void => {
      if (!node || typeof node !== 'object') return;
      const schema = node as { properties?: Record<string, { description?: string }>; items?: unknown; anyOf?: unknown[]; oneOf?: unknown[] };
      for (const branch of [...(schema.anyOf ?? []), ...(schema.oneOf ?? []), schema.items]) walk(branch, path);
      for (const [key, value] of Object.entries(schema.properties ?? {})) {
        keys++;
        if (!value.description) undescribed.push(`${path}${key}`);
        walk(value, `${path}${key}.`);
      }
    };
    walk(experimentJsonSchema(), '');
    assert.ok(keys > 70, `only ${keys} keys found: the walk misses some`);
    assert.deepEqual(undescribed, []);
  });

  test('extends: the base file supplies keys, the file overrides them, errors point at the file that set the key', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'paper'));
    write(dir, 'paper/base.yaml', VALID.replace('epochs: 3', 'epochs: 30\n  batchSize: 0'));
    const child = write(dir, 'child.yaml', 'extends: paper/base.yaml\nname: child\ntraining:\n  epochs: 2\n');
    const issues = issuesOf(() => loadExperiment(child));
    assert.equal(issues.length, 1);
    assert.equal(issues[0]!.key, 'training.batchSize');
    assert.equal(issues[0]!.where, `${join(dir, 'paper/base.yaml')}:6:3`);
    const loaded = loadExperiment(child, ['training.batchSize=50']);
    assert.equal(loaded.config.name, 'child');
    assert.equal(loaded.config.training.epochs, 2);
    assert.deepEqual(loaded.files, [join(dir, 'paper/base.yaml'), child]);
  });

  test('data.dir is resolved relative to the config file that sets it', () => {
    const dir = tempDir();
    const file = write(dir, 'e.yaml', `${VALID}data:\n  dir: mnist\n`);
    assert.equal(loadExperiment(file).config.data.dir, join(dir, 'mnist'));
    assert.equal(loadExperiment(file, ['data.limit.test=5']).config.data.dir, join(dir, 'mnist'), 'another data key set on the command line');
    assert.equal(
      loadExperiment(file, ['data.dir=elsewhere']).config.data.dir,
      join(process.cwd(), 'elsewhere'),
      '--set is relative to the working directory',
    );
  });

  test('model.sigmoidLoss: mean for the sigmoid top, refused with the softmax top', () => {
    assert.equal(loadExperiment('configs/maxout-sigmoid.yaml', ['model.sigmoidLoss=mean']).config.model.kind, 'maxout');
    const issues = issuesOf(() => loadExperiment('configs/maxout.yaml', ['model.sigmoidLoss=mean']));
    assert.deepEqual(
      issues.map((issue) => [issue.key, issue.where]),
      [['model.sigmoidLoss', '--set model.sigmoidLoss=mean']],
    );
    assert.match(issues[0]!.message, /expected sum .* with model\.top: softmax/);
  });

  test('keys added after runs began leave the hash of those runs unchanged while they hold their default', () => {
    // the hashes these configs had before attack.gradient and training.objective.gradient existed
    const deterministic = ['training.objective.gradientState=deterministic'];
    assert.equal(loadExperiment('configs/maxout-adv.yaml', deterministic).configHash, '7e451ee2cea2');
    assert.equal(loadExperiment('configs/maxout-adv.yaml').configHash, '9054000cdb5c', 'the default state since the comparison');
    assert.equal(loadExperiment('configs/softmax.yaml').configHash, 'b84ebfeb49a3');
    // every committed experiment run's config, resolved again by today's schema, still has the hash it was run under
    for (const file of readdirSync('results/reference', { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('result.json'))) {
      const record = JSON.parse(readFileSync(join('results/reference', file), 'utf8')) as { format: string; config: unknown; configHash: string };
      if (record.format !== 'fgsm-result/1') continue; // an experiment over runs (transfer, agreement) has a config of another kind
      assert.equal(hashConfig(ExperimentSchema.parse(record.config)), record.configHash, file);
    }
    const base = loadExperiment('configs/maxout-adv.yaml', [...deterministic, 'attack.gradient=standard', 'training.objective.gradient=standard']);
    assert.equal(base.configHash, '7e451ee2cea2', 'the default written out is the default');
    const hashes = new Set([
      base.configHash,
      loadExperiment('configs/maxout-adv.yaml', [...deterministic, 'attack.gradient=stable']).configHash,
      loadExperiment('configs/maxout-adv.yaml', [...deterministic, 'training.objective.gradient=stable']).configHash,
    ]);
    assert.equal(hashes.size, 3, 'a value other than the default changes the hash');
  });

  test('model.dropout.stream: sfc32-rows by default and blind to the hash; threefry-v1 changes it; bad values named', () => {
    const maxout = loadExperiment('configs/maxout.yaml');
    assert.equal(maxout.configHash, 'c44321a69e34', 'the hash configs/maxout.yaml had before the key existed');
    assert.equal(maxout.config.model.kind === 'maxout' && maxout.config.model.dropout?.stream, 'sfc32-rows');
    assert.equal(loadExperiment('configs/maxout.yaml', ['model.dropout.stream=sfc32-rows']).configHash, maxout.configHash);
    const threefry = loadExperiment('configs/maxout.yaml', ['model.dropout.stream=threefry-v1']);
    assert.equal(threefry.config.model.kind === 'maxout' && threefry.config.model.dropout?.stream, 'threefry-v1');
    assert.notEqual(threefry.configHash, maxout.configHash);
    // no dropout at all: the key has no parent, and the hash is what it was
    const none = loadExperiment('configs/maxout.yaml', ['model.dropout=null']);
    assert.equal(none.config.model.kind === 'maxout' && none.config.model.dropout, null);
    assert.equal(none.configHash, 'fdc07a79cefb', 'the hash it had before the key existed');
    assert.equal(loadExperiment('configs/maxout-adv.yaml', ['model.dropout.hiddenKeep=0.6']).configHash, '6db4397e994c');
    const issues = issuesOf(() => loadExperiment('configs/maxout.yaml', ['model.dropout.stream=philox']));
    assert.deepEqual(
      issues.map((issue) => [issue.key, issue.where]),
      [['model.dropout.stream', '--set model.dropout.stream=philox']],
    );
    assert.match(issues[0]!.message, /sfc32-rows.*threefry-v1.*found "philox"/);
  });
});
