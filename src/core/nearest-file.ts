import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';

/** Levenshtein distance: single-character insertions, deletions and substitutions. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Extensions that name one kind of file: a config asked for as .yml is found as .yaml. */
const SAME_KIND = [['.yaml', '.yml']];

/** Files ending in one of `extensions` under `dir`, `depth` folders down at most, skipping hidden, unreadable folders and node_modules. */
function filesUnder(dir: string, extensions: readonly string[], depth: number): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((entry) => {
    const path = join(dir, entry);
    if (entry.startsWith('.') || entry === 'node_modules') return [];
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat?.isDirectory()) return depth > 0 ? filesUnder(path, extensions, depth - 1) : [];
    return stat?.isFile() && extensions.includes(extname(entry)) ? [path] : [];
  });
}

/**
 * The existing file most like a missing `path`, for "did you mean …?": among the files of its kind of extension within
 * two folders below its nearest existing folder (its own, or one or two above), the one whose name is closest
 * (a few typos at most), the shallowest of equally close ones (a file that moved up out of a folder), written
 * as `path` was (relative to the working directory unless it was absolute). Null when none is close.
 */
export function nearestExistingFile(path: string): string | null {
  let root = dirname(resolve(path));
  for (let up = 0; up < 2 && !existsSync(root); up++) root = dirname(root);
  if (!statSync(root, { throwIfNoEntry: false })?.isDirectory()) return null;
  const extension = extname(path);
  const stem = basename(path, extension);
  // a typo or two in a long name, one in a short one, none that changes half of it
  const close = (distance: number) => distance <= Math.max(1, Math.floor(stem.length / 4)) && distance < stem.length / 2;
  const extensions = SAME_KIND.find((kind) => kind.includes(extension)) ?? [extension];
  const ranked = filesUnder(root, extensions, 2)
    .map((file) => ({ file, distance: editDistance(basename(file, extname(file)), stem), depth: file.split(sep).length }))
    .filter(({ distance }) => close(distance))
    .sort((a, b) => a.distance - b.distance || a.depth - b.depth || a.file.localeCompare(b.file));
  const best = ranked[0]?.file;
  if (!best) return null;
  return path.startsWith(sep) ? best : relative(process.cwd(), best);
}
