/**
 * The checks that expose gradient masking (Athalye, Carlini & Wagner 2018; Carlini et al. 2019, "On Evaluating
 * Adversarial Robustness", §5): a defence whose figures break one of them is measured with a gradient that does
 * not lead where the loss rises, so its error under attack understates what an attacker achieves. Each check reads
 * figures already measured (errors as fractions on one test set) and says whether it holds.
 */

/** The errors of one model at one bounded ε (every attack clipped to the valid image range). */
export interface ErrorsAtEpsilon {
  epsilon: number;
  /** FGSM with the softmax gradient the iterative attacks take. */
  singleStep: number;
  /** The strongest iterative attack, which must do at least as well. */
  iterative: number;
  /**
   * FGSM with the stable softmax gradient, which never saturates (null where not measured): when it beats the
   * iterative attacks taken with a saturating gradient, float32 saturation is masking that gradient.
   */
  singleStepStable: number | null;
  /** The strongest white-box error over every attack measured at this ε. */
  whiteBox: number;
  /** FGSM examples made on another model, scored by this one; null where no other model of its task exists. */
  transfer: number | null;
}

export interface MaskingFigures {
  /** Bounded ε in increasing order. */
  bounded: readonly ErrorsAtEpsilon[];
  /** An unbounded attack (no clipping, a large ε such as 1): its ε and error. */
  unbounded: { epsilon: number; error: number };
}

export type MaskingCheckId =
  | 'iterative-at-least-single-step'
  | 'iterative-at-least-stable-single-step'
  | 'rising-with-epsilon'
  | 'near-total-unbounded'
  | 'white-box-at-least-transfer';

export interface MaskingCheck {
  id: MaskingCheckId;
  /** null: not judged (nothing to compare with). */
  holds: boolean | null;
  /** The figures it judged, in words. */
  detail: string;
}

/** "Near 100%": an unbounded attack that leaves more than 1% of a test set correct is not finding the gradient. */
export const NEAR_TOTAL = 0.99;

/** The checks of a results folder's audit that CI must see hold on every model (`fgsm audit --check`). */
export const MUST_HOLD: readonly MaskingCheckId[] = ['iterative-at-least-single-step'];

const pct = (v: number) => `${(100 * v).toFixed(2)}%`;

export function maskingChecks(figures: MaskingFigures): MaskingCheck[] {
  const { bounded, unbounded } = figures;
  const iterativeShort = bounded.filter((b) => b.iterative < b.singleStep);
  const stableMeasured = bounded.filter((b) => b.singleStepStable !== null);
  const stableWins = stableMeasured.filter((b) => b.iterative < b.singleStepStable!);
  const curve = [...bounded.map((b) => ({ epsilon: b.epsilon, error: b.whiteBox })), unbounded];
  const falls = curve.slice(1).filter((point, i) => point.error < curve[i]!.error);
  const first = curve[0]!;
  const flat = unbounded.error <= first.error && first.error < NEAR_TOTAL;
  const transferred = bounded.filter((b) => b.transfer !== null);
  const transferWins = transferred.filter((b) => b.transfer! > b.whiteBox);
  return [
    {
      id: 'iterative-at-least-single-step',
      holds: iterativeShort.length === 0,
      detail: bounded.map((b) => `ε=${b.epsilon}: iterative ${pct(b.iterative)} vs single-step ${pct(b.singleStep)}`).join('; '),
    },
    {
      id: 'iterative-at-least-stable-single-step',
      holds: stableMeasured.length === 0 ? null : stableWins.length === 0,
      detail: stableMeasured
        .map((b) => `ε=${b.epsilon}: iterative ${pct(b.iterative)} vs stable-gradient single-step ${pct(b.singleStepStable!)}`)
        .join('; '),
    },
    {
      id: 'rising-with-epsilon',
      holds: falls.length === 0 && !flat,
      detail: curve.map((p) => `ε=${p.epsilon}: ${pct(p.error)}`).join(' → '),
    },
    {
      id: 'near-total-unbounded',
      holds: unbounded.error >= NEAR_TOTAL,
      detail: `unbounded ε=${unbounded.epsilon}: ${pct(unbounded.error)} (needs ≥ ${pct(NEAR_TOTAL)})`,
    },
    {
      id: 'white-box-at-least-transfer',
      holds: transferred.length === 0 ? null : transferWins.length === 0,
      detail:
        transferred.length === 0
          ? 'no other model of this task to transfer from'
          : transferred.map((b) => `ε=${b.epsilon}: white-box ${pct(b.whiteBox)} vs transfer ${pct(b.transfer!)}`).join('; '),
    },
  ];
}
