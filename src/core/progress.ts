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
