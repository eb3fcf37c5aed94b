import { dropoutThreshold } from '../../core/counter-random.js';
import { BoundKernel, type GpuRuntime, type Kernel } from '../runtime.js';
import { MAX_LANES, STEP_RECORD_WGSL } from './step-record.js';
import { THREEFRY_WGSL } from './threefry.js';

/*
 * The layer kernels of a maxout network on stacked lanes: the forward pass of a maxout layer and of the output
 * layer, the backward pass to a layer's input (through the maxout units below, or, at the input, the FGSM step),
 * and the gradient of a layer's parameters. All four are one tiled GEMM, built from TypeScript strings: a kernel
 * names how it loads its two operands and what it does with each output, and gemmWgsl writes the rest.
 *
 * A workgroup of 16 × 16 threads computes a tile of 16·r rows × 16·c columns, each thread r rows × c columns
 * (rows y + 16i, columns x + 16j, so that neighbouring threads touch neighbouring addresses), over K in steps of
 * 8 staged in workgroup memory. r is 4, 2 or 1 and c, for the plain kernels, 4 or 2 (LAYER_TILES); a maxout
 * layer's forward pass takes c = its number of pieces, so that a thread holds every piece of one unit and takes
 * their maximum in registers. Each output is one sum over K in order, the same in every lane and under every
 * tile, so stacked lanes are bit-identical to a lane alone and one tile's outputs to another's.
 *
 * Why several tiles: the paper's GEMMs are small next to a big GPU. At batch 100 the backward pass to layer 1's
 * input (100 × 784 over K = 1200) is 13 × 2 = 26 workgroups of 64 × 64 on an H100's 132 SMs, each walking all of
 * K alone, and K cannot be split without atomics or a second pass that would change the order of the sum. A
 * smaller tile gives more workgroups at the cost of fewer multiply-adds per staged load; chooseTile takes the
 * largest tile that still gives TARGET_WORKGROUPS.
 *
 * K steps of 8 rather than 16: the step's loop is unrolled by shader compilers, and at 16 Mesa's lavapipe (where
 * tests run) took twice as long to build these pipelines; 8 × 16 multiply-adds per thread still cover a step's
 * loads and barriers on a GPU.
 */

const GROUP = 16;
const TILE_DEPTH = 8;
/** The largest tile's rows: MOST_PIECES is reckoned against them, so that a layer's pieces fit whatever tile it takes. */
const MOST_TILE_ROWS = 64;
/** Both staged tiles (padded rows of 64 + 1 and 16·pieces + 1 floats) must fit the 16 KiB of workgroup memory every adapter gives. */
const MOST_PIECES = Math.floor((16384 / 4 / TILE_DEPTH - (MOST_TILE_ROWS + 1) - 1) / GROUP);

/**
 * A workgroup's tile of outputs: 16 threads × 4, 2 or 1 rows, and 16 threads × 4 or 2 columns. A maxout forward
 * pass takes only `rows`: its tile is always 16 units (16·pieces columns) wide, since a thread holds every piece of
 * its unit to take their maximum in registers.
 */
export interface LayerTile {
  rows: 64 | 32 | 16;
  columns: 64 | 32;
}

/** Every tile, largest first (of equal areas, the taller first). */
export const LAYER_TILES: readonly LayerTile[] = [
  { rows: 64, columns: 64 },
  { rows: 64, columns: 32 },
  { rows: 32, columns: 64 },
  { rows: 32, columns: 32 },
  { rows: 16, columns: 64 },
  { rows: 16, columns: 32 },
];

/** The workgroups a dispatch should reach before a larger tile is worth its fewer workgroups: about two per SM of an H100 (132). */
export const TARGET_WORKGROUPS = 256;

/** The masks a pass draws (stream threefry-v1): keyed by one of the two seeds of the lane's step entry. */
export interface PassDropout {
  seed: 'dropoutSeed' | 'gradientSeed';
  inputKeep: number;
  inputScale: number;
  hiddenKeep: number;
  hiddenScale: number;
}

/** Layer j of a pass over stacked lanes, and where its parameters sit in the packed buffer. */
export interface LayerShape {
  /** Stacked networks, 1 to MAX_LANES. */
  lanes: number;
  /** Rows per lane in the pass (R). */
  rows: number;
  /** The layer's number j, from 1 (the output layer is the number of hidden layers + 1). */
  layer: number;
  /** Width of the layer's input (in_j). */
  inputs: number;
  /** Width of the layer's affine output (cols_j: units·pieces for a maxout layer). */
  columns: number;
  /** Floats of one lane's block of packed parameters (and gradients). */
  laneFloats: number;
  /** Where P_j = [W_j; b_j] starts inside a lane's block. */
  offset: number;
  /** The tile, overriding FGSM_ENGINE_TILE and chooseTile's pick (for a benchmark, or a test of every tile). */
  tile?: LayerTile;
}

/**
 * Layer 1's input, never materialised: row r < batchRows of lane l is images[rowIndex[l·indexStride +
 * batchStart + r]], row r ≥ batchRows is adversarial row l·batchRows + r − batchRows.
 */
export interface BatchInput {
  /** f32 [N × inputs], resident. */
  images: GPUBuffer;
  /** u32; lane l's indices of the epoch from element l·indexStride. */
  rowIndex: GPUBuffer;
  indexStride: number;
  /** n: the clean rows of a lane's pass. */
  batchRows: number;
  /** f32 [lanes·n × inputs] holding x̃: read by a pass of 2n rows per lane. */
  adversarial?: GPUBuffer;
}

export type HiddenForwardShape = LayerShape & { pieces: number; dropout: PassDropout | null };
export interface HiddenForwardBuffers {
  steps: GPUBuffer;
  parameters: GPUBuffer;
  /** The batch (layer 1) or the layer below's H [lanes·R × inputs]. */
  input: BatchInput | GPUBuffer;
  /** H [lanes·R × units], masked. */
  output: GPUBuffer;
  /** u32 [lanes·R × units]: the winning piece. */
  route: GPUBuffer;
}

export type OutputForwardShape = LayerShape;
export interface OutputForwardBuffers {
  steps: GPUBuffer;
  parameters: GPUBuffer;
  /** The last H [lanes·R × inputs]; with no hidden layer, the batch input made for the pass or the batch itself (unmasked). */
  input: BatchInput | GPUBuffer;
  /** Z [lanes·R × columns]. */
  output: GPUBuffer;
}

export type BackwardDataShape = LayerShape & {
  dropout: PassDropout | null;
  /**
   * maxout: to the pre-activations of hidden layer j − 1 (`pieces` its pieces); input-sign: x̃ = x + ε·sign(∇ₓ) (j = 1);
   * input-gradient: ∇ₓ itself (j = 1, no dropout), for a sum over networks (InputGradientEpilogue).
   */
  epilogue: { kind: 'maxout'; pieces: number } | { kind: 'input-sign'; epsilon: number } | InputGradientEpilogue;
};

/**
 * ∇ₓ of one network of a sum over several (an ensemble's members, ensemble-fgsm.ts), into output [lanes·R × inputs]:
 * `accumulate` adds it to what output holds (held + this, the order of tfjs's tape, which adds each later use's
 * gradient to a tensor's accumulated one), `sign` writes sign(total) instead of the total (the last network's pass:
 * the direction x̃ steps along, sign(0) = 0). Each element is one thread's: no atomics.
 */
export interface InputGradientEpilogue {
  kind: 'input-gradient';
  accumulate: boolean;
  sign: boolean;
}
export interface BackwardDataBuffers {
  steps: GPUBuffer;
  parameters: GPUBuffer;
  /** The gradient at the layer's output [lanes·R × columns]. */
  upstream: GPUBuffer;
  /** maxout: dPre [lanes·R × inputs·pieces]; input-sign: x̃ [lanes·n × inputs]; input-gradient: ∇ₓ [lanes·R × inputs]. */
  output: GPUBuffer;
  /** maxout: the route of layer j − 1. */
  route?: GPUBuffer;
  /** input-sign: the pass's clean batch (R = n). */
  batch?: BatchInput;
}

export type WeightGradientShape = LayerShape & { dropout: PassDropout | null };
export interface WeightGradientBuffers {
  steps: GPUBuffer;
  /** The batch (layer 1) or the layer below's H. */
  input: BatchInput | GPUBuffer;
  /** The gradient at the layer's output [lanes·R × columns]. */
  upstream: GPUBuffer;
  /** Packed like the parameters; the kernel writes P_j's block of each lane. */
  gradients: GPUBuffer;
}

export type LayerKernelKind = 'hidden-forward' | 'output-forward' | 'backward-data' | 'weight-gradient';

/** What fixes a layer kernel's grid; `pieces` is the layer's own (hidden-forward only). */
export type GridShape = Pick<LayerShape, 'lanes' | 'rows' | 'inputs' | 'columns'> & { pieces?: number };

function gridOf(kind: LayerKernelKind, shape: GridShape, tile: LayerTile): [number, number, number] {
  const rowTiles = Math.ceil(shape.rows / tile.rows);
  switch (kind) {
    case 'hidden-forward':
      return [Math.ceil(shape.columns / (shape.pieces ?? 1) / GROUP), rowTiles, shape.lanes];
    case 'output-forward':
      return [Math.ceil(shape.columns / tile.columns), rowTiles, shape.lanes];
    case 'backward-data':
      return [Math.ceil(shape.inputs / tile.columns), rowTiles, shape.lanes];
    case 'weight-gradient':
      return [Math.ceil(shape.columns / tile.columns), Math.ceil((shape.inputs + 1) / tile.rows), shape.lanes];
  }
}

const workgroups = ([x, y, z]: readonly number[]): number => x! * y! * z!;

/**
 * The tile for a kernel's GEMM: the largest (by area) that gives at least `target` workgroups, or, where none
 * does, the largest of those giving the most; of equal areas, the one giving more workgroups, then the first in
 * LAYER_TILES. A maxout forward pass chooses only among rows (its pick says columns 64, which it ignores).
 */
export function chooseTile(kind: LayerKernelKind, shape: GridShape, target = TARGET_WORKGROUPS): LayerTile {
  const candidates = kind === 'hidden-forward' ? LAYER_TILES.filter((tile) => tile.columns === 64) : LAYER_TILES;
  let best = candidates[0]!;
  let bestCount = workgroups(gridOf(kind, shape, best));
  for (const tile of candidates.slice(1)) {
    const count = workgroups(gridOf(kind, shape, tile));
    const [reach, bestReach] = [Math.min(count, target), Math.min(bestCount, target)];
    const [area, bestArea] = [tile.rows * tile.columns, best.rows * best.columns];
    if (reach > bestReach || (reach === bestReach && (area > bestArea || (area === bestArea && count > bestCount)))) {
      best = tile;
      bestCount = count;
    }
  }
  return best;
}

/** The workgroups of one dispatch of a layer kernel ([x, y, lane]) under `shape.tile`, or chooseTile's pick (FGSM_ENGINE_TILE aside: a kernel's own `grid` is what it dispatches). */
export function layerGrid(kind: LayerKernelKind, shape: GridShape & { tile?: LayerTile }): [number, number, number] {
  return gridOf(kind, shape, shape.tile ?? chooseTile(kind, shape));
}

const isTile = (tile: LayerTile): boolean => LAYER_TILES.some((t) => t.rows === tile.rows && t.columns === tile.columns);

/** "64x64", "32x64", ...: rows × columns, as FGSM_ENGINE_TILE spells a tile. */
export function parseTile(text: string): LayerTile {
  const match = /^(\d+)x(\d+)$/.exec(text.trim());
  const tile = match ? ({ rows: Number(match[1]), columns: Number(match[2]) } as LayerTile) : null;
  if (!tile || !isTile(tile))
    throw new Error(`tile "${text}": one of ${LAYER_TILES.map((t) => `${t.rows}x${t.columns}`).join(', ')} (rows x columns)`);
  return tile;
}

let environmentTile: LayerTile | null | undefined;

/**
 * FGSM_ENGINE_TILE=64x64|64x32|32x64|32x32|16x64|16x32 forces one tile on every layer kernel built in this
 * process (a maxout forward pass taking its rows), so that a GPU benchmark can compare tiles against chooseTile's
 * picks; unset or empty, each kernel takes chooseTile's. Read once, at the first kernel built.
 */
function tileFromEnvironment(): LayerTile | null {
  if (environmentTile === undefined) {
    const text = typeof process === 'undefined' ? undefined : process.env.FGSM_ENGINE_TILE;
    try {
      environmentTile = text ? parseTile(text) : null;
    } catch (error) {
      throw new Error(`FGSM_ENGINE_TILE: ${(error as Error).message}`);
    }
  }
  return environmentTile;
}

/** The tile a kernel takes and its dispatch's grid: the shape's tile, else FGSM_ENGINE_TILE's, else chooseTile's. */
function tiling(kind: LayerKernelKind, shape: LayerShape & { pieces?: number }): Tiling {
  if (shape.tile && !isTile(shape.tile)) throw new Error(`tile ${JSON.stringify(shape.tile)} is none of LAYER_TILES`);
  const tile = shape.tile ?? tileFromEnvironment() ?? chooseTile(kind, shape);
  return { tile, grid: gridOf(kind, shape, tile) };
}

/** The uniform every layer kernel binds at 1: shapes, offsets, dropout thresholds and scales, ε. */
interface Dims {
  rows: number;
  inputs: number;
  columns: number;
  units: number;
  pieces: number;
  laneFloats: number;
  offset: number;
  batchRows: number;
  indexStride: number;
  inputThreshold: number;
  hiddenThreshold: number;
  maskLayer: number;
  inputScale: number;
  hiddenScale: number;
  epsilon: number;
}

const DIMS_WGSL = /* wgsl */ `
struct Dims {
  rows: u32,
  inputs: u32,
  columns: u32,
  units: u32,
  pieces: u32,
  laneFloats: u32,
  offset: u32,
  batchRows: u32,
  indexStride: u32,
  inputThreshold: u32,
  hiddenThreshold: u32,
  maskLayer: u32,
  inputScale: f32,
  hiddenScale: f32,
  epsilon: f32,
}
`;

function encodeDims(dims: Dims): Uint32Array {
  const words = new Uint32Array(16);
  const floats = new Float32Array(words.buffer);
  const integers = [
    'rows',
    'inputs',
    'columns',
    'units',
    'pieces',
    'laneFloats',
    'offset',
    'batchRows',
    'indexStride',
    'inputThreshold',
    'hiddenThreshold',
    'maskLayer',
  ] as const;
  integers.forEach((key, i) => (words[i] = dims[key]));
  floats[12] = dims.inputScale;
  floats[13] = dims.hiddenScale;
  floats[14] = dims.epsilon;
  return words;
}

interface StorageBinding {
  name: string;
  kind: 'read' | 'write';
  element: 'f32' | 'u32';
  buffer: GPUBuffer;
}

/**
 * A GEMM C = A·B over one lane per workgroup z, as WGSL. `functions` defines
 *   fn gemmDepth() -> u32                                  K (read from dims: uniform, so barriers stay legal)
 *   fn loadA(lane: u32, m: u32, k: u32) -> f32             0 outside A
 *   fn loadB(lane: u32, k: u32, tileX: u32, v: u32) -> f32 v the tile's column (x + 16j); 0 outside B
 *   fn store(lane: u32, row: u32, tileX: u32, x: u32, values: array<f32, COLUMNS>)   a thread's columns of a row
 * `aMajor` / `bMajor` name the index that is contiguous in memory, so that a tile loads with neighbouring
 * threads on neighbouring addresses.
 */
interface GemmPlan {
  /** 4, 2 or 1: the tile's rows / 16. */
  rowsPerThread: number;
  columnsPerThread: number;
  aMajor: 'k' | 'm';
  bMajor: 'k' | 'n';
  storage: readonly StorageBinding[];
  functions: string;
}

function gemmWgsl(plan: GemmPlan): string {
  const r = plan.rowsPerThread;
  const c = plan.columnsPerThread;
  const tileRows = GROUP * r;
  const tileColumns = GROUP * c;
  // a float of padding per staged row keeps a column-wise store from landing on one memory bank
  const aStride = tileRows + 1;
  const bStride = tileColumns + 1;
  const aIndex =
    plan.aMajor === 'k' ? `let m = e / ${TILE_DEPTH}u; let k = e % ${TILE_DEPTH}u;` : `let k = e / ${tileRows}u; let m = e % ${tileRows}u;`;
  const bIndex =
    plan.bMajor === 'k' ? `let v = e / ${TILE_DEPTH}u; let k = e % ${TILE_DEPTH}u;` : `let k = e / ${tileColumns}u; let v = e % ${tileColumns}u;`;
  const storage = plan.storage
    .map(
      ({ name, kind, element }, i) =>
        `@group(0) @binding(${i + 2}) var<storage, ${kind === 'read' ? 'read' : 'read_write'}> ${name}: array<${element}>;`,
    )
    .join('\n');
  return /* wgsl */ `${STEP_RECORD_WGSL}${DIMS_WGSL}${THREEFRY_WGSL}
@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
${storage}
const COLUMNS = ${c}u;
const GROUP = ${GROUP}u;
const WIDE = ${tileColumns}u;
${plan.functions}
var<workgroup> tileA: array<f32, ${TILE_DEPTH * aStride}>;
var<workgroup> tileB: array<f32, ${TILE_DEPTH * bStride}>;

@compute @workgroup_size(${GROUP}, ${GROUP})
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
  let lane = group.z;
  let m0 = group.y * ${tileRows}u;
  let depth = gemmDepth();
  var acc: array<array<f32, ${c}>, ${r}>;
  for (var k0 = 0u; k0 < depth; k0 += ${TILE_DEPTH}u) {
    for (var e = thread; e < ${TILE_DEPTH * tileRows}u; e += ${GROUP * GROUP}u) {
      ${aIndex}
      tileA[k * ${aStride}u + m] = loadA(lane, m0 + m, k0 + k);
    }
    for (var e = thread; e < ${TILE_DEPTH * tileColumns}u; e += ${GROUP * GROUP}u) {
      ${bIndex}
      tileB[k * ${bStride}u + v] = loadB(lane, k0 + k, group.x, v);
    }
    workgroupBarrier();
    for (var k = 0u; k < ${TILE_DEPTH}u; k++) {
      var a: array<f32, ${r}>;
      for (var i = 0u; i < ${r}u; i++) {
        a[i] = tileA[k * ${aStride}u + local.y + ${GROUP}u * i];
      }
      for (var j = 0u; j < ${c}u; j++) {
        let b = tileB[k * ${bStride}u + local.x + ${GROUP}u * j];
        for (var i = 0u; i < ${r}u; i++) {
          acc[i][j] += a[i] * b;
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${r}u; i++) {
    store(lane, m0 + local.y + ${GROUP}u * i, group.x, local.x, acc[i]);
  }
}
`;
}

/** inputMask(lane, row, k) and hiddenMask(lane, row, u) of layer dims.maskLayer: the pass's masks, or 1 without dropout. */
function maskFunctions(dropout: PassDropout | null): string {
  if (!dropout) {
    return /* wgsl */ `
fn inputMask(lane: u32, row: u32, k: u32) -> f32 { return 1.0; }
fn hiddenMask(lane: u32, row: u32, u: u32) -> f32 { return 1.0; }
`;
  }
  return /* wgsl */ `
fn inputMask(lane: u32, row: u32, k: u32) -> f32 {
  return select(0.0, dims.inputScale, dropoutKept(step.lanes[lane].${dropout.seed}, 0u, row, k, dims.inputThreshold));
}
fn hiddenMask(lane: u32, row: u32, u: u32) -> f32 {
  return select(0.0, dims.hiddenScale, dropoutKept(step.lanes[lane].${dropout.seed}, dims.maskLayer, row, u, dims.hiddenThreshold));
}
`;
}

interface Source {
  storage: StorageBinding[];
  functions: string;
  dims: Partial<Dims>;
}

const isBatch = (input: BatchInput | GPUBuffer): input is BatchInput => 'images' in input;

/** The batch's bindings and cleanInput(lane, row, k), unmasked (row < dims.rows, k < dims.inputs). */
function batchSource(batch: BatchInput, shape: LayerShape): Source {
  const { lanes, rows, inputs } = shape;
  const n = batch.batchRows;
  if (rows !== n && rows !== 2 * n) throw new Error(`a pass over the batch has n or 2n rows per lane, not ${rows} (n = ${n})`);
  if (batch.indexStride < n) throw new Error(`index stride ${batch.indexStride} is shorter than a batch of ${n}`);
  requireFloats(batch.rowIndex, (lanes - 1) * batch.indexStride + n, 'rowIndex');
  const storage: StorageBinding[] = [
    { name: 'images', kind: 'read', element: 'f32', buffer: batch.images },
    { name: 'rowIndex', kind: 'read', element: 'u32', buffer: batch.rowIndex },
  ];
  const adversarial = rows > n;
  if (adversarial) {
    if (!batch.adversarial) throw new Error('a pass of 2n rows per lane reads x̃: the batch input needs its adversarial buffer');
    requireFloats(batch.adversarial, lanes * n * inputs, 'adversarial');
    storage.push({ name: 'adversarial', kind: 'read', element: 'f32', buffer: batch.adversarial });
  }
  return {
    storage,
    dims: { batchRows: n, indexStride: batch.indexStride },
    functions: /* wgsl */ `
fn cleanInput(lane: u32, row: u32, k: u32) -> f32 {
  if (row < dims.batchRows) {
    let image = rowIndex[lane * dims.indexStride + step.lanes[lane].batchStart + row];
    return images[image * dims.inputs + k];
  }
  ${adversarial ? 'return adversarial[(lane * dims.batchRows + row - dims.batchRows) * dims.inputs + k];' : 'return 0.0;'}
}
`,
  };
}

/** A layer's input: layerInput(lane, row, k), the batch with its input mask for layer 1, or a buffer (the H below; at layer 1, the masked batch input already made). */
function inputSource(shape: LayerShape, input: BatchInput | GPUBuffer): Source {
  if (isBatch(input)) {
    if (shape.layer !== 1) throw new Error(`layer ${shape.layer} reads the layer below, not the batch`);
    const batch = batchSource(input, shape);
    return {
      ...batch,
      functions: `${batch.functions}
fn layerInput(lane: u32, row: u32, k: u32) -> f32 { return cleanInput(lane, row, k) * inputMask(lane, row, k); }
`,
    };
  }
  // a buffer at layer 1: the batch input made once for the pass (BatchInputKernel), its mask applied
  requireFloats(input, shape.lanes * shape.rows * shape.inputs, 'layer input');
  return {
    storage: [{ name: 'layerInputs', kind: 'read', element: 'f32', buffer: input }],
    dims: {},
    functions: /* wgsl */ `
fn layerInput(lane: u32, row: u32, k: u32) -> f32 { return layerInputs[(lane * dims.rows + row) * dims.inputs + k]; }
`,
  };
}

function requireFloats(buffer: GPUBuffer, elements: number, what: string): void {
  if (buffer.size < 4 * elements) throw new Error(`${what}: ${buffer.size} bytes, needs ${4 * elements}`);
}

function checkShape(shape: LayerShape, packed: GPUBuffer): void {
  const { lanes, rows, layer, inputs, columns, laneFloats, offset } = shape;
  if (!Number.isInteger(lanes) || lanes < 1 || lanes > MAX_LANES) throw new Error(`${lanes} lanes: the engine stacks 1 to ${MAX_LANES}`);
  if ([rows, layer, inputs, columns, laneFloats].some((n) => !Number.isInteger(n) || n < 1) || !Number.isInteger(offset) || offset < 0)
    throw new Error(`layer shape ${JSON.stringify(shape)}`);
  if (offset + (inputs + 1) * columns > laneFloats) throw new Error(`layer ${layer}'s parameters end past the lane's ${laneFloats} floats`);
  requireFloats(packed, lanes * laneFloats, 'packed parameters');
}

function checkPieces(columns: number, pieces: number): void {
  if (!Number.isInteger(pieces) || pieces < 1 || pieces > MOST_PIECES || columns % pieces !== 0)
    throw new Error(`${pieces} pieces of ${columns} columns: 1 to ${MOST_PIECES} pieces that divide the columns`);
}

function dimsOf(shape: LayerShape, dropout: PassDropout | null, extra: Partial<Dims>): Dims {
  return {
    rows: shape.rows,
    inputs: shape.inputs,
    columns: shape.columns,
    units: 0,
    pieces: 0,
    laneFloats: shape.laneFloats,
    offset: shape.offset,
    batchRows: 0,
    indexStride: 0,
    inputThreshold: dropout ? dropoutThreshold(dropout.inputKeep) : 0,
    hiddenThreshold: dropout ? dropoutThreshold(dropout.hiddenKeep) : 0,
    maskLayer: 0,
    inputScale: dropout?.inputScale ?? 1,
    hiddenScale: dropout?.hiddenScale ?? 1,
    epsilon: 0,
    ...extra,
  };
}

/** A plain tile's column j of thread x (WIDE: the tile's columns). */
const PLAIN_COLUMN_WGSL = 'tileX * WIDE + x + GROUP * j';

interface Tiling {
  tile: LayerTile;
  grid: [number, number, number];
}

interface Built extends Tiling {
  kernel: Kernel;
  group: GPUBindGroup;
  dims: GPUBuffer;
}

async function build(runtime: GpuRuntime, kind: LayerKernelKind, tiling: Tiling, plan: GemmPlan, steps: GPUBuffer, dims: Dims): Promise<Built> {
  // the tile in the name: its shader differs, and a GPU trace shows which tile ran
  const name = `${kind} ${tiling.tile.rows}x${kind === 'hidden-forward' ? '16u' : tiling.tile.columns}`;
  const kernel = await runtime.kernel(name, gemmWgsl(plan), ['step', 'uniform', ...plan.storage.map((binding) => binding.kind)]);
  const words = encodeDims(dims);
  const uniform = runtime.uniform(`${name} dims`, words.byteLength, words);
  const group = runtime.bind(kernel, [steps, uniform, ...plan.storage.map((binding) => binding.buffer)]);
  return { ...tiling, kernel, group, dims: uniform };
}

/** One use of a layer kernel: pipeline, uniform and bind group built once; record() adds its dispatch at a step. */
abstract class LayerKernel extends BoundKernel {
  /** The tile it took: the shape's, FGSM_ENGINE_TILE's or chooseTile's. */
  readonly tile: LayerTile;

  protected constructor(runtime: GpuRuntime, built: Built) {
    super(runtime, built.kernel, built.group, built.dims, built.grid);
    this.tile = built.tile;
  }
}

/** A maxout layer's H = max over pieces of (A·W + b), times the layer's mask, and the winning piece into route. */
export class HiddenForward extends LayerKernel {
  static async create(runtime: GpuRuntime, shape: HiddenForwardShape, buffers: HiddenForwardBuffers): Promise<HiddenForward> {
    checkShape(shape, buffers.parameters);
    checkPieces(shape.columns, shape.pieces);
    const units = shape.columns / shape.pieces;
    requireFloats(buffers.output, shape.lanes * shape.rows * units, 'hidden output');
    requireFloats(buffers.route, shape.lanes * shape.rows * units, 'route');
    const input = inputSource(shape, buffers.input);
    const tiled = tiling('hidden-forward', shape);
    const plan: GemmPlan = {
      rowsPerThread: tiled.tile.rows / GROUP,
      columnsPerThread: shape.pieces,
      aMajor: 'k',
      bMajor: 'n',
      storage: [
        { name: 'parameters', kind: 'read', element: 'f32', buffer: buffers.parameters },
        ...input.storage,
        { name: 'output', kind: 'write', element: 'f32', buffer: buffers.output },
        { name: 'route', kind: 'write', element: 'u32', buffer: buffers.route },
      ],
      functions: /* wgsl */ `${maskFunctions(shape.dropout)}${input.functions}
fn gemmDepth() -> u32 { return dims.inputs; }
fn loadA(lane: u32, m: u32, k: u32) -> f32 {
  if (m >= dims.rows || k >= dims.inputs) { return 0.0; }
  return layerInput(lane, m, k);
}
// the tile's columns are 16 units × every piece: column v is piece v / 16 of unit tileX·16 + v % 16
fn loadB(lane: u32, k: u32, tileX: u32, v: u32) -> f32 {
  let u = tileX * GROUP + v % GROUP;
  if (k >= dims.inputs || u >= dims.units) { return 0.0; }
  return parameters[lane * dims.laneFloats + dims.offset + k * dims.columns + (v / GROUP) * dims.units + u];
}
fn store(lane: u32, row: u32, tileX: u32, x: u32, values: array<f32, COLUMNS>) {
  let u = tileX * GROUP + x;
  if (row >= dims.rows || u >= dims.units) { return; }
  var z = values;
  let bias = lane * dims.laneFloats + dims.offset + dims.inputs * dims.columns + u;
  var best = z[0] + parameters[bias];
  var winner = 0u;
  for (var p = 1u; p < COLUMNS; p++) {
    let piece = z[p] + parameters[bias + p * dims.units];
    // >=: the last tied piece wins, as in pylearn2's chain of T.maximum
    if (piece >= best) {
      best = piece;
      winner = p;
    }
  }
  let at = (lane * dims.rows + row) * dims.units + u;
  output[at] = best * hiddenMask(lane, row, u);
  route[at] = winner;
}
`,
    };
    const dims = dimsOf(shape, shape.dropout, { ...input.dims, units, pieces: shape.pieces, maskLayer: shape.layer });
    return new HiddenForward(runtime, await build(runtime, 'hidden-forward', tiled, plan, buffers.steps, dims));
  }
}

/** The output layer's Z = A·W + b (logits). */
export class OutputForward extends LayerKernel {
  static async create(runtime: GpuRuntime, shape: OutputForwardShape, buffers: OutputForwardBuffers): Promise<OutputForward> {
    checkShape(shape, buffers.parameters);
    requireFloats(buffers.output, shape.lanes * shape.rows * shape.columns, 'output');
    const input = inputSource(shape, buffers.input);
    const tiled = tiling('output-forward', shape);
    const plan: GemmPlan = {
      rowsPerThread: tiled.tile.rows / GROUP,
      columnsPerThread: tiled.tile.columns / GROUP,
      aMajor: 'k',
      bMajor: 'n',
      storage: [
        { name: 'parameters', kind: 'read', element: 'f32', buffer: buffers.parameters },
        ...input.storage,
        { name: 'output', kind: 'write', element: 'f32', buffer: buffers.output },
      ],
      functions: /* wgsl */ `${maskFunctions(null)}${input.functions}
fn gemmDepth() -> u32 { return dims.inputs; }
fn loadA(lane: u32, m: u32, k: u32) -> f32 {
  if (m >= dims.rows || k >= dims.inputs) { return 0.0; }
  return layerInput(lane, m, k);
}
fn loadB(lane: u32, k: u32, tileX: u32, v: u32) -> f32 {
  let n = tileX * WIDE + v;
  if (k >= dims.inputs || n >= dims.columns) { return 0.0; }
  return parameters[lane * dims.laneFloats + dims.offset + k * dims.columns + n];
}
fn store(lane: u32, row: u32, tileX: u32, x: u32, values: array<f32, COLUMNS>) {
  if (row >= dims.rows) { return; }
  var z = values;
  let bias = lane * dims.laneFloats + dims.offset + dims.inputs * dims.columns;
  for (var j = 0u; j < COLUMNS; j++) {
    let n = ${PLAIN_COLUMN_WGSL};
    if (n < dims.columns) { output[(lane * dims.rows + row) * dims.columns + n] = z[j] + parameters[bias + n]; }
  }
}
`,
    };
    return new OutputForward(runtime, await build(runtime, 'output-forward', tiled, plan, buffers.steps, dimsOf(shape, null, input.dims)));
  }
}

/**
 * dA = dOut·Wᵀ of layer j, finished either through the maxout units of layer j − 1 (the gradient to the winning
 * piece, times the unit's mask; every element of dPre written) or, at the input, as the FGSM step
 * x̃ = x + ε·sign(dA·inputMask) with an exact sign (sign(0) = 0) and x the clean, unmasked batch row.
 */
export class BackwardData extends LayerKernel {
  static async create(runtime: GpuRuntime, shape: BackwardDataShape, buffers: BackwardDataBuffers): Promise<BackwardData> {
    checkShape(shape, buffers.parameters);
    const { lanes, rows, columns } = shape;
    requireFloats(buffers.upstream, lanes * rows * columns, 'upstream gradient');
    const epilogue =
      shape.epilogue.kind === 'maxout'
        ? maxoutEpilogue(shape, shape.epilogue.pieces, buffers)
        : shape.epilogue.kind === 'input-sign'
          ? inputSignEpilogue(shape, shape.epilogue.epsilon, buffers)
          : inputGradientEpilogue(shape, shape.epilogue, buffers);
    const tiled = tiling('backward-data', shape);
    const plan: GemmPlan = {
      rowsPerThread: tiled.tile.rows / GROUP,
      columnsPerThread: tiled.tile.columns / GROUP,
      aMajor: 'k',
      bMajor: 'k',
      storage: [
        { name: 'parameters', kind: 'read', element: 'f32', buffer: buffers.parameters },
        { name: 'upstream', kind: 'read', element: 'f32', buffer: buffers.upstream },
        ...epilogue.storage,
      ],
      functions: /* wgsl */ `${maskFunctions(shape.dropout)}${epilogue.functions}
fn gemmDepth() -> u32 { return dims.columns; }
fn loadA(lane: u32, m: u32, k: u32) -> f32 {
  if (m >= dims.rows || k >= dims.columns) { return 0.0; }
  return upstream[(lane * dims.rows + m) * dims.columns + k];
}
// B = Wᵀ: B[k, n] = W[n, k]
fn loadB(lane: u32, k: u32, tileX: u32, v: u32) -> f32 {
  let n = tileX * WIDE + v;
  if (k >= dims.columns || n >= dims.inputs) { return 0.0; }
  return parameters[lane * dims.laneFloats + dims.offset + n * dims.columns + k];
}
fn store(lane: u32, row: u32, tileX: u32, x: u32, values: array<f32, COLUMNS>) {
  if (row >= dims.rows) { return; }
  var z = values;
  for (var j = 0u; j < COLUMNS; j++) {
    let n = ${PLAIN_COLUMN_WGSL};
    if (n < dims.inputs) { finish(lane, row, n, z[j]); }
  }
}
`,
    };
    const dims = dimsOf(shape, shape.dropout, epilogue.dims);
    return new BackwardData(runtime, await build(runtime, 'backward-data', tiled, plan, buffers.steps, dims));
  }
}

/** finish(lane, row, u, g): g to the winning piece of unit u of layer j − 1 (times its mask), 0 to the others. */
function maxoutEpilogue(shape: LayerShape, pieces: number, buffers: BackwardDataBuffers): Source {
  if (shape.layer < 2) throw new Error('the maxout epilogue goes to the hidden layer below: layer 2 or above');
  if (!buffers.route) throw new Error('the maxout epilogue reads the route of the layer below');
  checkPieces(shape.inputs * pieces, pieces);
  const elements = shape.lanes * shape.rows * shape.inputs;
  requireFloats(buffers.route, elements, 'route');
  requireFloats(buffers.output, elements * pieces, 'pre-activation gradient');
  return {
    storage: [
      { name: 'route', kind: 'read', element: 'u32', buffer: buffers.route },
      { name: 'output', kind: 'write', element: 'f32', buffer: buffers.output },
    ],
    dims: { units: shape.inputs, pieces, maskLayer: shape.layer - 1 },
    functions: /* wgsl */ `
fn finish(lane: u32, row: u32, u: u32, g: f32) {
  let at = (lane * dims.rows + row) * dims.units + u;
  let masked = g * hiddenMask(lane, row, u);
  let winner = route[at];
  let first = (lane * dims.rows + row) * dims.units * dims.pieces + u;
  for (var p = 0u; p < dims.pieces; p++) {
    output[first + p * dims.units] = select(0.0, masked, p == winner);
  }
}
`,
  };
}

/** finish(lane, row, k, g): output[row, k] = g, or held + g (accumulate), or the sign of either (sign). */
function inputGradientEpilogue(shape: BackwardDataShape, epilogue: InputGradientEpilogue, buffers: BackwardDataBuffers): Source {
  if (shape.layer !== 1) throw new Error('the input-gradient epilogue is the input layer (layer 1)');
  // the deterministic network's ∇ₓ: an input mask would have to be the same draw in every network of the sum
  if (shape.dropout) throw new Error('the input-gradient epilogue takes the deterministic network (no dropout)');
  requireFloats(buffers.output, shape.lanes * shape.rows * shape.inputs, 'input gradient');
  const total = epilogue.accumulate ? 'output[at] + g' : 'g';
  return {
    storage: [{ name: 'output', kind: 'write', element: 'f32', buffer: buffers.output }],
    dims: {},
    functions: /* wgsl */ `
fn finish(lane: u32, row: u32, k: u32, g: f32) {
  let at = (lane * dims.rows + row) * dims.inputs + k;
  let total = ${total};
  output[at] = ${epilogue.sign ? 'sign(total)' : 'total'};
}
`,
  };
}

/** finish(lane, row, k, g): x̃[row, k] = x[row, k] + ε·sign(g·inputMask). */
function inputSignEpilogue(shape: LayerShape, epsilon: number, buffers: BackwardDataBuffers): Source {
  if (shape.layer !== 1) throw new Error('the input-sign epilogue is the input layer (layer 1)');
  if (!buffers.batch) throw new Error('the input-sign epilogue reads the clean batch');
  if (shape.rows !== buffers.batch.batchRows)
    throw new Error(`the FGSM step takes a pass over the n = ${buffers.batch.batchRows} clean rows, not ${shape.rows}`);
  requireFloats(buffers.output, shape.lanes * shape.rows * shape.inputs, 'adversarial');
  const batch = batchSource(buffers.batch, shape);
  return {
    storage: [...batch.storage, { name: 'output', kind: 'write', element: 'f32', buffer: buffers.output }],
    dims: { ...batch.dims, epsilon },
    functions: /* wgsl */ `${batch.functions}
fn finish(lane: u32, row: u32, k: u32, g: f32) {
  output[(lane * dims.batchRows + row) * dims.inputs + k] = cleanInput(lane, row, k) + dims.epsilon * sign(g * inputMask(lane, row, k));
}
`,
  };
}

/** dP_j = Âᵀ·dOut with Â = [A, 1]: W's gradient and, in its last row, the bias's (dOut's column sums). */
export class WeightGradient extends LayerKernel {
  static async create(runtime: GpuRuntime, shape: WeightGradientShape, buffers: WeightGradientBuffers): Promise<WeightGradient> {
    checkShape(shape, buffers.gradients);
    requireFloats(buffers.upstream, shape.lanes * shape.rows * shape.columns, 'upstream gradient');
    const input = inputSource(shape, buffers.input);
    const tiled = tiling('weight-gradient', shape);
    const plan: GemmPlan = {
      rowsPerThread: tiled.tile.rows / GROUP,
      columnsPerThread: tiled.tile.columns / GROUP,
      aMajor: 'm',
      bMajor: 'n',
      storage: [
        ...input.storage,
        { name: 'upstream', kind: 'read', element: 'f32', buffer: buffers.upstream },
        { name: 'gradients', kind: 'write', element: 'f32', buffer: buffers.gradients },
      ],
      functions: /* wgsl */ `${maskFunctions(shape.dropout)}${input.functions}
fn gemmDepth() -> u32 { return dims.rows; }
// A = Âᵀ: A[m, k] = Â[k, m], the row of ones last
fn loadA(lane: u32, m: u32, k: u32) -> f32 {
  if (k >= dims.rows || m > dims.inputs) { return 0.0; }
  if (m == dims.inputs) { return 1.0; }
  return layerInput(lane, k, m);
}
fn loadB(lane: u32, k: u32, tileX: u32, v: u32) -> f32 {
  let n = tileX * WIDE + v;
  if (k >= dims.rows || n >= dims.columns) { return 0.0; }
  return upstream[(lane * dims.rows + k) * dims.columns + n];
}
fn store(lane: u32, row: u32, tileX: u32, x: u32, values: array<f32, COLUMNS>) {
  if (row > dims.inputs) { return; }
  var z = values;
  for (var j = 0u; j < COLUMNS; j++) {
    let n = ${PLAIN_COLUMN_WGSL};
    if (n < dims.columns) { gradients[lane * dims.laneFloats + dims.offset + row * dims.columns + n] = z[j]; }
  }
}
`,
    };
    const dims = dimsOf(shape, shape.dropout, input.dims);
    return new WeightGradient(runtime, await build(runtime, 'weight-gradient', tiled, plan, buffers.steps, dims));
  }
}
