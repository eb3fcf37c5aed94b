import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isMap, isSeq, isScalar, LineCounter, parse as parseYamlValue, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { FgsmError } from '../core/errors.js';
import { nearestExistingFile } from '../core/nearest-file.js';
import { CrossRunSchema, type CrossRunConfig, type CrossRunKind } from './cross-run.js';
import { ExperimentSchema, type Experiment } from './schema.js';

/**
 * Reads an experiment: a YAML file, the files it `extends` (a path relative to it; its keys are the base,
 * the file's own keys win, lists replace), then `--set key.path=value` overrides. Every problem is collected
 * and reported with the file, line and column (or the --set that caused it), the key path, what was expected
 * and what was found.
 */

interface FileLayer {
  kind: 'file';
  file: string;
  doc: Document.Parsed;
  lines: LineCounter;
}

interface OverrideLayer {
  kind: 'set';
  text: string;
  path: string[];
}

type Layer = FileLayer | OverrideLayer;

export interface ConfigIssue {
  /** "file:line:column" or "--set key=value". */
  where: string;
  /** Dotted key path, e.g. training.epochs. */
  key: string;
  message: string;
  /** What fixes it, where that is not "see the schema" (a path to check, the --set syntax). */
  hint?: string;
}

const SCHEMA_HINT = 'see `fgsm validate --schema` for every key, its type and its default';

export class ConfigError extends FgsmError {
  constructor(readonly issues: ConfigIssue[]) {
    super(
      `invalid experiment (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n` +
        issues.map((issue) => `  ${issue.where}: ${issue.key ? `${issue.key}: ` : ''}${issue.message}`).join('\n'),
      [...new Set(issues.map((issue) => issue.hint ?? SCHEMA_HINT))].join('; '),
    );
    this.name = 'ConfigError';
  }
}

export interface LoadedExperiment {
  config: Experiment;
  /** The files read, the experiment's own file last. */
  files: string[];
  overrides: string[];
  /** A short hash of the resolved config: runs with equal hashes are the same experiment. */
  configHash: string;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

function mergeDeep(base: Json, top: Json): Json {
  if (!isObject(base) || !isObject(top)) return top;
  const merged: JsonObject = { ...base };
  for (const [key, value] of Object.entries(top)) merged[key] = key in base ? mergeDeep(base[key]!, value) : value;
  return merged;
}

function readFileLayers(file: string, chain: string[], issues: ConfigIssue[]): { layers: FileLayer[]; value: Json } {
  const path = resolve(file);
  if (chain.includes(path)) {
    issues.push({ where: chain.at(-1)!, key: 'extends', message: `expected no cycle of extends, found ${[...chain, path].join(' → ')}` });
    return { layers: [], value: {} };
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    const nearest = missing ? nearestExistingFile(file) : null;
    issues.push({
      where: chain.at(-1) ?? path,
      key: chain.length ? 'extends' : '',
      message: `cannot read ${path}: ${missing ? 'no such file' : (error as Error).message}`,
      hint: nearest ? `did you mean ${nearest}?` : 'check the path of the experiment file (and of its extends:)',
    });
    return { layers: [], value: {} };
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  for (const error of doc.errors) {
    const pos = lines.linePos(error.pos[0]);
    issues.push({ where: `${path}:${pos.line}:${pos.col}`, key: '', message: `YAML syntax: ${error.message.split('\n')[0]}` });
  }
  if (doc.errors.length > 0) return { layers: [], value: {} };
  if (doc.contents === null) {
    // not one "missing key" line per required key: the cause is that the file has none
    issues.push({ where: path, key: '', message: 'the file is empty; expected a mapping of keys (name:, model:, training:, …)' });
    return { layers: [], value: {} };
  }
  const layer: FileLayer = { kind: 'file', file: path, doc, lines };
  const value = doc.toJS() as Json;
  if (!isObject(value)) {
    issues.push({ where: `${path}:1:1`, key: '', message: `expected a mapping of keys (name:, model:, …), found ${describe(value)}` });
    return { layers: [], value: {} };
  }
  const { extends: parent, ...own } = value;
  if (parent === undefined) return { layers: [layer], value: own };
  if (typeof parent !== 'string') {
    issues.push({ where: locateInFile(layer, ['extends']).where, key: 'extends', message: `expected a file path, found ${describe(parent)}` });
    return { layers: [layer], value: own };
  }
  const base = readFileLayers(resolve(dirname(path), parent), [...chain, `${path}:${locateInFile(layer, ['extends']).line}`], issues);
  return { layers: [...base.layers, layer], value: mergeDeep(base.value, own) };
}

const SET_HINT = 'write --set key.path=value with the value in YAML, e.g. --set training.epochs=2 or --set attack.epsilons=[0.1,0.25]';

/** Parses one `key.path=value` override; the value is read as YAML (2 → number, [0, 1] → list, none → string). */
function parseOverride(text: string, issues: ConfigIssue[]): { layer: OverrideLayer; value: Json } | null {
  const eq = text.indexOf('=');
  const keyText = eq < 0 ? '' : text.slice(0, eq).trim();
  if (!keyText || keyText.split('.').some((part) => part === '')) {
    issues.push({ where: `--set ${text}`, key: keyText, message: 'expected key.path=value, e.g. --set training.epochs=2', hint: SET_HINT });
    return null;
  }
  const path = keyText.split('.');
  let value: Json;
  try {
    value = parseYamlValue(text.slice(eq + 1)) as Json;
  } catch (error) {
    // the YAML parser's message spans lines (the text, a caret); its first line says what is wrong
    const why = (error as Error).message.split('\n')[0]!.replace(/ at line 1, column (\d+):$/, ' at character $1');
    issues.push({
      where: `--set ${text}`,
      key: keyText,
      message: `expected a YAML value; found ${describe(text.slice(eq + 1))} (${why})`,
      hint: SET_HINT,
    });
    return null;
  }
  let nested: Json = value;
  for (const part of [...path].reverse()) nested = { [part]: nested };
  return { layer: { kind: 'set', text, path }, value: nested };
}

interface Location {
  depth: number;
  where: string;
  line: number;
}

/** The deepest node of `path` that the file defines, as "file:line:col". */
function locateInFile(layer: FileLayer, path: (string | number)[]): Location {
  let node: Node | null = layer.doc.contents as Node | null;
  let offset = 0;
  let depth = 0;
  for (const part of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(part));
      if (!pair) break;
      offset = (pair.key as Node).range?.[0] ?? offset;
      node = pair.value as Node | null;
    } else if (isSeq(node) && typeof part === 'number' && part < node.items.length) {
      node = node.items[part] as Node;
      offset = node.range?.[0] ?? offset;
    } else {
      break;
    }
    depth++;
  }
  const pos = layer.lines.linePos(offset);
  return { depth, where: `${layer.file}:${pos.line}:${pos.col}`, line: pos.line };
}

/** Where a key path was set: the layer that defines most of it, the topmost on a tie. */
function locate(layers: Layer[], path: (string | number)[]): Location {
  let best: Location | null = null;
  for (const layer of [...layers].reverse()) {
    let found: Location;
    if (layer.kind === 'set') {
      const shared = layer.path.findIndex((part, i) => String(path[i]) !== part);
      const depth = shared < 0 ? layer.path.length : shared;
      if (depth === 0) continue;
      found = { depth: Math.min(depth, path.length), where: `--set ${layer.text}`, line: 0 };
    } else {
      found = locateInFile(layer, path);
    }
    if (!best || found.depth > best.depth) best = found;
  }
  return best ?? { depth: 0, where: 'experiment', line: 0 };
}

/** YAML's .nan, .inf and -.inf, which JSON would show as null. */
const yamlNumber = (n: number): string => (Number.isNaN(n) ? '.nan' : n > 0 ? '.inf' : '-.inf');

function describe(value: unknown): string {
  if (value === undefined) return 'nothing (the key is missing)';
  if (typeof value === 'number' && !Number.isFinite(value)) return yamlNumber(value);
  // inside lists and mappings: a marked string, unquoted again below
  const text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? `\u0000${yamlNumber(v)}` : v)).replace(
    /"\\u0000([^"]*)"/g,
    '$1',
  );
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function valueAt(root: Json, path: PropertyKey[]): unknown {
  let node: unknown = root;
  for (const part of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[part as string];
  }
  return node;
}

function issuesFromSchema(error: z.ZodError, layers: Layer[], merged: Json): ConfigIssue[] {
  const found: ConfigIssue[] = [];
  for (const issue of error.issues) {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const keyPath = [...path, key];
        found.push({
          where: locate(layers, keyPath).where,
          key: keyPath.join('.'),
          message: `unknown key "${key}" (a typo? unknown keys are not ignored)`,
        });
      }
      continue;
    }
    const value = valueAt(merged, path);
    const expected = issue.message.replace(/^Invalid input: /, '').replace(/, received .*$/, '');
    found.push({ where: locate(layers, path).where, key: path.join('.'), message: `${expected}; found ${describe(value)}` });
  }
  return found;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Keys added to the schema after runs had begun, each with the value every earlier run implicitly had. While a
 * key holds that value it is left out of the hash, so those runs keep their identity (resume and peek still find
 * them); any other value changes the hash. A key added later with a default belongs here.
 */
const LATER_KEYS: readonly { path: readonly string[]; value: Json }[] = [
  { path: ['attack', 'gradient'], value: 'standard' },
  { path: ['training', 'objective', 'gradient'], value: 'standard' },
  { path: ['model', 'top'], value: 'softmax' },
  { path: ['model', 'sigmoidLoss'], value: 'sum' },
  { path: ['model', 'dropout', 'stream'], value: 'sfc32-rows' },
];

/** Where each LATER_KEY sits in `config` (its parent object, which may lack the key) and its original value. */
function laterKeySlots(config: JsonObject): { parent: JsonObject; key: string; value: Json }[] {
  return LATER_KEYS.flatMap(({ path, value }) => {
    const parent = valueAt(config, path.slice(0, -1));
    return isObject(parent) ? [{ parent, key: path.at(-1)!, value }] : [];
  });
}

/** A recorded config with every LATER_KEY it lacks (it was written before the key existed) at its original value. */
export function withOriginalValues<T extends object>(config: T): T {
  const completed = structuredClone(config) as unknown as JsonObject;
  for (const { parent, key, value } of laterKeySlots(completed)) if (!(key in parent)) parent[key] = value;
  return completed as unknown as T;
}

/** A short hash of the resolved config, blind to LATER_KEYS at their original values. */
export function hashConfig(config: Experiment): string {
  const hashed = structuredClone(config) as unknown as JsonObject;
  for (const { parent, key, value } of laterKeySlots(hashed)) {
    if (key in parent && canonicalJson(parent[key]) === canonicalJson(value)) delete parent[key];
  }
  return createHash('sha256').update(canonicalJson(hashed)).digest('hex').slice(0, 12);
}

/** A document and the overrides, merged; throws ConfigError with every problem found (`issues` holds the document's). */
function withOverrides(fileLayers: FileLayer[], value: Json, overrides: string[], issues: ConfigIssue[]): { layers: Layer[]; merged: Json } {
  const layers: Layer[] = [...fileLayers];
  let merged = value;
  for (const text of overrides) {
    const parsed = parseOverride(text, issues);
    if (!parsed) continue;
    layers.push(parsed.layer);
    merged = mergeDeep(merged, parsed.value);
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return { layers, merged };
}

/** The file (with its extends:) and the overrides, merged; throws ConfigError with every problem found. */
function readDocument(file: string, overrides: string[]): { layers: Layer[]; fileLayers: FileLayer[]; merged: Json } {
  const issues: ConfigIssue[] = [];
  const { layers: fileLayers, value } = readFileLayers(file, [], issues);
  return { ...withOverrides(fileLayers, value, overrides, issues), fileLayers };
}

/** The directory a relative path at `path` is resolved against: that of the file that set it (cwd for --set). */
function baseDirOf(layers: Layer[], path: string[]): string {
  const definer = [...layers]
    .reverse()
    .find((layer) =>
      layer.kind === 'set'
        ? path.every((part, i) => i >= layer.path.length || layer.path[i] === part)
        : locateInFile(layer, path).depth === path.length,
    );
  return definer?.kind === 'file' ? dirname(definer.file) : process.cwd();
}

const CROSS_RUN_KINDS: readonly string[] = CrossRunSchema.options.map((option) => option.shape.kind.value);

/** What a YAML document describes: an experiment (it trains a model) or an experiment over other runs (its kind:). */
export function documentKind(file: string): 'experiment' | CrossRunKind {
  const { merged } = readDocument(file, []);
  return isObject(merged) && typeof merged.kind === 'string' && CROSS_RUN_KINDS.includes(merged.kind) ? (merged.kind as CrossRunKind) : 'experiment';
}

export function loadExperiment(file: string, overrides: string[] = []): LoadedExperiment {
  const { layers, fileLayers, merged } = readDocument(file, overrides);
  const result = ExperimentSchema.safeParse(merged);
  if (!result.success) throw new ConfigError(issuesFromSchema(result.error, layers, merged));
  const config = result.data;
  if (config.data.dir !== null && !isAbsolute(config.data.dir)) config.data.dir = resolve(baseDirOf(layers, ['data', 'dir']), config.data.dir);
  return {
    config,
    files: fileLayers.map((layer) => layer.file),
    overrides,
    configHash: hashConfig(config),
  };
}

export interface LoadedCrossRun<C extends CrossRunConfig = CrossRunConfig> {
  /** uses: every experiment file resolved to an absolute path. */
  config: C;
  files: string[];
  overrides: string[];
}

/** An experiment over runs of any kind (transfer, agreement, ensemble). */
export function loadCrossRun(file: string, overrides: string[] = []): LoadedCrossRun {
  const { layers, fileLayers, merged } = readDocument(file, overrides);
  return { config: crossRunConfig(layers, merged), files: fileLayers.map((layer) => layer.file), overrides };
}

/**
 * An experiment over runs that the command line describes (`fgsm transfer A.yaml B.yaml`): the document it makes,
 * then --set overrides, checked as a file's would be; its relative paths are the working directory's.
 */
export function loadCommandLineCrossRun(document: Record<string, unknown>, files: string[], overrides: string[]): LoadedCrossRun {
  const { layers, merged } = withOverrides([], document as Json, overrides, []);
  return { config: crossRunConfig(layers, merged), files, overrides };
}

function crossRunConfig(layers: Layer[], merged: Json): CrossRunConfig {
  const result = CrossRunSchema.safeParse(merged);
  if (!result.success) throw new ConfigError(issuesFromSchema(result.error, layers, merged));
  const config = result.data;
  const uses: Record<string, unknown> = config.uses;
  for (const [name, use] of Object.entries(config.uses)) {
    const base = baseDirOf(layers, ['uses', name]);
    uses[name] = typeof use === 'string' ? resolve(base, use) : { ...use, config: resolve(base, use.config) };
  }
  return config;
}
