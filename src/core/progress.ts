import cliProgress from 'cli-progress';

/**
 * How long-running steps (downloads, training epochs, evaluation) tell the user where they are:
 * a bar with ETA on a terminal, plain lines when output goes to a file or CI log, nothing with --quiet.
 */
export interface Progress {
  /** Starts a bar of `total` units; `label` says what is counted. */
  start(total: number, label: string): void;
  /** Moves the bar to `value`; `status` is shown beside it (e.g. the running loss). */
  update(value: number, status?: string): void;
  stop(): void;
  /** A message on its own line (always shown unless quiet). */
  line(message: string): void;
}

export type ProgressMode = 'bar' | 'lines' | 'quiet';

export function progressModeFor(options: { quiet?: boolean; stream?: NodeJS.WriteStream }): ProgressMode {
  if (options.quiet) return 'quiet';
  return (options.stream ?? process.stderr).isTTY ? 'bar' : 'lines';
}

export function createProgress(mode: ProgressMode, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (mode === 'quiet') return { start() {}, update() {}, stop() {}, line() {} };
  if (mode === 'lines') return new LineProgress(stream);
  return new BarProgress(stream);
}

class BarProgress implements Progress {
  private bar: cliProgress.SingleBar | null = null;
  constructor(private readonly stream: NodeJS.WriteStream) {}

  start(total: number, label: string): void {
    this.stop();
    this.bar = new cliProgress.SingleBar(
      {
        stream: this.stream,
        format: `${label} [{bar}] {percentage}% | {value}/{total} | ETA {eta_formatted} | {status}`,
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(total, 0, { status: '' });
  }

  update(value: number, status = ''): void {
    this.bar?.update(value, { status });
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }

  line(message: string): void {
    if (this.bar) {
      this.stream.write('\r\x1b[2K');
      this.stream.write(`${message}\n`);
      this.bar.render();
    } else {
      this.stream.write(`${message}\n`);
    }
  }
}

/** Without a terminal a bar would flood the log: print at most one line every few seconds per bar. */
class LineProgress implements Progress {
  private label = '';
  private total = 0;
  private lastPrinted = 0;
  constructor(private readonly stream: NodeJS.WriteStream) {}

  start(total: number, label: string): void {
    this.label = label;
    this.total = total;
    this.lastPrinted = Date.now();
  }

  update(value: number, status = ''): void {
    const now = Date.now();
    if (now - this.lastPrinted < 10_000) return;
    this.lastPrinted = now;
    this.stream.write(`${this.label} ${value}/${this.total}${status ? ` ${status}` : ''}\n`);
  }

  stop(): void {}

  line(message: string): void {
    this.stream.write(`${message}\n`);
  }
}

/** Where a training run stands after an epoch: what its ETA is made of. */
export interface TrainingPosition {
  stage: 1 | 2;
  /** The epoch just finished (counted within its stage), and the pace of the stage's epochs (epochPace). */
  epoch: number;
  epochSeconds: number;
  /** The stage's last epoch if nothing changes (early stopping with no new best; equal to `latestEnd` without it), and its cap. */
  earliestEnd: number;
  latestEnd: number;
  /** Whether the stage stops on a target (stage 2 continue: the held-out loss) at an epoch no one can tell. */
  stopsOnTarget: boolean;
  /** During stage 1: the stage 2 to come, in epochs (`estimated` where it stops on a target), and its cap. */
  stage2: { epochs: number; maxEpochs: number; estimated: boolean; secondsPerEpoch: number } | null;
}

/** How many of the latest epochs the ETA's pace is the median of. */
export const PACE_EPOCHS = 5;

/**
 * An epoch's time for the ETA: the median of the latest PACE_EPOCHS of `seconds` (in order), so that one slow epoch
 * (the machine busy for a while, the process suspended) does not swing it, while a lasting change shows within three.
 */
export function epochPace(seconds: readonly number[]): number {
  const recent = seconds.slice(-PACE_EPOCHS).sort((a, b) => a - b);
  if (recent.length === 0) throw new Error('epochPace: no epoch yet');
  return recent[Math.floor(recent.length / 2)]!;
}

function describeDuration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/**
 * The ETA of a training run as what it is: a single figure only where the epochs left are known; otherwise the
 * earliest end (early stopping with no new best, stage 2 as estimated) and the latest (every cap reached).
 */
export function describeEta(p: TrainingPosition): string {
  const stage2 = p.stage2;
  const soonest = (p.stopsOnTarget ? 0 : (p.earliestEnd - p.epoch) * p.epochSeconds) + (stage2 ? stage2.epochs * stage2.secondsPerEpoch : 0);
  const latest = (p.latestEnd - p.epoch) * p.epochSeconds + (stage2 ? stage2.maxEpochs * stage2.secondsPerEpoch : 0);
  if (soonest === latest) return `ETA ${describeDuration(latest)}`;
  const stage1 = p.earliestEnd === p.latestEnd ? `to epoch ${p.latestEnd}` : `ends at epoch ${p.earliestEnd}–${p.latestEnd}`;
  const why =
    p.stage === 2
      ? p.stopsOnTarget
        ? `stage 2 stops at its target loss, by epoch ${p.latestEnd}`
        : `stage 2 ${stage1}`
      : `stage 1 ${stage1}${stage2 ? `, then stage 2 ${stage2.estimated ? '≈ ' : ''}${stage2.epochs} epochs (≤ ${stage2.maxEpochs})` : ''}`;
  const range = p.stopsOnTarget && p.stage === 2 ? `≤ ${describeDuration(latest)}` : `${describeDuration(soonest)}–${describeDuration(latest)}`;
  return `ETA ${range} (${why})`;
}
