import { z } from 'zod';
import { CLAIM_IDS } from '../paper/claims.js';

/**
 * The experiment schema: the single source of truth for every key of a YAML experiment, its type, its
 * default and its documentation (`fgsm validate --schema` prints it as JSON Schema). Objects are strict:
 * an unknown key is an error, so a typo never silently falls back to a default.
 */

const positiveInt = z.number().int().min(1);
const digit = z.number().int().min(0).max(9);

const DataSchema = z
  .strictObject({
    source: z
      .enum(['auto', 'dir', 'cache', 'download', 'embedded'])
      .default('auto')
      .describe(
        'where MNIST comes from. auto: data dir (--data-dir / data.dir / FGSM_DATA_DIR) → user cache → download → the embedded 10k subset (not comparable to the paper)',
      ),
    dir: z.string().nullable().default(null).describe('a directory holding the four MNIST IDX files (.gz or not); relative to this config file'),
    train: z.enum(['train', 'all-train']).default('train').describe('train: the first 50,000 training examples; all-train: all 60,000'),
    validation: z.boolean().default(true).describe('hold out the last 10,000 training examples for validation (needs train: train)'),
    digits: z
      .array(digit)
      .min(2)
      .nullable()
      .default(null)
      .describe('keep only these digits, in this order (class i is digits[i]); e.g. [3, 7] for logistic regression'),
    limit: z
      .strictObject({
        train: positiveInt.nullable().default(null).describe('at most this many training examples; null for all'),
        validation: positiveInt.nullable().default(null).describe('at most this many validation examples; null for all'),
        test: positiveInt.nullable().default(null).describe('at most this many test examples; null for all'),
      })
      .prefault({})
      .describe('use only the first N examples of each split (after the digit filter), for quick runs'),
  })
  .describe('the data set and its splits');

const InitSchema = z
  .strictObject({
    range: z.number().min(0).default(0.005).describe('weights drawn from Uniform(−range, range); biases start at 0'),
  })
  .describe('parameter initialisation');

const maxColumnNorm = z
  .number()
  .positive()
  .nullable()
  .default(null)
  .describe('after every update, rescale each weight column (the weights into one class) down to this L2 norm if larger');

/** Keys every single-layer (linear) model has. */
const linearModelKeys = { init: InitSchema.prefault({}), maxColumnNorm };

const SoftmaxSchema = z
  .strictObject({
    kind: z.literal('softmax').describe('softmax regression, 784 → classes'),
    ...linearModelKeys,
  })
  .describe('shallow softmax regression (§4)');

const LogisticSchema = z
  .strictObject({
    kind: z.literal('logistic').describe('binary logistic regression, P(y=1|x) = σ(wᵀx + b), y ∈ {−1, +1}'),
    ...linearModelKeys,
  })
  .describe('logistic regression on two digits (§5, Fig. 2): class 0 = data.digits[0] (y = −1), class 1 = data.digits[1] (y = +1)');

const probability = z.number().gt(0).max(1);

const MaxoutSchema = z
  .strictObject({
    kind: z.literal('maxout').describe('a maxout network: maxout layers, then softmax'),
    layers: z
      .array(
        z.strictObject({
          units: positiveInt.describe('maxout units (outputs) of the layer'),
          pieces: positiveInt.default(5).describe('linear pieces per unit; a unit is their max'),
        }),
      )
      .min(1)
      .default([
        { units: 240, pieces: 5 },
        { units: 240, pieces: 5 },
      ])
      .describe('the hidden layers, input side first'),
    ...linearModelKeys,
    dropout: z
      .strictObject({
        inputKeep: probability.default(0.8).describe('probability an input pixel is kept'),
        inputScale: z.number().positive().default(1).describe('kept pixels are multiplied by this (pylearn2: 1, not rescaled)'),
        hiddenKeep: probability.default(0.5).describe("probability a maxout unit's output is kept"),
        hiddenScale: z.number().positive().default(2).describe('kept unit outputs are multiplied by this'),
        stream: z
          .enum(['sfc32-rows', 'threefry-v1'])
          .default('sfc32-rows')
          .describe(
            "the random stream the masks are drawn from: sfc32-rows (the default; every run before this key), each layer's mask drawn row by row from a sequential sfc32 stream, or threefry-v1, each element a pure function of (step seed, layer, row, column) under Threefry-2x32-20, so a GPU engine draws the masks on the device and the tfjs backends draw the same ones",
          ),
      })
      .nullable()
      .prefault({})
      .describe('dropout in training (none at evaluation); a fresh mask per example per step; null for none'),
    top: z
      .enum(['softmax', 'sigmoid'])
      .default('softmax')
      .describe(
        "the output layer: softmax (the paper's maxout), or sigmoid, Appendix A's independent-sigmoid top: p_k = σ(z_k), each class its own sigmoid, trained with per-class binary cross-entropies (see sigmoidLoss)",
      ),
    sigmoidLoss: z
      .enum(['sum', 'mean'])
      .default('sum')
      .describe(
        "with top: sigmoid, how the per-class binary cross-entropies make J: their sum (the true class's term weighs as in the softmax cross-entropy), or their mean over the classes, as pylearn2's Sigmoid layer computes its cost (the same direction, 1/classes the size: smaller steps at the same learning rate)",
      ),
  })
  .describe('maxout network with dropout (§4, §6): 784 → maxout(240, 5) → maxout(240, 5) → softmax(10)');

const RbfSchema = z
  .strictObject({
    kind: z.literal('rbf').describe('an RBF network: d_k(x) = Σ_f a_kf (x_f − μ_kf)², a ≥ 0, p_k(x) = exp(−d_k(x))'),
    output: z
      .enum(['independent', 'softmax'])
      .default('independent')
      .describe(
        'independent: each p_k on its own (they need not sum to 1), trained with the sum over classes of binary cross-entropies, prediction argmax_k p_k, confidence max_k p_k (docs/paper.md §2); softmax: p = softmax(−d), softmax cross-entropy',
      ),
    precision: z
      .enum(['exp', 'softplus', 'clamp'])
      .default('clamp')
      .describe(
        'how a ≥ 0 is parameterised by the trained ρ: a = exp(ρ), a = softplus(ρ), or a = ρ clamped at 0 after every update (training.weightDecay, if any, acts on ρ)',
      ),
    init: z
      .strictObject({
        centres: z
          .enum(['class-means', 'examples'])
          .default('class-means')
          .describe("μ_k starts at the mean training image of class k, or at one training image of class k drawn from the seed's stream"),
        precision: z.number().positive().default(0.05).describe('every a_kf starts at this value'),
      })
      .prefault({})
      .describe('where the centres and precisions start'),
  })
  .describe('shallow RBF network, no hidden layer (§7, Appendix A)');

export const ModelSchema = z.discriminatedUnion('kind', [SoftmaxSchema, LogisticSchema, MaxoutSchema, RbfSchema]);

const alpha = z.number().min(0).max(1).default(0.5).describe('weight of the clean term: α·J(x) + (1 − α)·J(x̃)');
const epsilon = z.number().min(0).max(1).default(0.25).describe('ε, in pixel units ([0, 1])');

/** The formulations of ∂J/∂z of the softmax cross-entropy in float32 (see SoftmaxGradient in models/). */
export const SOFTMAX_GRADIENTS = ['standard', 'softmax-minus-onehot', 'exp-log-softmax-minus-onehot', 'stable'] as const;

/** How ∂J/∂z of the softmax cross-entropy is computed in float32 (docs/paper.md §3); each key says where it applies. */
const lossGradient = z.enum(SOFTMAX_GRADIENTS).default('standard');

const ObjectiveSchema = z
  .discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('clean').describe('the usual loss J(θ, x, y)') }),
    z.strictObject({
      kind: z.literal('adversarial').describe('§6: J̃ = α·J(x) + (1 − α)·J(x + ε·sign(∇ₓJ(x))), true labels, x̃ recomputed every minibatch'),
      alpha,
      epsilon,
      gradientState: z
        .enum(['deterministic', 'clean-mask', 'independent-mask'])
        .default('clean-mask')
        .describe(
          "the network while ∇ₓJ is taken: without dropout, with the clean term's dropout masks (the default: it reproduces §6, see results/gradient-states/), or with masks of its own",
        ),
      gradient: lossGradient.describe(
        "the softmax gradient while ∇ₓJ is taken for x̃ (see attack.gradient); the parameters' gradient is the standard one either way",
      ),
    }),
    z.strictObject({
      kind: z.literal('noise').describe('§6 control: train on x + noise instead of x + ε·sign(∇ₓJ)'),
      distribution: z.enum(['sign', 'uniform']).describe('sign: ε·(random ±1) per pixel; uniform: U(−ε, ε) per pixel'),
      epsilon,
      mixing: z.enum(['replace', 'alpha-mix']).default('replace').describe('replace: J(x + noise); alpha-mix: α·J(x) + (1 − α)·J(x + noise)'),
      alpha,
    }),
  ])
  .prefault({ kind: 'clean' })
  .describe('what each minibatch is trained on');

export const TrainingSchema = z
  .strictObject({
    epochs: positiveInt.describe('the maximum number of epochs'),
    batchSize: positiveInt.default(100).describe('examples per minibatch (one SGD update each)'),
    learningRate: z
      .strictObject({
        initial: z.number().positive().default(0.1).describe('η at the first update'),
        decay: z.number().min(1).default(1.000004).describe('η = initial / decay^t after t minibatch updates'),
        floor: z.number().min(0).default(1e-6).describe('η never falls below this'),
      })
      .prefault({})
      .describe("the learning rate η: exponential decay per update down to a floor (pylearn2's ExponentialDecay)"),
    momentum: z
      .strictObject({
        initial: z.number().min(0).max(0.999).default(0.5).describe('μ up to startEpoch'),
        final: z.number().min(0).max(0.999).default(0.7).describe('μ from endEpoch on'),
        startEpoch: positiveInt.default(1).describe('the epoch at which μ starts to rise from initial'),
        endEpoch: positiveInt.default(250).describe('momentum rises linearly from initial (startEpoch) to final (endEpoch)'),
      })
      .prefault({})
      .describe('classical momentum: v ← μv − ηg; θ ← θ + v'),
    weightDecay: z.number().min(0).default(0).describe('L2 penalty coefficient on weights (not biases)'),
    l1FirstLayer: z
      .number()
      .min(0)
      .default(0)
      .describe("§5: L1 penalty coefficient on the first layer's weights (the paper's 0.0025 stalls training)"),
    objective: ObjectiveSchema,
    earlyStopping: z
      .strictObject({
        metric: z
          .enum(['validation-error', 'adversarial-validation-error', 'none'])
          .default('validation-error')
          .describe('clean validation error, or the error on FGSM examples of the validation split (§6, 1600 units)'),
        epsilon: epsilon.describe('ε of the FGSM validation attack (adversarial-validation-error)'),
        patience: positiveInt.default(10).describe('stop after this many epochs without a new best'),
        keepBest: z.boolean().default(true).describe('end with the parameters of the best epoch'),
      })
      .prefault({})
      .describe("stage 1 stops when the validation metric has not improved for `patience` epochs (pylearn2's MonitorBased)"),
    stage2: z
      .strictObject({
        mode: z
          .enum(['none', 'continue', 'retrain'])
          .default('none')
          .describe(
            'after early stopping on the first 50,000: continue from the best parameters on all 60,000 until the loss on the last 10,000 falls to the best training loss (pylearn2 mnist_pi_continue), or retrain from scratch on all 60,000 for the chosen number of epochs (§6, 1600 units)',
          ),
        maxEpochs: positiveInt.default(500).describe('a safety cap on the epochs of a continue stage'),
      })
      .prefault({})
      .describe('the second training stage, on all 60,000 examples'),
  })
  .describe('the training loop: minibatch SGD with momentum, schedules, early stopping');

/** The keys every attack has. */
const attackKeys = {
  epsilons: z.array(z.number().min(0).max(1)).min(1).default([0.25]).describe('every ε to evaluate (FGSM: one gradient serves them all)'),
  clip: z
    .union([z.literal('none'), z.tuple([z.number(), z.number()])])
    .default('none')
    .describe('none (the paper) or [min, max] (what most libraries do; weaker on MNIST); an iterative attack clips every step'),
  labels: z.enum(['true', 'predicted']).default('true').describe("labels in J: true (the paper) or the model's predictions (avoids label leaking)"),
  target: z
    .union([z.literal('none'), z.literal('next'), z.literal('least-likely'), digit])
    .default('none')
    .describe('none: untargeted; otherwise step towards a class: (y+1) mod K, the least likely class, or a fixed digit'),
  batchSize: positiveInt.default(2000).describe('examples per gradient batch (results do not depend on it)'),
  gradient: lossGradient.describe(
    "the softmax gradient of the attack (and of early stopping's adversarial validation error), ∂J/∂z = p − onehot(y) in one of four float32 formulations. standard: autodiff through logsumexp(z) − z_y; softmax-minus-onehot: p from the float32 softmax (Theano's and TensorFlow's); exp-log-softmax-minus-onehot: p = exp(log softmax(z)) (PyTorch's); these three lose the true-class part once p_y rounds to 1 and ∇ₓJ turns, each at slightly different logits. stable: ∂J/∂z_y = −Σ_{k≠y} p_k, no saturation. Every run measures this one (metrics.fgsm) and stable, or standard when this is stable (metrics.fgsmOtherGradient); the paper table keeps the standard one",
  ),
};

/** The paper's attack, and the only one experiments over runs (transfer, agreement, ensembles) take. */
export const FgsmAttackSchema = z.strictObject({
  method: z.literal('fgsm').default('fgsm').describe('the fast gradient sign method, x̃ = x + ε·sign(∇ₓJ(θ, x, y))'),
  ...attackKeys,
});

/** α and the number of steps of an iterative attack. */
const stepKeys = (steps: number) => ({
  steps: positiveInt.default(steps).describe('gradient steps (one forward and one backward pass each)'),
  stepSize: z.number().positive().max(1).default(0.01).describe('α: every pixel moves by α·sign(∇ₓJ) per step, then back into the ε-ball'),
});

export const AttackSchema = z
  .discriminatedUnion('method', [
    FgsmAttackSchema,
    z.strictObject({
      method: z.literal('bim').describe('the basic iterative method (Kurakin et al. 2017): FGSM steps of α from x, projected onto the ε-ball'),
      ...attackKeys,
      ...stepKeys(10),
    }),
    z.strictObject({
      method: z
        .literal('pgd')
        .describe('projected gradient descent (Madry et al. 2018): BIM from a random start in the ε-ball, the worst of several restarts kept'),
      ...attackKeys,
      ...stepKeys(40),
      randomStart: z.boolean().default(true).describe("start at x + U(−ε, ε) per pixel, drawn from the experiment's seed (false: from x, as BIM)"),
      restarts: positiveInt
        .default(1)
        .describe('runs from independent random starts; per example the worst is kept (misclassified first, then the highest loss)'),
    }),
  ])
  .prefault({})
  .describe('the attack evaluated on the test set; method fgsm, bim or pgd picks which, and which keys it has');

const EvaluationSchema = z
  .strictObject({
    rubbish: z
      .strictObject({ samples: positiveInt.default(10000).describe('how many N(0, I) inputs to draw') })
      .nullable()
      .default({ samples: 10000 })
      .describe('Appendix A: N(0, I) inputs, "error" = some class gets p > 0.5; null to skip'),
    figureExamples: z.number().int().min(0).default(8).describe('test examples shown in the clean / perturbation / adversarial figure'),
  })
  .prefault({})
  .describe('what is measured besides the attack: rubbish inputs, the examples figure');

export const ExperimentName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" or "-"')
  .describe('experiment name: results go to <results dir>/<name>/<run id>/');

export const BackendChoice = z
  .enum(['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'])
  .default('auto')
  .describe('the tfjs backend: auto takes the first that loads (tensorflow → webgpu on a hardware GPU → wasm → cpu); --backend overrides it');

export const ClaimIds = z
  .array(z.enum(CLAIM_IDS as [string, ...string[]]))
  .default([])
  .describe("ids of the paper's claims this run is compared against (see `fgsm report`)");

export const ExperimentSchema = z
  .strictObject({
    name: ExperimentName,
    description: z.string().default('').describe('free text about the experiment, kept in its result'),
    seed: z.number().int().min(0).default(1).describe('every random stream (init, shuffle, subsets, rubbish) derives from it'),
    seeds: z
      .array(z.number().int().min(0))
      .min(1)
      .nullable()
      .optional()
      .describe('run the experiment once per seed (each its own run, replacing seed); the report shows each run and their mean ± spread'),
    backend: BackendChoice,
    data: DataSchema.prefault({}),
    model: ModelSchema.describe('the network; kind: softmax, logistic, maxout or rbf picks which, and which keys it has'),
    training: TrainingSchema,
    attack: AttackSchema,
    evaluation: EvaluationSchema,
    claims: ClaimIds,
  })
  .superRefine((config, ctx) => {
    if (config.model.kind === 'maxout' && config.model.top === 'softmax' && config.model.sigmoidLoss !== 'sum') {
      ctx.addIssue({
        code: 'custom',
        path: ['model', 'sigmoidLoss'],
        message: 'expected sum (or no sigmoidLoss) with model.top: softmax: a softmax top has one cross-entropy, not one per class',
      });
    }
    if (config.data.train === 'all-train' && config.data.validation) {
      ctx.addIssue({
        code: 'custom',
        path: ['data', 'validation'],
        message: 'expected false with data.train: all-train (the validation split is part of the 60,000)',
      });
    }
    if (config.model.kind === 'logistic' && config.data.digits?.length !== 2) {
      ctx.addIssue({
        code: 'custom',
        path: ['data', 'digits'],
        message: 'expected exactly two digits for model.kind: logistic, e.g. [3, 7]',
      });
    }
    if (config.training.earlyStopping.metric !== 'none' && !config.data.validation) {
      ctx.addIssue({
        code: 'custom',
        path: ['training', 'earlyStopping', 'metric'],
        message: 'expected none when data.validation is false (there is nothing to validate on)',
      });
    }
    const stoppingUsed = config.training.earlyStopping.metric !== 'none';
    if (config.training.stage2.mode !== 'none' && (!stoppingUsed || config.data.train !== 'train')) {
      ctx.addIssue({
        code: 'custom',
        path: ['training', 'stage2', 'mode'],
        message: 'expected none unless stage 1 early-stops on the validation split (data.train: train, earlyStopping.metric not none)',
      });
    }
    if (config.training.l1FirstLayer > 0 && config.model.kind !== 'maxout') {
      ctx.addIssue({
        code: 'custom',
        path: ['training', 'l1FirstLayer'],
        message: 'expected 0 for a single-layer model (the penalty is on the first of several layers)',
      });
    }
    if (config.seeds && new Set(config.seeds).size !== config.seeds.length) {
      ctx.addIssue({ code: 'custom', path: ['seeds'], message: 'expected distinct seeds' });
    }
    if (config.data.digits && new Set(config.data.digits).size !== config.data.digits.length) {
      ctx.addIssue({ code: 'custom', path: ['data', 'digits'], message: 'expected distinct digits' });
    }
  });

export type Experiment = z.output<typeof ExperimentSchema>;
export type ModelConfig = Experiment['model'];
export type DataConfig = Experiment['data'];
export type TrainingConfig = Experiment['training'];
export type AttackConfig = Experiment['attack'];
export type FgsmAttackConfig = z.infer<typeof FgsmAttackSchema>;
export type ObjectiveConfig = TrainingConfig['objective'];
export type EvaluationConfig = Experiment['evaluation'];

export function experimentJsonSchema(): unknown {
  return z.toJSONSchema(ExperimentSchema, { io: 'input', unrepresentable: 'any' });
}
