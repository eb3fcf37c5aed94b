import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

/** The path of one run, left to right; core and paper lie under everything; pipeline strings the steps together as library calls (one run, a sweep, an experiment over runs); cli on top. */
const ORDER = ['core', 'paper', 'config', 'data', 'backend', 'models', 'train', 'attacks', 'engine', 'eval', 'results', 'report', 'pipeline', 'cli'];

/** The source files of a folder of src/, its subfolders' included (e.g. cli/executors/). */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

test('each folder of src/ imports only from itself and the folders to its left', () => {
  const violations: string[] = [];
  for (const folder of readdirSync('src')) {
    assert.ok(ORDER.includes(folder), `src/${folder} is not a step of the line`);
    for (const file of sourceFiles(join('src', folder))) {
      const text = readFileSync(file, 'utf8');
      for (const [, specifier] of text.matchAll(/from '(\.[^']+)'/g)) {
        const target = relative(resolve('src'), resolve(dirname(file), specifier!)).split('/')[0]!;
        if (ORDER.indexOf(target) > ORDER.indexOf(folder)) violations.push(`${file} imports src/${target}`);
      }
    }
  }
  assert.deepEqual(violations, []);
});
