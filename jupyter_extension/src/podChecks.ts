/**
 * Checks of the step settings that become pod fields (tolerations, node selectors, affinity,
 * environment variables, volumes, GPU types), mirroring nb2pipe/k8s_names.py,
 * nb2pipe/notebook/scheduling.py, volumes.py and nb2pipe/deploy_checks.py word for word where they can. No
 * JupyterLab imports.
 */

/** A string as Python's repr() writes it, so messages read as tags.py's do. */
export function pyRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = '';
  for (const ch of text) {
    if (ch === '\\' || ch === quote) {
      out += '\\' + ch;
    } else if (ch === '\n' || ch === '\r' || ch === '\t') {
      out += { '\n': '\\n', '\r': '\\r', '\t': '\\t' }[ch];
    } else if (!isPrintable(ch)) {
      const code = ch.codePointAt(0)!;
      out += code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
    } else {
      out += ch;
    }
  }
  return quote + out + quote;
}

/** tags.py's _shown: a field quoted, cut short (lengths in code points, as Python counts). */
export function shown(text: string): string {
  const chars = [...text];
  return pyRepr(chars.length <= 40 ? text : chars.slice(0, 37).join('') + '...');
}

/** Python's str.isprintable: no control, format, separator (but ' ') or unassigned characters. */
export function isPrintable(text: string): boolean {
  return ![...text].some(ch => ch !== ' ' && /[\p{C}\p{Z}]/u.test(ch));
}

// Kubernetes' rules for names and values (nb2pipe/k8s_names.py)

const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const DIGITS = '0123456789';
const ALNUM = LOWER + LOWER.toUpperCase() + DIGITS;
export const SUBDOMAIN_MAX = 253;

function spelledProblem(text: string, what: string, ends: string, inner: string, longest: number, spelled: string): string {
  if (!text) {
    return `the ${what} is empty`;
  }
  const chars = [...text];
  if (chars.length > longest) {
    return `the ${what} has more than ${longest} characters`;
  }
  if (!ends.includes(chars[0]) || !ends.includes(chars[chars.length - 1]) || chars.some(c => !(ends + inner).includes(c))) {
    return `the ${what} must be ${spelled}, starting and ending with a letter or digit`;
  }
  return '';
}

/** A label-style name: at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric. */
export function nameProblem(text: string, what: string): string {
  return spelledProblem(text, what, ALNUM, '-_.', 63, "ASCII letters, digits, '-', '_' and '.'");
}

/** A DNS-1123 subdomain: at most `longest` of [a-z0-9-.], each part between dots starting and ending alphanumeric. */
export function subdomainProblem(text: string, what: string, longest = SUBDOMAIN_MAX): string {
  const ends = LOWER + DIGITS;
  const problem = spelledProblem(text, what, ends, '-.', longest, "lowercase letters, digits, '-' and '.'");
  if (!problem && !text.split('.').every(part => part && ends.includes(part[0]) && ends.includes(part[part.length - 1]))) {
    return `the ${what} must have a letter or digit on each side of every '.'`;
  }
  return problem;
}

/** A label key: `[PREFIX/]NAME`, the prefix a DNS subdomain. */
export function qualifiedNameProblem(key: string): string {
  const slash = key.lastIndexOf('/');
  if (slash >= 0) {
    return subdomainProblem(key.slice(0, slash), "key's prefix") || nameProblem(key.slice(slash + 1), "key's name");
  }
  return nameProblem(key, 'key');
}

export function labelValueProblem(value: string): string {
  return value === '' ? '' : nameProblem(value, 'label value');
}

export function envNameProblem(name: string): string {
  if (!name || /^[0-9]/.test(name) || [...name].some(c => !(ALNUM + '-_.').includes(c))) {
    return `${pyRepr(name)} is not an environment variable name: letters, digits, '-', '_' and '.', no leading digit`;
  }
  return '';
}

// The scheduling tags (nb2pipe/notebook/scheduling.py)

export const TAINT_EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] as const;

/** Variables nb2pipe's local runner sets for each step to run it (scheduling.py RUNNER_ENV). */
export const RUNNER_ENV = [
  'NB2PIPE_FAST_EXIT',
  'NB2PIPE_RUNNER_PID',
  'NB2PIPE_STORE',
  'NB2PIPE_VARIABLES_DIR',
  'NB2PIPE_WAIT_FOR_INPUTS'
];

/** `text` split at the first `separator`: [before, found, after], as Python's str.partition. */
export function partition(text: string, separator: string): [string, boolean, string] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, false, ''] : [text.slice(0, at), true, text.slice(at + separator.length)];
}

/** Python's difflib SequenceMatcher.ratio (no junk: the names compared are short). */
export function similarity(a: string, b: string): number {
  const matched = (aLow: number, aHigh: number, bLow: number, bHigh: number): number => {
    let best = 0;
    let bestA = aLow;
    let bestB = bLow;
    for (let i = aLow; i < aHigh; i++) {
      for (let j = bLow; j < bHigh; j++) {
        let k = 0;
        while (i + k < aHigh && j + k < bHigh && a[i + k] === b[j + k]) {
          k++;
        }
        if (k > best) {
          [best, bestA, bestB] = [k, i, j];
        }
      }
    }
    if (best === 0) {
      return 0;
    }
    return best + matched(aLow, bestA, bLow, bestB) + matched(bestA + best, aHigh, bestB + best, bHigh);
  };
  const total = a.length + b.length;
  return total ? (2 * matched(0, a.length, 0, b.length)) / total : 1;
}

function labelKeyProblem(key: string): string {
  return key ? qualifiedNameProblem(key) : 'the label key is empty';
}

/** The body of `toleration:KEY[=VALUE]:EFFECT`. */
export function tolerationProblem(body: string): string {
  const [taint, , effect] = partition(body, ':');
  if (effect.includes(':') || !body.includes(':')) {
    return 'write the toleration as KEY[=VALUE]:EFFECT, e.g. nvidia.com/gpu:NoSchedule';
  }
  const [key, , value] = partition(taint, '=');
  if (!key) {
    return 'the taint key is empty';
  }
  const problem = qualifiedNameProblem(key) || labelValueProblem(value);
  if (problem) {
    return problem.replace('label value', 'taint value');
  }
  if ((TAINT_EFFECTS as readonly string[]).includes(effect)) {
    return '';
  }
  let guess: string | undefined = TAINT_EFFECTS.find(e => e.toLowerCase() === effect.toLowerCase());
  if (!guess) {
    const scored = TAINT_EFFECTS.map(e => [similarity(effect, e), e] as const).filter(([score]) => score >= 0.6);
    guess = scored.sort((x, y) => y[0] - x[0])[0]?.[1];
  }
  const message = `${pyRepr([...effect].slice(0, 40).join(''))} is not a taint effect: expected ${TAINT_EFFECTS.join(', ')}`;
  return guess ? `${message}; did you mean ${pyRepr(guess)}?` : message;
}

/** The body of `node:KEY=VALUE`. */
export function nodeSelectorProblem(body: string): string {
  const [key, equals, value] = partition(body, '=');
  if (!equals || body.includes(':')) {
    return 'write the node label as KEY=VALUE, e.g. node:cloud.google.com/gke-nodepool=gpu-pool';
  }
  return labelKeyProblem(key) || labelValueProblem(value);
}

/** `KEY=V1|V2` -> key, operator, values ("!=" is looked for before "="). */
function affinityParts(expression: string): [string, string, string[]] {
  if (expression.startsWith('!')) {
    return [expression.slice(1), 'DoesNotExist', []];
  }
  for (const [symbol, operator] of [['!=', 'NotIn'], ['=', 'In'], ['>', 'Gt'], ['<', 'Lt']]) {
    const [key, found, rest] = partition(expression, symbol);
    if (found) {
      return [key, operator, rest.split('|')];
    }
  }
  return [expression, 'Exists', []];
}

/** The body of `affinity:EXPR`. */
export function affinityProblem(expression: string): string {
  if (expression.includes(':')) {
    return 'write one expression: KEY, !KEY, KEY=V1|V2, KEY!=V1|V2, KEY>N or KEY<N';
  }
  const [key, operator, values] = affinityParts(expression);
  const problem = labelKeyProblem(key);
  if (problem) {
    return `${problem} (write KEY, !KEY, KEY=V1|V2, KEY!=V1|V2, KEY>N or KEY<N)`;
  }
  if (operator === 'Gt' || operator === 'Lt') {
    return values.length === 1 && /^-?[0-9]{1,18}$/.test(values[0])
      ? ''
      : `${operator} compares the label with one whole number, e.g. ${key}>4`;
  }
  for (const value of values) {
    if (value === '') {
      return "an empty value in the list: separate values with '|', e.g. zone=a|b";
    }
    const bad = labelValueProblem(value);
    if (bad) {
      return bad;
    }
  }
  return '';
}

/** The body of `prefer-affinity:EXPR[:WEIGHT]`. */
export function preferredAffinityProblem(body: string): string {
  const [expression, hasWeight, weight] = partition(body, ':');
  const problem = affinityProblem(expression);
  if (problem || !hasWeight) {
    return problem;
  }
  if (/^[0-9]{1,3}$/.test(weight) && Number(weight) >= 1 && Number(weight) <= 100) {
    return '';
  }
  return `the weight ${pyRepr([...weight].slice(0, 20).join(''))} must be a whole number from 1 to 100`;
}

/** The body of `env:NAME=VALUE`. */
export function envProblem(body: string): string {
  const [name, equals] = partition(body, '=');
  if (!equals) {
    return 'write the variable as NAME=VALUE, e.g. env:OMP_NUM_THREADS=4';
  }
  const problem = envNameProblem(name);
  if (problem) {
    return problem;
  }
  if (RUNNER_ENV.includes(name)) {
    return `${name} is set by nb2pipe's runner to run the step, and a step's own value would break the run`;
  }
  return '';
}

// Volumes (nb2pipe/notebook/volumes.py)

/** Paths a claim may not hide: KFP's, Argo's and Kubernetes' own (volumes.py RESERVED_PATHS). */
export const RESERVED_PATHS = [
  '/tmp',
  '/gcs',
  '/minio',
  '/s3',
  '/oci',
  '/kfp-launcher',
  '/var/run/argo',
  '/var/run/secrets',
  '/dev',
  '/proc',
  '/sys'
];

/** Why `path` cannot be a mount point, or ''. */
export function mountPathProblem(path: string): string {
  if (!path.startsWith('/')) {
    return `the mount path ${pyRepr(path)} must be absolute (start with '/')`;
  }
  // posixpath.normpath(path) == path: no empty, '.' or '..' segment
  const plain = path === '/' || path.slice(1).split('/').every(part => part !== '' && part !== '.' && part !== '..');
  if (!plain) {
    return `write the mount path ${pyRepr(path)} plainly: no '..', '.', '//' or trailing '/'`;
  }
  if (path === '/') {
    return "a claim cannot be mounted at '/': it would hide the image's own files";
  }
  if (!isPrintable(path) || path.includes(':')) {
    return `the mount path ${pyRepr(path)} holds ':' or a control character, which Kubernetes refuses`;
  }
  const reserved = RESERVED_PATHS.find(root => path === root || path.startsWith(root + '/'));
  return reserved ? `${pyRepr(path)} is under ${reserved}, which KFP or Kubernetes uses in every step: mount it elsewhere` : '';
}

/** The body of `volume:CLAIM:PATH`. */
export function volumeProblem(body: string): string {
  const parts = body.split(':');
  if (parts.length !== 2) {
    return 'write the volume as CLAIM:PATH, e.g. training-data:/data (the path holds no colon)';
  }
  return subdomainProblem(parts[0], 'claim name') || mountPathProblem(parts[1]);
}

// GPU types (nb2pipe/deploy_checks.py gpu_type_problem)

export const GPU_RESOURCE = 'nvidia.com/gpu';
export const GPU_PRODUCT_LABEL = 'nvidia.com/gpu.product';

/** A GPU's name as PyTorch or nvidia-smi print it (`NVIDIA H100 80GB HBM3`) as GFD labels its nodes. */
export function gpuProductLabel(name: string): string {
  return name.trim().replace(/ /g, '-');
}

/** Kubernetes checks an extended resource as the quota name "requests.<name>" too. */
const QUOTA_PREFIX = 'requests.';

/** Kubernetes' IsExtendedResourceName, in words. */
function extendedResourceProblem(name: string): string {
  const [domain, , short] = partition(name, '/');
  if (short.includes('/')) {
    return "it has more than one '/'";
  }
  if (name.includes('kubernetes.io/')) {
    return "names in the kubernetes.io namespace are Kubernetes' own resources, not a device plugin's";
  }
  if (name.startsWith(QUOTA_PREFIX)) {
    return "names starting with 'requests.' are resource quota names";
  }
  // the quota name's prefix, "requests." + domain, must be a subdomain too: 9 characters less room
  const longest = SUBDOMAIN_MAX - QUOTA_PREFIX.length;
  return subdomainProblem(domain, "part before '/'", longest) || nameProblem(short, "part after '/'");
}

/** Why Kubernetes would refuse `gpuType` as a resource name (with '/') or a GPU product's node label value. */
export function gpuTypeProblem(gpuType: string): string {
  if (gpuType.includes('/')) {
    const reason = extendedResourceProblem(gpuType);
    return reason
      ? `GPU type ${pyRepr(gpuType)} is not an extended resource name: ${reason}; write DOMAIN/NAME as your device ` +
          `plugin advertises it (${GPU_RESOURCE}, nvidia.com/mig-1g.18gb, amd.com/gpu), or a GPU product without ` +
          "'/' (NVIDIA-H100-80GB-HBM3)"
      : '';
  }
  const value = gpuProductLabel(gpuType);
  // labelValueProblem lets an empty value pass; a GPU product cannot be empty
  const reason = nameProblem(value, 'label value');
  if (!reason) {
    return '';
  }
  const label = value !== gpuType ? ` (label value ${pyRepr(value)})` : '';
  return (
    `GPU product ${pyRepr(gpuType)}${label} is not a node label value: ${reason}; write the product as your nodes' ` +
    `${GPU_PRODUCT_LABEL} label has it (kubectl get nodes -L ${GPU_PRODUCT_LABEL}), e.g. NVIDIA-H100-80GB-HBM3, ` +
    `or a resource name with '/' (${GPU_RESOURCE}, nvidia.com/mig-1g.18gb)`
  );
}
