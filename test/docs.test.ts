import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { test } from 'node:test';

/** The README stays a front door: what the tool is, how to start, one results table, where to read more. */
const README_MAX_LINES = 220;

/** Repository text describes the project, not a log of the work that made it ("this session", "session 14"). */
const WORK_LOG = /\bsession[- ]\d+|\b(this|that|each|every|last|previous|next|earlier|later|one|two|three|several) sessions?\b/i;

/** The paper notes outside the repository, under their old name: assembled so that this file does not cite them itself. */
const OUTSIDE_NOTES = new RegExp(['PAPER', 'md'].join('\\.'));

const CITATION = /docs\/paper\.md §(\d+)/g;

/** Every text file under a folder, its subfolders included. */
function files(dir: string, extensions: string[]): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return files(path, extensions);
    return extensions.some((extension) => entry.name.endsWith(extension)) ? [path] : [];
  });
}

const SOURCE_EXTENSIONS = ['.ts', '.js', '.yaml', '.yml', '.sh', '.md'];
const docs = files('docs', ['.md']);
const markdown = ['README.md', ...docs];
const cited = [...['src', 'configs', 'test', 'scripts'].flatMap((dir) => files(dir, SOURCE_EXTENSIONS)), ...markdown];

/** Lines of the files that match a pattern, as `file:line: text`. */
function matching(paths: string[], pattern: RegExp): string[] {
  return paths.flatMap((path) =>
    readFileSync(path, 'utf8')
      .split('\n')
      .flatMap((line, i) => (pattern.test(line) ? [`${path}:${i + 1}: ${line.trim()}`] : [])),
  );
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function anchor(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of a markdown file's headings, repeated ones numbered as GitHub numbers them. */
function anchors(path: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  let fenced = false;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = !fenced && /^#{1,6} (.+)$/.exec(line);
    if (!heading) continue;
    const base = anchor(heading[1]!);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

test(`README.md has at most ${README_MAX_LINES} lines`, () => {
  const lines = readFileSync('README.md', 'utf8').split('\n').length;
  assert.ok(lines <= README_MAX_LINES, `README.md has ${lines} lines; move details into docs/`);
});

test('the README, docs, sources and configs describe the project, not a log of past work', () => {
  const texts = [...markdown, ...['src', 'configs'].flatMap((dir) => files(dir, SOURCE_EXTENSIONS))];
  assert.deepEqual(matching(texts, WORK_LOG), []);
});

test('nothing cites the paper notes outside the repository; docs/paper.md is cited instead', () => {
  assert.deepEqual(matching(cited, OUTSIDE_NOTES), []);
});

test('every "docs/paper.md §N" citation names a section of docs/paper.md', () => {
  const sections = new Set([...readFileSync('docs/paper.md', 'utf8').matchAll(/^## §(\d+)\. /gm)].map((m) => m[1]!));
  assert.ok(sections.size > 0, 'docs/paper.md has no "## §N. " headings');
  const unresolved = cited.flatMap((path) =>
    [...readFileSync(path, 'utf8').matchAll(CITATION)].filter((m) => !sections.has(m[1]!)).map((m) => `${path}: ${m[0]}`),
  );
  assert.deepEqual(unresolved, []);
});

test('every relative link of the README and docs/ points to a file that exists, and to a heading it has', () => {
  const broken: string[] = [];
  for (const path of markdown) {
    const text = readFileSync(path, 'utf8').replace(/```[\s\S]*?```/g, '');
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target!)) continue;
      const [file, fragment] = target!.split('#') as [string, string | undefined];
      const resolved = file === '' ? path : normalize(join(dirname(path), decodeURIComponent(file)));
      if (!existsSync(resolved)) broken.push(`${path}: ${target} (no ${resolved})`);
      else if (fragment && statSync(resolved).isFile() && resolved.endsWith('.md') && !anchors(resolved).has(fragment))
        broken.push(`${path}: ${target} (no heading #${fragment} in ${resolved})`);
    }
  }
  assert.deepEqual(broken, []);
});
