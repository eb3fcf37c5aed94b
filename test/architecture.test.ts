import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

/** The path of one run, left to right; core and paper lie under everything, cli on top. */
const ORDER = ['core', 'paper', 'config', 'data', 'backend', 'models', 'train', 'attacks', 'eval', 'results', 'report', 'cli'];

test('each folder of src/ imports only from itself and the folders to its left', () => {
  const violations: string[] = [];
  for (const folder of readdirSync('src')) {
    assert.ok(ORDER.includes(folder), `src/${folder} is not a step of the line`);
    for (const file of readdirSync(join('src', folder))) {
      const text = readFileSync(join('src', folder, file), 'utf8');
      for (const [, target] of text.matchAll(/from '\.\.\/(\w+)\//g)) {
        if (ORDER.indexOf(target!) > ORDER.indexOf(folder)) violations.push(`src/${folder}/${file} imports src/${target}`);
      }
    }
  }
  assert.deepEqual(violations, []);
});
