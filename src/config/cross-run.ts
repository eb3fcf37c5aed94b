import { z } from 'zod';
import { AttackSchema, BackendChoice, ClaimIds, ExperimentName } from './schema.js';

/**
 * Experiments over several runs: they train nothing, they take the models other experiments trained (their
 * newest complete run on the same data, or a run named by id) and measure something between them. `kind` tells
 * such a document from an experiment. Transfer (§6): FGSM examples made on each model, scored by every model.
 */
const UseSchema = z
  .union([
    z.string().describe('the experiment file whose newest complete run is used (relative to this file)'),
    z.strictObject({
      config: z.string().describe('the experiment file (relative to this file)'),
      run: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/)
        .nullable()
        .default(null)
        .describe('a run id under <results dir>/<experiment>/ to use instead of the newest complete run'),
    }),
  ])
  .describe('an experiment whose trained model is used: its file, or { config, run } to pin one run');

export const TransferSchema = z
  .strictObject({
    kind: z.literal('transfer').describe('transfer (§6): FGSM examples made on each model, scored by every model'),
    name: ExperimentName,
    description: z.string().default('').describe('free text about the experiment, kept in its result'),
    backend: BackendChoice,
    uses: z
      .record(z.string().regex(/^[a-z][A-Za-z0-9]*$/, 'a name in camelCase, e.g. original'), UseSchema)
      .refine((uses) => Object.keys(uses).length >= 2, 'expected at least two models')
      .describe(
        'the models, by a name each (the rows and columns of the matrix); metrics.transfer.<row>To<Column> is the error of the column model on the row model’s examples, e.g. originalToAdversarial',
      ),
    attack: AttackSchema,
    claims: ClaimIds,
  })
  .describe('a transfer experiment over the models of other experiments');

export type TransferConfig = z.output<typeof TransferSchema>;
export type UseConfig = TransferConfig['uses'][string];
