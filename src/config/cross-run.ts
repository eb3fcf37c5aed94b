import { z } from 'zod';
import { FgsmAttackSchema, BackendChoice, ClaimIds, ExperimentName } from './schema.js';

/**
 * Experiments over several runs: they train nothing, they take the models other experiments trained (their
 * newest complete run on the same data, or a run named by id) and measure something between them. `kind` tells
 * such a document from an experiment. Every kind names the experiments it uses under `uses` (paths relative to the
 * document) and has an attack; the kinds are below.
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

const usesRecord = (what: string) =>
  z.record(z.string().regex(/^[a-z][A-Za-z0-9]*$/, 'a name in camelCase, e.g. original'), UseSchema).describe(what);

/** What every experiment over runs has besides its kind, its uses and its own keys. */
const common = {
  name: ExperimentName,
  description: z.string().default('').describe('free text about the experiment, kept in its result'),
  backend: BackendChoice,
  attack: FgsmAttackSchema.prefault({}),
  claims: ClaimIds,
};

export const TransferSchema = z
  .strictObject({
    kind: z.literal('transfer').describe('transfer (§6): FGSM examples made on each model, scored by every model'),
    ...common,
    uses: usesRecord(
      'the models, by a name each (the rows and columns of the matrix); metrics.transfer.<row>To<Column> is the error of the column model on the row model’s examples, e.g. originalToAdversarial',
    ).refine((uses) => Object.keys(uses).length >= 2, 'expected at least two models'),
  })
  .describe('a transfer experiment over the models of other experiments');

/**
 * §8: FGSM examples made on one model (source), scored by the others; on the examples the source misclassifies,
 * how often each other model predicts the source's (wrong) class. See eval/agreement.ts for the denominators.
 */
export const AgreementSchema = z
  .strictObject({
    kind: z.literal('agreement').describe('agreement (§8): how often other models make the same mistake as the source on its FGSM examples'),
    ...common,
    uses: usesRecord(
      'the models, by a name each: the source and the models compared with it; metrics.agreement.<name>All, <name>BothErr and, for two compared models in this order, <first><Second>',
    ),
    source: z.string().describe('the name (a key of uses) of the model the examples are made on'),
  })
  .superRefine((config, ctx) => {
    if (!(config.source in config.uses)) {
      ctx.addIssue({ code: 'custom', path: ['source'], message: `expected one of the names in uses (${Object.keys(config.uses).join(', ')})` });
    } else if (Object.keys(config.uses).length < 2) {
      ctx.addIssue({ code: 'custom', path: ['uses'], message: 'expected the source and at least one model to compare with it' });
    }
  })
  .describe('an agreement experiment over the models of other experiments');

/**
 * §9: the trained runs of one experiment, one per seed of its `seeds` list, averaged into an ensemble, attacked
 * as a whole and member by member.
 */
export const EnsembleSchema = z
  .strictObject({
    kind: z.literal('ensemble').describe('ensemble (§9): the runs of every seed of one experiment, their probabilities averaged'),
    ...common,
    uses: z
      .strictObject({ members: z.string().describe('an experiment file with `seeds:`; the newest complete run of each seed is a member') })
      .describe('the members'),
  })
  .describe('an ensemble experiment over the runs of one experiment');

export const CrossRunSchema = z.discriminatedUnion('kind', [TransferSchema, AgreementSchema, EnsembleSchema]);

export type TransferConfig = z.output<typeof TransferSchema>;
export type AgreementConfig = z.output<typeof AgreementSchema>;
export type EnsembleConfig = z.output<typeof EnsembleSchema>;
export type CrossRunConfig = z.output<typeof CrossRunSchema>;
export type CrossRunKind = CrossRunConfig['kind'];
export type UseConfig = TransferConfig['uses'][string];
