import assert from 'node:assert/strict';
import { test } from 'node:test';
import { counterDropoutMask } from '../src/core/counter-random.js';
import {
  BackwardData,
  chooseTile,
  HiddenForward,
  LAYER_TILES,
  layerGrid,
  OutputForward,
  parseTile,
  TARGET_WORKGROUPS,
  WeightGradient,
  type LayerKernelKind,
  type LayerShape,
  type LayerTile,
  type PassDropout,
} from '../src/engine/kernels/layers.js';
import {
  batchInputReference,
  hiddenForwardReference,
  inputSignReference,
  maxoutBackwardReference,
  outputForwardReference,
  weightGradientReference,
  type HostBatch,
} from '../src/engine/kernels/layers-reference.js';
import { encodeSteps, type LaneStep } from '../src/engine/kernels/step-record.js';
import type { GpuRuntime } from '../src/engine/runtime.js';
import { engineRuntime, maxRelativeDifference } from './engine-helpers.js';

/*
 * A small maxout network, 19 → maxout(5 units, 3 pieces) → maxout(4, 2) → 3, on ragged shapes (7 clean rows per
 * lane, 14 with x̃), run through both passes of an adversarial training step: a gradient pass over x (n rows,
 * gradient-seed masks) down to the FGSM step, then a training pass over [x; x̃] (2n rows, dropout-seed masks)
 * down to every layer's parameter gradient. Each kernel is checked against the float64 reference on the
 * device's own inputs, under every tile; and since each output is one in-order sum over K whatever the tile, every
 * tile's outputs must be bit-identical.
 */

const N_IMAGES = 23;
const INPUTS = 19;
const BATCH = 7;
const INDEX_STRIDE = 20;
const EPSILON = 0.25;
const LAYERS = [
  { inputs: INPUTS, units: 5, pieces: 3, offset: 0 },
  { inputs: 5, units: 4, pieces: 2, offset: 301 },
] as const;
const CLASSES = 3;
const OUTPUT_OFFSET = 350;
const LANE_FLOATS = 367;
const STEP = 1;
const TOLERANCE = 1e-5;
/** The terms summed here are of order 1: a sum that cancels to near 0 still carries their f32 rounding, so differences are taken relative to at least 1. */
const FLOOR = 1;

const GRADIENT_PASS: PassDropout = { seed: 'gradientSeed', inputKeep: 0.8, inputScale: 1.25, hiddenKeep: 0.5, hiddenScale: 2 };
const TRAINING_PASS: PassDropout = { ...GRADIENT_PASS, seed: 'dropoutSeed' };

function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface Fixture {
  lanes: number;
  parameters: Float32Array;
  rowIndex: Uint32Array;
  /** Two step records: the passes use the second, so that the dynamic offset is exercised. */
  steps: LaneStep[][];
  /** dJ/dZ of each pass, [lanes·rows × classes]. */
  upstreamA: Float32Array;
  upstreamB: Float32Array;
}

const random01 = random(7);
const IMAGES = Float32Array.from({ length: N_IMAGES * INPUTS }, () => random01());

/** The step entries of record `record`: seeds and batch starts differ by lane and by record. */
const laneSteps = (record: number, lanes: number): LaneStep[] =>
  Array.from({ length: lanes }, (_, l) => ({
    dropoutSeed: 1000 + 10 * record + l,
    gradientSeed: 2000 + 10 * record + l,
    batchStart: 3 * record + 2 * l,
    active: true,
    learningRate: 0.1,
    momentum: 0.5,
    statsSlot: 0,
  }));

/**
 * Random parameters, but with ties built in: layer 1's unit 0 has three equal pieces (piece 2 must win), its
 * unit 1 two equal pieces above a third (piece 1); layer 2's unit 0 two equal pieces (piece 1).
 */
function fixture(lanes: number): Fixture {
  const next = random(11);
  const parameters = Float32Array.from({ length: lanes * LANE_FLOATS }, () => 2 * next() - 1);
  for (let l = 0; l < lanes; l++) {
    const copyColumn = (layer: (typeof LAYERS)[number], from: number, to: number) => {
      const columns = layer.units * layer.pieces;
      for (let k = 0; k <= layer.inputs; k++) {
        const at = l * LANE_FLOATS + layer.offset + k * columns;
        parameters[at + to] = parameters[at + from]!;
      }
    };
    const [first, second] = LAYERS;
    copyColumn(first, 0, first.units);
    copyColumn(first, 0, 2 * first.units);
    copyColumn(first, 1, first.units + 1);
    parameters[l * LANE_FLOATS + first.offset + first.inputs * first.units * first.pieces + 2 * first.units + 1] = -100;
    copyColumn(second, 0, second.units);
  }
  const rowIndex = Uint32Array.from({ length: lanes * INDEX_STRIDE }, () => Math.floor(next() * N_IMAGES));
  const steps = [0, 1].map((record) => laneSteps(record, lanes));
  const upstreamA = Float32Array.from({ length: lanes * BATCH * CLASSES }, () => 2 * next() - 1);
  // a row of zeros: its FGSM step must leave x as it is
  upstreamA.fill(0, 2 * CLASSES, 3 * CLASSES);
  const upstreamB = Float32Array.from({ length: lanes * 2 * BATCH * CLASSES }, () => 2 * next() - 1);
  return { lanes, parameters, rowIndex, steps, upstreamA, upstreamB };
}

/** Lane `lane` of a stack as a network alone: its parameters, indices, step entries and upstream rows. */
function alone(stack: Fixture, lane: number): Fixture {
  const rows = (values: Float32Array, perLane: number) => values.slice(lane * perLane, (lane + 1) * perLane);
  return {
    lanes: 1,
    parameters: rows(stack.parameters, LANE_FLOATS),
    rowIndex: stack.rowIndex.slice(lane * INDEX_STRIDE, (lane + 1) * INDEX_STRIDE),
    steps: stack.steps.map((record) => [record[lane]!]),
    upstreamA: rows(stack.upstreamA, BATCH * CLASSES),
    upstreamB: rows(stack.upstreamB, 2 * BATCH * CLASSES),
  };
}

/** A tile, or none: the kernels' own pick (chooseTile's, or FGSM_ENGINE_TILE's). */
type TileChoice = LayerTile | undefined;
const TILE_CHOICES: readonly TileChoice[] = [undefined, ...LAYER_TILES];
const tileName = (tile: TileChoice) => (tile ? `${tile.rows}x${tile.columns}` : 'chosen');
const bits = (values: Float32Array | Uint32Array) => new Uint32Array(values.buffer, values.byteOffset, values.length);

const shapeOf = (lanes: number, rows: number, layer: number, tile?: LayerTile): LayerShape => {
  const hidden = LAYERS[layer - 1];
  const shape: LayerShape = hidden
    ? { lanes, rows, layer, inputs: hidden.inputs, columns: hidden.units * hidden.pieces, laneFloats: LANE_FLOATS, offset: hidden.offset }
    : { lanes, rows, layer, inputs: LAYERS[1].units, columns: CLASSES, laneFloats: LANE_FLOATS, offset: OUTPUT_OFFSET };
  return tile ? { ...shape, tile } : shape;
};

interface PassOutputs {
  h1: Float32Array;
  route1: Uint32Array;
  h2: Float32Array;
  route2: Uint32Array;
  z: Float32Array;
  dPre2: Float32Array;
  dPre1: Float32Array;
}
interface Outputs {
  a: PassOutputs;
  b: PassOutputs;
  adversarial: Float32Array;
  gradients: Float32Array;
}

/** Both passes of the fixture on the device, every kernel under `tile`, recorded at step record STEP and read back; every buffer released. */
async function run(runtime: GpuRuntime, f: Fixture, tile?: LayerTile): Promise<Outputs> {
  const { lanes } = f;
  const made: GPUBuffer[] = [];
  const buffer = (label: string, floats: number) => (made.push(runtime.buffer(label, 4 * floats)), made.at(-1)!);
  const holding = (label: string, data: Float32Array | Uint32Array) => (made.push(runtime.bufferWith(label, data)), made.at(-1)!);
  const steps = encodeSteps(f.steps);
  made.push(runtime.uniform('steps', steps.byteLength, new Uint8Array(steps)));
  const stepBuffer = made.at(-1)!;
  const parameters = holding('parameters', f.parameters);
  const images = holding('images', IMAGES);
  const rowIndex = holding('rowIndex', f.rowIndex);
  const adversarial = buffer('adversarial', lanes * BATCH * INPUTS);
  const gradients = buffer('gradients', lanes * LANE_FLOATS);
  const [first, second] = LAYERS;
  const kernels: { record(step: number): void; dispose(): void }[] = [];
  const reads: (() => Promise<void>)[] = [];
  const collected: Partial<Record<string, Float32Array | Uint32Array>> = {};
  const readBack = (name: string, target: GPUBuffer, type: 'f32' | 'u32') =>
    reads.push(async () => {
      const bytes = await runtime.read(target, 0, target.size);
      collected[name] = type === 'f32' ? new Float32Array(bytes) : new Uint32Array(bytes);
    });

  const pass = async (name: 'a' | 'b', rows: number, dropout: PassDropout, upstreamValues: Float32Array) => {
    const batch = { images, rowIndex, indexStride: INDEX_STRIDE, batchRows: BATCH, adversarial };
    const h1 = buffer('h1', lanes * rows * first.units);
    const route1 = buffer('route1', lanes * rows * first.units);
    const h2 = buffer('h2', lanes * rows * second.units);
    const route2 = buffer('route2', lanes * rows * second.units);
    const z = buffer('z', lanes * rows * CLASSES);
    const upstream = holding('dz', upstreamValues);
    const dPre2 = buffer('dPre2', lanes * rows * second.units * second.pieces);
    const dPre1 = buffer('dPre1', lanes * rows * first.units * first.pieces);
    const [shape1, shape2, shape3] = [1, 2, 3].map((layer) => shapeOf(lanes, rows, layer, tile)) as [LayerShape, LayerShape, LayerShape];
    kernels.push(
      await HiddenForward.create(
        runtime,
        { ...shape1, pieces: first.pieces, dropout },
        { steps: stepBuffer, parameters, input: batch, output: h1, route: route1 },
      ),
      await HiddenForward.create(
        runtime,
        { ...shape2, pieces: second.pieces, dropout },
        { steps: stepBuffer, parameters, input: h1, output: h2, route: route2 },
      ),
      await OutputForward.create(runtime, shape3, { steps: stepBuffer, parameters, input: h2, output: z }),
      await BackwardData.create(
        runtime,
        { ...shape3, dropout, epilogue: { kind: 'maxout', pieces: second.pieces } },
        { steps: stepBuffer, parameters, upstream, output: dPre2, route: route2 },
      ),
      await BackwardData.create(
        runtime,
        { ...shape2, dropout, epilogue: { kind: 'maxout', pieces: first.pieces } },
        { steps: stepBuffer, parameters, upstream: dPre2, output: dPre1, route: route1 },
      ),
    );
    if (name === 'a') {
      kernels.push(
        await BackwardData.create(
          runtime,
          { ...shape1, dropout, epilogue: { kind: 'input-sign', epsilon: EPSILON } },
          { steps: stepBuffer, parameters, upstream: dPre1, output: adversarial, batch },
        ),
      );
    } else {
      kernels.push(
        await WeightGradient.create(runtime, { ...shape3, dropout }, { steps: stepBuffer, input: h2, upstream, gradients }),
        await WeightGradient.create(runtime, { ...shape2, dropout }, { steps: stepBuffer, input: h1, upstream: dPre2, gradients }),
        await WeightGradient.create(runtime, { ...shape1, dropout }, { steps: stepBuffer, input: batch, upstream: dPre1, gradients }),
      );
    }
    for (const [key, target, type] of [
      ['h1', h1, 'f32'],
      ['route1', route1, 'u32'],
      ['h2', h2, 'f32'],
      ['route2', route2, 'u32'],
      ['z', z, 'f32'],
      ['dPre2', dPre2, 'f32'],
      ['dPre1', dPre1, 'f32'],
    ] as const)
      readBack(`${name}.${key}`, target, type);
  };
  await pass('a', BATCH, GRADIENT_PASS, f.upstreamA);
  await pass('b', 2 * BATCH, TRAINING_PASS, f.upstreamB);
  readBack('adversarial', adversarial, 'f32');
  readBack('gradients', gradients, 'f32');
  for (const kernel of kernels) kernel.record(STEP);
  for (const read of reads) await read();
  for (const kernel of kernels) kernel.dispose();
  for (const made1 of made) runtime.release(made1);
  const passOf = (name: string) =>
    Object.fromEntries(
      ['h1', 'route1', 'h2', 'route2', 'z', 'dPre2', 'dPre1'].map((key) => [key, collected[`${name}.${key}`]]),
    ) as unknown as PassOutputs;
  return {
    a: passOf('a'),
    b: passOf('b'),
    adversarial: collected.adversarial as Float32Array,
    gradients: collected.gradients as Float32Array,
  };
}

const hostBatch = (f: Fixture, adversarial?: Float32Array): HostBatch => ({
  images: IMAGES,
  rowIndex: f.rowIndex,
  indexStride: INDEX_STRIDE,
  batchRows: BATCH,
  ...(adversarial ? { adversarial } : {}),
});

const close = (got: ArrayLike<number>, want: ArrayLike<number>, what: string) => {
  const difference = maxRelativeDifference(got, want, FLOOR);
  assert.ok(difference < TOLERANCE, `${what}: relative difference ${difference}`);
};

/** Every output of a run, as bits, by name. */
const outputBits = (out: Outputs): [string, Uint32Array][] => [
  ...(['a', 'b'] as const).flatMap((pass) =>
    (Object.keys(out[pass]) as (keyof PassOutputs)[]).map((key): [string, Uint32Array] => [`pass ${pass}, ${key}`, bits(out[pass][key])]),
  ),
  ['x̃', bits(out.adversarial)],
  ['gradients', bits(out.gradients)],
];

test('layer kernels: each matches the float64 reference on ragged shapes over two lanes, with dropout and x̃ rows, under every tile, bit-identically', async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const f = fixture(2);
  let first: Map<string, Uint32Array> | null = null;
  for (const tile of TILE_CHOICES) {
    const out = await run(runtime, f, tile);
    assert.equal(runtime.liveBuffers, before);
    checkAgainstReference(f, out, tileName(tile));
    first ??= new Map(outputBits(out));
    for (const [name, got] of outputBits(out)) assert.deepEqual(got, first.get(name), `tile ${tileName(tile)}: ${name} bit for bit`);
  }
});

function checkAgainstReference(f: Fixture, out: Outputs, tile: string): void {
  const steps = f.steps[STEP]!;
  const [first, second] = LAYERS;
  const check = (pass: string, rows: number, dropout: PassDropout, upstream: Float32Array, p: PassOutputs, input: Float64Array) => {
    const [shape1, shape2, shape3] = [1, 2, 3].map((layer) => shapeOf(2, rows, layer)) as [LayerShape, LayerShape, LayerShape];
    const name = `tile ${tile}, ${pass}`;
    const h1 = hiddenForwardReference(f.parameters, input, { ...shape1, pieces: first.pieces, dropout }, steps);
    close(p.h1, h1.output, `${name} H1`);
    assert.deepEqual(p.route1, h1.route, `${name} route 1`);
    const h2 = hiddenForwardReference(f.parameters, p.h1, { ...shape2, pieces: second.pieces, dropout }, steps);
    close(p.h2, h2.output, `${name} H2`);
    assert.deepEqual(p.route2, h2.route, `${name} route 2`);
    close(p.z, outputForwardReference(f.parameters, p.h2, shape3), `${name} Z`);
    close(p.dPre2, maxoutBackwardReference(f.parameters, upstream, p.route2, { ...shape3, pieces: second.pieces, dropout }, steps), `${name} dPre2`);
    close(p.dPre1, maxoutBackwardReference(f.parameters, p.dPre2, p.route1, { ...shape2, pieces: first.pieces, dropout }, steps), `${name} dPre1`);
  };
  const inputA = batchInputReference(hostBatch(f), steps, { lanes: 2, rows: BATCH, inputs: INPUTS }, GRADIENT_PASS);
  check('gradient pass', BATCH, GRADIENT_PASS, f.upstreamA, out.a, inputA);
  const inputB = batchInputReference(hostBatch(f, out.adversarial), steps, { lanes: 2, rows: 2 * BATCH, inputs: INPUTS }, TRAINING_PASS);
  check('training pass', 2 * BATCH, TRAINING_PASS, f.upstreamB, out.b, inputB);

  const [shape1, shape2, shape3] = [1, 2, 3].map((layer) => shapeOf(2, 2 * BATCH, layer)) as [LayerShape, LayerShape, LayerShape];
  const gradients = new Float64Array(2 * LANE_FLOATS);
  for (const part of [
    weightGradientReference(inputB, out.b.dPre1, shape1),
    weightGradientReference(out.b.h1, out.b.dPre2, shape2),
    weightGradientReference(out.b.h2, f.upstreamB, shape3),
  ])
    part.forEach((value, i) => (gradients[i]! += value));
  close(out.gradients, gradients, `tile ${tile}: parameter gradients`);
  // the gaps between layers' blocks are nobody's: left as they were
  for (let l = 0; l < 2; l++) assert.equal(out.gradients[l * LANE_FLOATS + 300], 0);

  const fgsm = inputSignReference(
    f.parameters,
    out.a.dPre1,
    hostBatch(f),
    { ...shapeOf(2, BATCH, 1), epsilon: EPSILON, dropout: GRADIENT_PASS },
    steps,
  );
  assert.deepEqual(out.adversarial, Float32Array.from(fgsm), `tile ${tile}: x̃ = x + ε·sign(∇ₓ) exactly`);
}

test('layer kernels: maxout ties go to the last tied piece, forward and backward', async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const out = await run(runtime, fixture(2));
  assert.equal(runtime.liveBuffers, before);
  const [first, second] = LAYERS;
  for (const p of [out.a, out.b]) {
    const rows = p.route1.length / first.units;
    for (let r = 0; r < rows; r++) {
      assert.equal(p.route1[r * first.units], 2, `row ${r}: three equal pieces, the last wins`);
      assert.equal(p.route1[r * first.units + 1], 1, `row ${r}: two equal pieces above a third, the second wins`);
      assert.equal(p.route2[r * second.units], 1, `row ${r}: two equal pieces, the second wins`);
      const width = first.units * first.pieces;
      for (const piece of [0, 1]) assert.equal(p.dPre1[r * width + piece * first.units], 0, `row ${r}: a losing tied piece takes no gradient`);
      for (const piece of [0, 2])
        assert.equal(p.dPre1[r * width + piece * first.units + 1], 0, `row ${r}: only the second of two tied pieces takes gradient`);
      assert.equal(p.dPre2[r * second.units * second.pieces], 0, `row ${r}: the first of two tied pieces takes no gradient`);
    }
    const tiedWinners = Array.from({ length: rows }, (_, r) => p.dPre1[r * first.units * first.pieces + 2 * first.units]!);
    assert.ok(
      tiedWinners.some((g) => g !== 0),
      'the winner of a three-way tie takes the gradient',
    );
  }
});

test('layer kernels: dropout masks are threefry-v1 (counterDropoutMask), and the FGSM step is exactly ε·sign with sign(0) = 0', async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const f = fixture(2);
  const out = await run(runtime, f);
  assert.equal(runtime.liveBuffers, before);
  const [first, second] = LAYERS;
  const width = first.units * first.pieces;
  assert.ok(
    out.a.dPre1.subarray(2 * width, 3 * width).every((g) => g === 0),
    'the zero row of dJ/dZ sends nothing back',
  );
  for (let l = 0; l < 2; l++) {
    const step = f.steps[STEP]![l]!;
    const zeros = (values: Float32Array, width: number, rows: number) =>
      Array.from(values.subarray(l * rows * width, (l + 1) * rows * width), (v) => v === 0);
    const dropped = (mask: Float32Array) => Array.from(mask, (v) => v === 0);
    const { hiddenKeep, hiddenScale } = GRADIENT_PASS;
    assert.deepEqual(
      zeros(out.a.h1, first.units, BATCH),
      dropped(counterDropoutMask(BATCH, first.units, hiddenKeep, hiddenScale, step.gradientSeed, 1)),
    );
    assert.deepEqual(
      zeros(out.a.h2, second.units, BATCH),
      dropped(counterDropoutMask(BATCH, second.units, hiddenKeep, hiddenScale, step.gradientSeed, 2)),
    );
    assert.deepEqual(
      zeros(out.b.h1, first.units, 2 * BATCH),
      dropped(counterDropoutMask(2 * BATCH, first.units, hiddenKeep, hiddenScale, step.dropoutSeed, 1)),
    );
    // where the input mask drops an element, or nothing flows back to its row, the FGSM step leaves it
    const inputMask = counterDropoutMask(BATCH, INPUTS, GRADIENT_PASS.inputKeep, GRADIENT_PASS.inputScale, step.gradientSeed, 0);
    const clean = batchInputReference(hostBatch(f), f.steps[STEP]!, { lanes: 2, rows: BATCH, inputs: INPUTS }, null, false);
    for (let i = 0; i < BATCH * INPUTS; i++) {
      const at = l * BATCH * INPUTS + i;
      const moved = out.adversarial[at]! - clean[at]!;
      const row = l * BATCH + Math.floor(i / INPUTS);
      // a row whose units all dropped (or whose dJ/dZ is the zero row) has no gradient to x at all
      const silent = out.a.dPre1.subarray(row * width, (row + 1) * width).every((g) => g === 0);
      if (inputMask[i] === 0 || silent) assert.equal(out.adversarial[at], Math.fround(clean[at]!), `element ${at}: no gradient, no step`);
      else assert.ok(Math.abs(Math.abs(moved) - EPSILON) < 1e-6, `element ${at}: moved ${moved}`);
    }
  }
});

test('layer kernels: two stacked lanes equal each lane run alone, bit for bit', async () => {
  const runtime = await engineRuntime();
  const before = runtime.liveBuffers;
  const stack = fixture(2);
  const stacked = await run(runtime, stack);
  for (let l = 0; l < 2; l++) {
    const single = await run(runtime, alone(stack, l));
    const laneOf = (values: Float32Array | Uint32Array) => bits(values).subarray((l * values.length) / 2, ((l + 1) * values.length) / 2);
    for (const name of ['a', 'b'] as const) {
      for (const key of Object.keys(single[name]) as (keyof PassOutputs)[])
        assert.deepEqual(laneOf(stacked[name][key]), bits(single[name][key]), `lane ${l}, pass ${name}, ${key}`);
    }
    assert.deepEqual(laneOf(stacked.adversarial), bits(single.adversarial), `lane ${l}: x̃`);
    assert.deepEqual(laneOf(stacked.gradients), bits(single.gradients), `lane ${l}: gradients`);
  }
  assert.equal(runtime.liveBuffers, before);
});

/**
 * 66 → maxout(17 units, 4 pieces) → 3 over 35 + 35 rows per lane: at least two tiles of rows, of units, of W's
 * rows and columns, whatever the tile, each kernel under `tile` checked against the reference; its outputs' bits.
 */
async function runSeveralTiles(runtime: GpuRuntime, tile: TileChoice): Promise<[string, Uint32Array][]> {
  const before = runtime.liveBuffers;
  const [lanes, n, inputs, units, pieces] = [2, 35, 66, 17, 4];
  const rows = 2 * n;
  const laneFloats = (inputs + 1) * units * pieces + (units + 1) * CLASSES;
  const next = random(5);
  const values = (length: number) => Float32Array.from({ length }, () => 2 * next() - 1);
  const images = Float32Array.from({ length: 50 * inputs }, () => next());
  const indexStride = n + 2;
  const hostIndex = Uint32Array.from({ length: lanes * indexStride }, () => Math.floor(next() * 50));
  const [parameters, adversarialRows, dZ, dPreClean] = [
    values(lanes * laneFloats),
    values(lanes * n * inputs),
    values(lanes * rows * CLASSES),
    values(lanes * n * units * pieces),
  ];
  const lanesSteps = laneSteps(0, lanes);
  const made: GPUBuffer[] = [];
  const hold = (data: Float32Array | Uint32Array) => (made.push(runtime.bufferWith('data', data)), made.at(-1)!);
  const empty = (floats: number) => (made.push(runtime.buffer('out', 4 * floats)), made.at(-1)!);
  const stepBytes = encodeSteps([lanesSteps]);
  made.push(runtime.uniform('steps', stepBytes.byteLength, new Uint8Array(stepBytes)));
  const steps = made.at(-1)!;
  const [packed, imageBuffer, rowIndex, adversarial, upstream, cleanUpstream] = [parameters, images, hostIndex, adversarialRows, dZ, dPreClean].map(
    hold,
  ) as GPUBuffer[];
  const [h, route, z, dPre, gradients, fgsm] = [
    lanes * rows * units,
    lanes * rows * units,
    lanes * rows * CLASSES,
    lanes * rows * units * pieces,
    lanes * laneFloats,
    lanes * n * inputs,
  ].map(empty) as GPUBuffer[];
  const batch = { images: imageBuffer!, rowIndex: rowIndex!, indexStride, batchRows: n, adversarial: adversarial! };
  const tiled = tile ? { tile } : {};
  const hidden: LayerShape = { lanes, rows, layer: 1, inputs, columns: units * pieces, laneFloats, offset: 0, ...tiled };
  const top: LayerShape = { lanes, rows, layer: 2, inputs: units, columns: CLASSES, laneFloats, offset: (inputs + 1) * units * pieces, ...tiled };
  const dropout = TRAINING_PASS;
  const kernels = [
    await HiddenForward.create(runtime, { ...hidden, pieces, dropout }, { steps, parameters: packed!, input: batch, output: h!, route: route! }),
    await OutputForward.create(runtime, top, { steps, parameters: packed!, input: h!, output: z! }),
    await BackwardData.create(
      runtime,
      { ...top, dropout, epilogue: { kind: 'maxout', pieces } },
      { steps, parameters: packed!, upstream: upstream!, output: dPre!, route: route! },
    ),
    await WeightGradient.create(runtime, { ...top, dropout }, { steps, input: h!, upstream: upstream!, gradients: gradients! }),
    await WeightGradient.create(runtime, { ...hidden, dropout }, { steps, input: batch, upstream: dPre!, gradients: gradients! }),
    await BackwardData.create(
      runtime,
      { ...hidden, rows: n, dropout, epilogue: { kind: 'input-sign', epsilon: EPSILON } },
      { steps, parameters: packed!, upstream: cleanUpstream!, output: fgsm!, batch },
    ),
  ];
  for (const kernel of kernels) if (tile) assert.deepEqual(kernel.tile, tile);
  for (const kernel of kernels) kernel.record(0);
  const read = async (buffer: GPUBuffer) => new Float32Array(await runtime.read(buffer, 0, buffer.size));
  const [gotH, gotZ, gotDPre, gotGradients, gotFgsm] = [await read(h!), await read(z!), await read(dPre!), await read(gradients!), await read(fgsm!)];
  const gotRoute = new Uint32Array(await runtime.read(route!, 0, route!.size));
  for (const kernel of kernels) kernel.dispose();
  for (const buffer of made) runtime.release(buffer);
  assert.equal(runtime.liveBuffers, before);

  const host: HostBatch = { images, rowIndex: hostIndex, indexStride, batchRows: n, adversarial: adversarialRows };
  const input = batchInputReference(host, lanesSteps, hidden, dropout);
  const forward = hiddenForwardReference(parameters, input, { ...hidden, pieces, dropout }, lanesSteps);
  const name = `tile ${tileName(tile)}:`;
  close(gotH, forward.output, `${name} H`);
  assert.deepEqual(gotRoute, forward.route, `${name} route`);
  close(gotZ, outputForwardReference(parameters, gotH, top), `${name} Z`);
  close(gotDPre, maxoutBackwardReference(parameters, dZ, gotRoute, { ...top, pieces, dropout }, lanesSteps), `${name} dPre`);
  const expected = weightGradientReference(input, gotDPre, hidden);
  weightGradientReference(gotH, dZ, top).forEach((value, i) => (expected[i]! += value));
  close(gotGradients, expected, `${name} gradients`);
  const sign = inputSignReference(parameters, dPreClean, host, { ...hidden, rows: n, epsilon: EPSILON, dropout }, lanesSteps);
  assert.deepEqual(gotFgsm, Float32Array.from(sign), `${name} x̃`);
  return Object.entries({ H: gotH, route: gotRoute, Z: gotZ, dPre: gotDPre, gradients: gotGradients, x̃: gotFgsm }).map(([key, values]) => [
    key,
    bits(values),
  ]);
}

test('layer kernels: shapes of several tiles in every direction (rows, units, columns, depth) match the reference under every tile, bit-identically', async () => {
  const runtime = await engineRuntime();
  let first: Map<string, Uint32Array> | null = null;
  for (const tile of TILE_CHOICES) {
    const out = await runSeveralTiles(runtime, tile);
    first ??= new Map(out);
    for (const [name, got] of out) assert.deepEqual(got, first.get(name), `tile ${tileName(tile)}: ${name} bit for bit`);
  }
});

test('layer kernels: dispatch grids tile rows and columns by the tile (16 units for a maxout forward pass), one z per lane', () => {
  const shape = { lanes: 3, rows: 130, inputs: 784, columns: 1200 };
  const [large, small] = [parseTile('64x64'), parseTile('16x32')];
  assert.deepEqual(layerGrid('hidden-forward', { ...shape, pieces: 5, tile: large }), [15, 3, 3]);
  assert.deepEqual(layerGrid('output-forward', { ...shape, columns: 10, tile: large }), [1, 3, 3]);
  assert.deepEqual(layerGrid('backward-data', { ...shape, tile: large }), [13, 3, 3]);
  assert.deepEqual(layerGrid('weight-gradient', { ...shape, tile: large }), [19, 13, 3]);
  assert.deepEqual(layerGrid('hidden-forward', { ...shape, pieces: 5, tile: small }), [15, 9, 3]);
  assert.deepEqual(layerGrid('output-forward', { ...shape, columns: 10, tile: small }), [1, 9, 3]);
  assert.deepEqual(layerGrid('backward-data', { ...shape, tile: small }), [25, 9, 3]);
  assert.deepEqual(layerGrid('weight-gradient', { ...shape, tile: small }), [38, 50, 3]);
  // without a tile, chooseTile's
  assert.deepEqual(layerGrid('backward-data', shape), layerGrid('backward-data', { ...shape, tile: chooseTile('backward-data', shape) }));
});

test('layer kernels: FGSM_ENGINE_TILE spells a tile as rows x columns, and only the tiles there are', () => {
  assert.deepEqual(
    LAYER_TILES.map((tile) => parseTile(`${tile.rows}x${tile.columns}`)),
    LAYER_TILES,
  );
  for (const text of ['64', '64x16', '8x64', '128x128', 'x', '']) assert.throws(() => parseTile(text), /one of 64x64/);
});

test("layer kernels: on the paper's shapes the chooser takes the largest tile that reaches the target, or gives as many workgroups as the smallest", () => {
  const workgroups = (grid: readonly number[]) => grid.reduce((a, b) => a * b, 1);
  const area = (tile: LayerTile) => tile.rows * tile.columns;
  const smallest = parseTile('16x32');
  const picks: Record<string, string> = {};
  for (const units of [240, 1600]) {
    const columns = 5 * units;
    // each kernel of 784 → maxout(units, 5) → maxout(units, 5) → 10, by its GEMM's shape
    const kernels: [LayerKernelKind, string, { inputs: number; columns: number; pieces?: number }][] = [
      ['hidden-forward', 'layer 1', { inputs: 784, columns, pieces: 5 }],
      ['hidden-forward', 'layer 2', { inputs: units, columns, pieces: 5 }],
      ['output-forward', 'layer 3', { inputs: units, columns: 10 }],
      ['backward-data', 'layer 3', { inputs: units, columns: 10 }],
      ['backward-data', 'layer 2', { inputs: units, columns }],
      ['backward-data', 'layer 1', { inputs: 784, columns }],
      ['weight-gradient', 'layer 1', { inputs: 784, columns }],
      ['weight-gradient', 'layer 2', { inputs: units, columns }],
      ['weight-gradient', 'layer 3', { inputs: units, columns: 10 }],
    ];
    for (const rows of [100, 200]) {
      for (const [kind, layer, gemm] of kernels) {
        const shape = { lanes: 1, rows, ...gemm };
        const tile = chooseTile(kind, shape);
        const count = workgroups(layerGrid(kind, shape));
        const what = `${kind} ${layer}, ${units} units, ${rows} rows: ${tile.rows}x${tile.columns}, ${count} workgroups`;
        assert.deepEqual(layerGrid(kind, shape), layerGrid(kind, { ...shape, tile }), what);
        assert.ok(count >= TARGET_WORKGROUPS || count === workgroups(layerGrid(kind, { ...shape, tile: smallest })), what);
        // a maxout forward pass's tile is 16 units wide whatever its columns: it picks among rows
        const candidates = kind === 'hidden-forward' ? LAYER_TILES.filter((t) => t.columns === tile.columns) : LAYER_TILES;
        for (const larger of candidates.filter((t) => area(t) > area(tile)))
          assert.ok(
            workgroups(layerGrid(kind, { ...shape, tile: larger })) < Math.min(count, TARGET_WORKGROUPS),
            `${what}; ${larger.rows}x${larger.columns} too`,
          );
        picks[`${kind} ${layer} ${units}u ${rows}r`] = `${tile.rows}x${tile.columns} ${count}`;
      }
    }
  }
  // the cases that motivate the choice: at batch 100, 64 × 64 tiles gave 26 and 30 workgroups
  assert.equal(picks['backward-data layer 1 240u 100r'], '16x32 175');
  assert.equal(picks['hidden-forward layer 1 240u 100r'], '16x64 105');
  assert.equal(picks['weight-gradient layer 1 240u 100r'], '64x32 494');
  assert.equal(picks['weight-gradient layer 2 1600u 200r'], '64x64 3250');
  assert.equal(picks['hidden-forward layer 1 1600u 200r'], '64x64 400');
});
