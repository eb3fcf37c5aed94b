import type { LoadedCrossRun } from '../config/load.js';
import type { CrossRunResult } from '../results/record.js';
import { runAgreement } from './agreement.js';
import { runEnsemble } from './ensemble.js';
import { runTransfer } from './transfer.js';
import type { CrossRunOptions } from './used-runs.js';

/** Runs an experiment over runs of whichever kind it is. */
export async function runCrossRun(loaded: LoadedCrossRun, options: CrossRunOptions): Promise<{ record: CrossRunResult; dir: string }> {
  const { config } = loaded;
  switch (config.kind) {
    case 'transfer':
      return runTransfer({ ...loaded, config }, options);
    case 'agreement':
      return runAgreement({ ...loaded, config }, options);
    case 'ensemble':
      return runEnsemble({ ...loaded, config }, options);
  }
}
