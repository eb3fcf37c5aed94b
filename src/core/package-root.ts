import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory of fgsm's package.json (works from src/ under a TS runner and from dist/ after the build). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('fgsm: cannot find package.json above the running module');
    dir = parent;
  }
  return dir;
}
