/**
 * The cell-tag grammar of nb2pipe (nb2pipe/notebook/tags.py, SPECS) as the tag editor
 * needs it: read a cell's tag list into a form, write a form back into a tag list.
 *
 * Reading accepts nb2pipe's and Kale's spellings (`block:`, `prev:`, `pipeline-parameters`,
 * `pipeline-metrics`, papermill's `injected-parameters`). Writing keeps every tag the form
 * does not model (`remove-cell`, `label:`, `limit:`, `cache:`, a second `drift:` ...)
 * untouched and in place, and writes the modelled ones in nb2pipe's spelling, in a fixed
 * canonical order, where the first modelled tag stood (at the end when there was none).
 * Repeatable tags (`after:`, `explain:`, `env:`, `volume:`, `node:`, `toleration:`,
 * `affinity:`, `prefer-affinity:`) keep their order among themselves: for one key the later
 * tag wins. An `env:` tag for a variable a `secret:` tag also sets stays where it is.
 *
 * No JupyterLab imports: jest tests this module directly.
 */

export const ROLES = ['imports', 'functions', 'parameters', 'metrics', 'skip'] as const;
export type Role = '' | (typeof ROLES)[number];

export const EXPLAIN_METHODS = ['anchor', 'ig'] as const;

export type Direction = '>=' | '<=';

/** What the tag editor shows and edits. Empty strings / lists mean "no such tag". */
export interface TagForm {
  role: Role;
  step: string;
  after: string[];
  cpu: string;
  memory: string;
  /** the GPU count, as typed (`gpu:N[:TYPE]`) */
  gpu: string;
  gpuType: string;
  image: string;
  /** requirements separated by `;` or `,` (written with `;`: nbformat forbids commas in tags) */
  packages: string;
  /** the model name of `register:MODEL[:VARIABLE]` */
  register: string;
  registerVariable: string;
  /** `promote:METRIC>=` or `promote:METRIC<=` */
  promoteMetric: string;
  promoteDirection: Direction;
  /** the service name of `deploy:SERVICE` */
  deploy: string;
  /** `drift:CURRENT[:REFERENCE]` */
  driftCurrent: string;
  driftReference: string;
  explain: string[];
  /** `shm:SIZE`, the step's /dev/shm */
  shm: string;
  /** each `env:NAME=VALUE` as `NAME=VALUE`, in the cell's order (a later value of a name wins) */
  env: string[];
  /** each `volume:CLAIM:PATH` as `CLAIM:PATH` */
  volumes: string[];
  /** each `node:KEY=VALUE` as `KEY=VALUE` */
  nodeSelectors: string[];
  /** each `toleration:KEY[=VALUE]:EFFECT` as `KEY[=VALUE]:EFFECT` */
  tolerations: string[];
  /** each required `affinity:EXPR` as `EXPR` */
  affinity: string[];
  /** each `prefer-affinity:EXPR[:WEIGHT]` as `EXPR[:WEIGHT]` */
  preferAffinity: string[];
}

/** The form's fields that hold a list of tag bodies, one tag each. */
export const LIST_FIELDS = [
  'after',
  'explain',
  'env',
  'volumes',
  'nodeSelectors',
  'tolerations',
  'affinity',
  'preferAffinity'
] as const;
export type ListField = (typeof LIST_FIELDS)[number];

export function emptyForm(): TagForm {
  return {
    role: '',
    step: '',
    after: [],
    cpu: '',
    memory: '',
    gpu: '',
    gpuType: '',
    image: '',
    packages: '',
    register: '',
    registerVariable: '',
    promoteMetric: '',
    promoteDirection: '>=',
    deploy: '',
    driftCurrent: '',
    driftReference: '',
    explain: [],
    shm: '',
    env: [],
    volumes: [],
    nodeSelectors: [],
    tolerations: [],
    affinity: [],
    preferAffinity: []
  };
}

/** Every field of the form: emptyForm's keys (its return type makes it name them all). */
export const FORM_FIELDS = Object.keys(emptyForm()) as (keyof TagForm)[];

/** A complete form from a partial one (missing fields empty). */
export function formFrom(partial: Partial<TagForm>): TagForm {
  const form = { ...emptyForm(), ...partial };
  for (const key of LIST_FIELDS) {
    form[key] = [...(partial[key] ?? [])];
  }
  return form;
}

/** Kale's (and papermill's) spellings of the tags the form models. */
const ROLE_SPELLINGS: Record<string, Exclude<Role, ''>> = {
  imports: 'imports',
  functions: 'functions',
  parameters: 'parameters',
  'pipeline-parameters': 'parameters',
  metrics: 'metrics',
  'pipeline-metrics': 'metrics',
  skip: 'skip',
  'injected-parameters': 'skip'
};

const HEAD_SPELLINGS: Record<string, string> = {
  step: 'step',
  block: 'step',
  after: 'after',
  prev: 'after',
  cpu: 'cpu',
  memory: 'memory',
  gpu: 'gpu',
  image: 'image',
  packages: 'packages',
  register: 'register',
  promote: 'promote',
  deploy: 'deploy',
  drift: 'drift',
  explain: 'explain',
  shm: 'shm',
  env: 'env',
  volume: 'volume',
  node: 'node',
  toleration: 'toleration',
  affinity: 'affinity',
  'prefer-affinity': 'prefer-affinity'
};

/** Kinds that may occur several times on a cell, and the list that holds each one's body. */
const MULTI: Record<string, ListField> = {
  after: 'after',
  explain: 'explain',
  env: 'env',
  volume: 'volumes',
  node: 'nodeSelectors',
  toleration: 'tolerations',
  affinity: 'affinity',
  'prefer-affinity': 'preferAffinity'
};

/**
 * Split `KIND:REST` as tags.py does: kinds with one field take no further colon, except
 * `image:` and `packages:` (the rest keeps its colons); `gpu:`, `register:` and `drift:`
 * take one optional second field that keeps further colons. `null` when the tag does not
 * have the shape (it is then left untouched, and the server reports it).
 */
function splitFields(kind: string, rest: string): string[] | null {
  switch (kind) {
    case 'image':
    case 'packages':
    case 'env':
    case 'prefer-affinity':
      // the form keeps the body whole: `prefer-affinity`'s weight is part of the entry
      return [rest];
    case 'toleration':
    case 'volume':
      return rest.split(':').length === 2 ? [rest] : null;
    case 'gpu':
    case 'register':
    case 'drift': {
      const at = rest.indexOf(':');
      return at < 0 ? [rest] : [rest.slice(0, at), rest.slice(at + 1)];
    }
    default:
      return rest.includes(':') ? null : [rest];
  }
}

interface Parsed {
  kind: string;
  fields: string[];
}

function parseOne(tag: string): Parsed | null {
  if (Object.prototype.hasOwnProperty.call(ROLE_SPELLINGS, tag)) {
    return { kind: 'role', fields: [ROLE_SPELLINGS[tag]] };
  }
  const at = tag.indexOf(':');
  if (at < 0) {
    return null;
  }
  const head = tag.slice(0, at);
  if (!Object.prototype.hasOwnProperty.call(HEAD_SPELLINGS, head)) {
    return null;
  }
  const kind = HEAD_SPELLINGS[head];
  const fields = splitFields(kind, tag.slice(at + 1));
  if (fields === null) {
    return null;
  }
  if (kind === 'promote') {
    const text = fields[0];
    const direction = text.slice(-2);
    if (direction !== '>=' && direction !== '<=') {
      return null;
    }
  }
  return { kind, fields };
}

/** The result of reading a cell's tags. */
export interface ReadTags {
  form: TagForm;
  /** indices (into the tag list) of the tags the form holds */
  modelled: number[];
}

/** Read a cell's tag list into the form (see the module comment for the rule). */
export function readTags(tags: readonly string[]): ReadTags {
  const form = emptyForm();
  const seen = new Set<string>();
  const modelled: number[] = [];
  const fromSecrets = secretVariables(tags);
  tags.forEach((tag, index) => {
    if (typeof tag !== 'string') {
      return;
    }
    const parsed = parseOne(tag);
    if (parsed === null) {
      return;
    }
    const { kind, fields } = parsed;
    if (kind === 'env' && fromSecrets.has(fields[0].split('=')[0])) {
      // of `secret:` and `env:` for one variable the later tag wins: moving this one would change which
      return;
    }
    if (Object.prototype.hasOwnProperty.call(MULTI, kind)) {
      modelled.push(index);
      form[MULTI[kind]].push(fields[0]);
      return;
    }
    if (seen.has(kind)) {
      return; // a second step:/drift:/... is not the form's: keep it as it is
    }
    seen.add(kind);
    modelled.push(index);
    switch (kind) {
      case 'role':
        form.role = fields[0] as Role;
        break;
      case 'step':
        form.step = fields[0];
        break;
      case 'cpu':
        form.cpu = fields[0];
        break;
      case 'memory':
        form.memory = fields[0];
        break;
      case 'gpu':
        form.gpu = fields[0];
        form.gpuType = fields[1] ?? '';
        break;
      case 'image':
        form.image = fields[0];
        break;
      case 'packages':
        form.packages = fields[0];
        break;
      case 'register':
        form.register = fields[0];
        form.registerVariable = fields[1] ?? '';
        break;
      case 'promote':
        form.promoteMetric = fields[0].slice(0, -2);
        form.promoteDirection = fields[0].slice(-2) as Direction;
        break;
      case 'deploy':
        form.deploy = fields[0];
        break;
      case 'drift':
        form.driftCurrent = fields[0];
        form.driftReference = fields[1] ?? '';
        break;
      case 'shm':
        form.shm = fields[0];
        break;
    }
  });
  return { form, modelled };
}

/** The variables `secret:NAME:KEY:ENV` tags set (the form does not model `secret:`). */
function secretVariables(tags: readonly string[]): Set<string> {
  const names = new Set<string>();
  for (const tag of tags) {
    const parts = typeof tag === 'string' ? tag.split(':') : [];
    if (parts.length === 4 && parts[0] === 'secret') {
      names.add(parts[3]);
    }
  }
  return names;
}

/** Just the form of a tag list. */
export function parseTags(tags: readonly string[]): TagForm {
  return readTags(tags).form;
}

/** The entries once each, trimmed (`keepTrailing`: only at the start, for an `env:` value's own spaces). */
function unique(items: readonly string[], keepTrailing = false): string[] {
  const out: string[] = [];
  for (const item of items) {
    const text = keepTrailing ? item.replace(/^\s+/, '') : item.trim();
    if (text && !out.includes(text)) {
      out.push(text);
    }
  }
  return out;
}

/** The form's own tags, in nb2pipe's spelling and the canonical order. */
export function formTags(form: TagForm): string[] {
  const tags: string[] = [];
  const t = (text: string) => text.trim();
  if (form.role) {
    tags.push(form.role);
  }
  if (t(form.step)) {
    tags.push(`step:${t(form.step)}`);
  }
  for (const name of unique(form.after)) {
    tags.push(`after:${name}`);
  }
  if (t(form.cpu)) {
    tags.push(`cpu:${t(form.cpu)}`);
  }
  if (t(form.memory)) {
    tags.push(`memory:${t(form.memory)}`);
  }
  if (t(form.gpu)) {
    tags.push(t(form.gpuType) ? `gpu:${t(form.gpu)}:${t(form.gpuType)}` : `gpu:${t(form.gpu)}`);
  }
  if (t(form.shm)) {
    tags.push(`shm:${t(form.shm)}`);
  }
  if (t(form.image)) {
    tags.push(`image:${t(form.image)}`);
  }
  if (t(form.packages)) {
    tags.push(`packages:${normalizePackages(form.packages)}`);
  }
  tags.push(...unique(form.env, true).map(entry => `env:${entry}`));
  tags.push(...unique(form.volumes).map(entry => `volume:${entry}`));
  tags.push(...unique(form.nodeSelectors).map(entry => `node:${entry}`));
  tags.push(...unique(form.tolerations).map(entry => `toleration:${entry}`));
  tags.push(...unique(form.affinity).map(entry => `affinity:${entry}`));
  tags.push(...unique(form.preferAffinity).map(entry => `prefer-affinity:${entry}`));
  if (t(form.register)) {
    const variable = t(form.registerVariable);
    tags.push(variable ? `register:${t(form.register)}:${variable}` : `register:${t(form.register)}`);
  }
  if (t(form.promoteMetric)) {
    tags.push(`promote:${t(form.promoteMetric)}${form.promoteDirection === '<=' ? '<=' : '>='}`);
  }
  if (t(form.deploy)) {
    tags.push(`deploy:${t(form.deploy)}`);
  }
  if (t(form.driftCurrent)) {
    const reference = t(form.driftReference);
    tags.push(reference ? `drift:${t(form.driftCurrent)}:${reference}` : `drift:${t(form.driftCurrent)}`);
  }
  for (const method of unique(form.explain)) {
    tags.push(`explain:${method}`);
  }
  return tags;
}

/**
 * Write the form into the cell's tag list: the tags it does not model stay as they are and
 * where they are; the form's tags replace the modelled ones, at the first one's place.
 */
export function writeTags(original: readonly string[], form: TagForm): string[] {
  const { modelled } = readTags(original);
  // papermill looks for its own spelling: a cell it injected stays `injected-parameters`
  const papermill = form.role === 'skip' && original.includes('injected-parameters');
  const own = formTags(form).map(tag => (papermill && tag === 'skip' ? 'injected-parameters' : tag));
  const drop = new Set(modelled);
  const out: string[] = [];
  let placed = false;
  original.forEach((tag, index) => {
    if (drop.has(index)) {
      if (!placed) {
        out.push(...own);
        placed = true;
      }
      return;
    }
    out.push(tag);
  });
  if (!placed) {
    out.push(...own);
  }
  // a tag list holds each tag once (nbformat's schema: uniqueItems)
  return out.filter((tag, index) => out.indexOf(tag) === index);
}

/** `pandas>=2,<3, rich` -> `pandas>=2;<3;rich` (tags.py's split_packages reads both alike). */
export function normalizePackages(text: string): string {
  return text
    .split(/[;,]/)
    .map(part => part.trim())
    .filter(part => part !== '')
    .join(';');
}

/** A list of tag bodies as typed, one a line (values may hold spaces, commas and colons). */
export function splitLines(text: string, keepTrailing = false): string[] {
  return unique(text.split(/\r?\n/), keepTrailing);
}

/** A list field as typed: names separated by commas, semicolons or spaces. */
export function splitList(text: string): string[] {
  return unique(text.split(/[\s,;]+/));
}

/** `tags.py`'s split_packages. */
export function splitPackages(text: string): string[] {
  const parts: string[] = [];
  for (const raw of text.replace(/;/g, ',').split(',')) {
    const piece = raw.trim();
    if (!piece) {
      continue;
    }
    if (parts.length && '<>=!~'.includes(piece[0])) {
      parts[parts.length - 1] += ',' + piece;
    } else {
      parts.push(piece);
    }
  }
  return parts;
}

/** `accuracy>=` -> metric and direction; a bare metric keeps `fallback`. */
export function splitPromote(text: string, fallback: Direction = '>='): { metric: string; direction: Direction } {
  const value = text.trim();
  const tail = value.slice(-2);
  if (tail === '>=' || tail === '<=') {
    return { metric: value.slice(0, -2).trim(), direction: tail };
  }
  if (value.endsWith('>') || value.endsWith('<')) {
    return { metric: value.slice(0, -1).trim(), direction: value.endsWith('>') ? '>=' : '<=' };
  }
  return { metric: value, direction: fallback };
}

/** `X_new:X_train` or `X_new X_train` -> current and reference. */
export function splitDrift(text: string): { current: string; reference: string } {
  const parts = text.trim().split(/[\s:]+/).filter(Boolean);
  return { current: parts[0] ?? '', reference: parts.slice(1).join(':') };
}
