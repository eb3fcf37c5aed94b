/**
 * An error the user can act on: bad input, missing data, a backend that cannot load. The CLI prints the
 * message and the hint without a stack trace and exits with status 2; anything else is a bug (status 1).
 */
export class FgsmError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'FgsmError';
  }
}

/** Raised when a run is stopped on purpose (signal or abort) after its last checkpoint was written. */
export class InterruptedError extends Error {
  constructor(message = 'interrupted') {
    super(message);
    this.name = 'InterruptedError';
  }
}
