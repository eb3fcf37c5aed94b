import * as tf from '@tensorflow/tfjs-core';
import type { ObjectiveConfig } from '../config/schema.js';
import { counterNoise } from '../core/counter-random.js';
import { stream, streamSeed } from '../core/rng.js';
import type { TrainingPerturbation } from '../train/objective.js';
import { fastGradientSign } from './fgsm.js';

type Adversarial = Extract<ObjectiveConfig, { kind: 'adversarial' }>;
type Noise = Extract<ObjectiveConfig, { kind: 'noise' }>;

/** The seed of the masks ∇ₓJ is taken through under gradientState independent-mask, from the step's dropout seed. */
export const gradientStateSeed = (dropoutSeed: number): number => streamSeed(dropoutSeed, 'gradient-state');

/**
 * §6's adversarial training: x̃ = x + ε·sign(∇ₓJ(θ, x, y)) with the true labels, unclipped, recomputed for
 * every minibatch from the current parameters, mixed as J̃ = α·J(x) + (1 − α)·J(x̃). The network while ∇ₓJ is
 * taken: deterministic (no dropout), the clean term's dropout masks, or masks of its own; its softmax gradient:
 * standard or stable (see SoftmaxGradient).
 */
function adversarialExamples(objective: Adversarial): TrainingPerturbation {
  return {
    mixing: 'alpha-mix',
    alpha: objective.alpha,
    perturb: (model, x, y, dropoutSeeds) => {
      const gradientSeed = {
        deterministic: null,
        'clean-mask': dropoutSeeds,
        'independent-mask': dropoutSeeds.map(gradientStateSeed),
      }[objective.gradientState];
      const { adversarial, direction } = fastGradientSign(model, x, y, {
        epsilons: [objective.epsilon],
        clip: null,
        labels: 'true',
        target: null,
        dropoutSeed: gradientSeed,
        gradient: objective.gradient,
        countZeroGradients: false,
      });
      direction.dispose();
      return adversarial[0]!;
    },
  };
}

/**
 * §6's noise controls: x + ε·(random ±1 per pixel) or x + U(−ε, ε) per pixel, fresh every minibatch. A maxout
 * network whose dropout comes from threefry-v1 draws its noise from that counter-based generator too (counterNoise,
 * which the WebGPU engine draws on the device); every other model from the sequential stream(seed, 'noise').
 */
function noisyExamples(objective: Noise): TrainingPerturbation {
  const { epsilon, distribution } = objective;
  return {
    mixing: objective.mixing,
    alpha: objective.alpha,
    perturb: (model, x, _y, dropoutSeeds) => {
      const counter = model.spec.kind === 'maxout' && model.spec.dropout?.stream === 'threefry-v1';
      // each stacked network's rows get the noise its seed alone would draw
      const perNetwork = x.size / dropoutSeeds.length;
      const noise = new Float32Array(x.size);
      dropoutSeeds.forEach((seed, i) => {
        const rows = noise.subarray(i * perNetwork, (i + 1) * perNetwork);
        if (counter) rows.set(counterNoise(perNetwork / x.shape[1], x.shape[1], distribution, epsilon, seed));
        else if (distribution === 'sign') stream(seed, 'noise').fillBernoulli(rows, 0.5, epsilon, -epsilon);
        else stream(seed, 'noise').fillUniform(rows, -epsilon, epsilon);
      });
      return tf.tidy(() => tf.add(x, tf.tensor2d(noise, x.shape)));
    },
  };
}

/** What the configured objective trains on besides the clean x; null for the clean objective. */
export function trainingPerturbation(objective: ObjectiveConfig): TrainingPerturbation | null {
  switch (objective.kind) {
    case 'clean':
      return null;
    case 'adversarial':
      return adversarialExamples(objective);
    case 'noise':
      return noisyExamples(objective);
  }
}
