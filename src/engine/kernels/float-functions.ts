/*
 * σ and softplus as tfjs's kernels compute them, and expm1, log1p and −log(1 − e^(−d)), accurate where the plain forms
 * cancel (tfjs's webgpu kernels
 * write expm1 as exp(x) − 1 and log1p as log(1 + x); its wasm and cpu backends use Math.expm1 and Math.log1p, which
 * these follow to float32 precision): a series near 0, the plain form beyond, where it loses little.
 */

/** −log(1 − e^(−d)) for d ≥ 0 (expDistanceCrossEntropy's wrong-class term), and the two functions it is made of. */
export const LOG_SPACE_WGSL = /* wgsl */ `
// e^x − 1: x·(1 + x/2·(1 + x/3·(… (1 + x/9)))) for |x| < 1/4 (what it leaves out is below 1e-12 of it)
fn expm1(x: f32) -> f32 {
  if (abs(x) < 0.25) {
    var sum = 1.0;
    for (var k = 9.0; k >= 2.0; k = k - 1.0) { sum = 1.0 + x / k * sum; }
    return x * sum;
  }
  return exp(x) - 1.0;
}

// log(1 + y): y − y²/2 + … − y¹⁴/14 for |y| < 1/4 (what it leaves out is below 1e-9 of it)
fn log1p(y: f32) -> f32 {
  if (abs(y) < 0.25) {
    var sum = 0.0;
    for (var n = 14.0; n >= 1.0; n = n - 1.0) { sum = 1.0 / n - y * sum; }
    return y * sum;
  }
  return log(1.0 + y);
}

// Mächler's log1mexp, as negLog1mExp: log(−expm1(−d)) up to ln 2, log1p(−e^(−d)) above
fn negLog1mExp(d: f32) -> f32 {
  if (d <= ${Math.LN2}) { return -log(-expm1(-d)); }
  return -log1p(-exp(-d));
}
`;

/** tfjs's softplus threshold: x above −(log ε + 2), exp(x) below log ε + 2, log(1 + exp(x)) between (its kernels). */
export const SOFTPLUS_THRESHOLD = -(Math.log(1.1920928955078125e-7) + 2);

/** σ as tfjs's webgpu kernel computes it, and softplus as its kernels do. */
export const SIGMOID_SOFTPLUS_WGSL = /* wgsl */ `
fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn softplus(x: f32) -> f32 {
  if (x > ${SOFTPLUS_THRESHOLD}) { return x; }
  if (x < ${-SOFTPLUS_THRESHOLD}) { return exp(x); }
  return log(1.0 + exp(x));
}
`;
