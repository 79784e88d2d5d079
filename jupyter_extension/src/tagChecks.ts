/**
 * Checks of the tag editor's fields, mirroring nb2pipe/notebook/tags.py, so the form shows a
 * problem before it writes; the server's diagnostics remain the authority. The checks of the
 * settings that become pod fields (scheduling, environment, volumes, GPU types) are in
 * podChecks.ts. No JupyterLab imports.
 */

import {
  affinityProblem,
  envProblem,
  gpuTypeProblem,
  nodeSelectorProblem,
  partition,
  preferredAffinityProblem,
  shown,
  tolerationProblem,
  volumeProblem
} from './podChecks';
import { EXPLAIN_METHODS, ROLES, TagForm, splitPackages } from './tags';

const isUint = (text: string): boolean => /^[0-9]+$/.test(text);

/** KFP's accelerator count is an int64, as tags.py checks. */
const INT64_MAX = '9223372036854775807';

/** ASCII digits whose value is at least 1 and at most ``high`` (compared as digit strings:
 * past 2**53 JavaScript numbers lose digits). */
function isCountUpTo(text: string, high: string): boolean {
  if (!isUint(text)) {
    return false;
  }
  const digits = text.replace(/^0+/, '');
  if (digits === '') {
    return false;
  }
  return digits.length < high.length || (digits.length === high.length && digits <= high);
}

/** Letters, digits, `_` and `-`, starting with a letter or `_` (ASCII). */
export function isStepName(text: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(text);
}

/** `2`, `0.5`, `.5`, `500m`. */
export function isCpuQuantity(text: string): boolean {
  const number = text.endsWith('m') ? text.slice(0, -1) : text;
  const dot = number.indexOf('.');
  if (dot >= 0) {
    const whole = number.slice(0, dot);
    const fraction = number.slice(dot + 1);
    return (whole === '' || isUint(whole)) && isUint(fraction);
  }
  return isUint(number);
}

const MEMORY_SUFFIXES = ['Ei', 'Pi', 'Ti', 'Gi', 'Mi', 'Ki', 'E', 'P', 'T', 'G', 'M', 'K'];

/** `512Mi`, `4G`, `1000000`. */
export function isMemoryQuantity(text: string): boolean {
  for (const suffix of MEMORY_SUFFIXES) {
    if (text.endsWith(suffix)) {
      return isUint(text.slice(0, -suffix.length));
    }
  }
  return isUint(text);
}

/** A Python identifier (ASCII subset, which is what a form user types). */
export function isIdentifier(text: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(text);
}

/** A DNS-1123 label: a-z, 0-9, `-`, starting with a letter, not ending with `-`, 63 at most. */
export function isServiceName(text: string): boolean {
  return text.length <= 63 && /^[a-z]([a-z0-9-]*[a-z0-9])?$/.test(text);
}

/** `shm:SIZE` (tags.py _check_shm). */
export function shmProblem(size: string): string {
  if (!isMemoryQuantity(size)) {
    return `${shown(size)} is not a memory quantity (e.g. 1Gi, 512Mi)`;
  }
  return /[1-9]/.test(size) ? '' : 'the shared memory size must be above zero';
}

const REQUIREMENT = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._,\s-]*\])?\s*(([<>=!~]=?|===)\s*[^\s<>=!~;]+\s*(,\s*([<>=!~]=?|===)\s*[^\s<>=!~;,]+\s*)*)?(\s*@\s*\S+)?$/;

/** Problems per form field (field name -> message); empty when the form may be written. */
export type FormErrors = Partial<Record<keyof TagForm, string>>;

export function validateForm(form: TagForm): FormErrors {
  const errors: FormErrors = {};
  const t = (text: string) => text.trim();
  if (form.role && !(ROLES as readonly string[]).includes(form.role)) {
    errors.role = `unknown role ${JSON.stringify(form.role)}`;
  }
  if (t(form.step) && !isStepName(t(form.step))) {
    errors.step = `${JSON.stringify(t(form.step))} is not a valid step name: use letters, digits, '_' and '-', starting with a letter`;
  }
  const badAfter = form.after.map(t).filter(name => name && !isStepName(name));
  if (badAfter.length) {
    errors.after = `not a step name: ${badAfter.join(', ')}`;
  }
  if (t(form.cpu) && !isCpuQuantity(t(form.cpu))) {
    errors.cpu = `${JSON.stringify(t(form.cpu))} is not a CPU quantity (e.g. 2, 0.5, 500m)`;
  }
  if (t(form.memory) && !isMemoryQuantity(t(form.memory))) {
    errors.memory = `${JSON.stringify(t(form.memory))} is not a memory quantity (e.g. 512Mi, 4Gi, 2G)`;
  }
  if (t(form.gpu) && !isCountUpTo(t(form.gpu), INT64_MAX)) {
    errors.gpu = `GPU count ${JSON.stringify(t(form.gpu))} must be a whole number of at least 1 and at most ${INT64_MAX}`;
  }
  if (t(form.gpuType) && !t(form.gpu)) {
    errors.gpuType = 'an accelerator type needs a GPU count';
  } else if (t(form.gpuType)) {
    errors.gpuType = gpuTypeProblem(t(form.gpuType)) || undefined;
  }
  if (t(form.shm)) {
    errors.shm = shmProblem(t(form.shm)) || undefined;
  }
  errors.env = listProblem('env', form.env, envProblem, entry => entry.replace(/^\s+/, ''));
  errors.volumes = listProblem('volume', form.volumes, volumeProblem) || samePathProblem(form.volumes);
  errors.nodeSelectors = listProblem('node', form.nodeSelectors, nodeSelectorProblem);
  errors.tolerations = listProblem('toleration', form.tolerations, tolerationProblem);
  errors.affinity = listProblem('affinity', form.affinity, affinityProblem);
  errors.preferAffinity = listProblem('prefer-affinity', form.preferAffinity, preferredAffinityProblem);
  if (t(form.image) && /\s/.test(t(form.image))) {
    errors.image = 'the image reference has spaces';
  }
  if (t(form.packages)) {
    const items = splitPackages(form.packages);
    const bad = items.filter(item => !REQUIREMENT.test(item));
    if (!items.length) {
      errors.packages = 'no package named';
    } else if (bad.length) {
      errors.packages = `${JSON.stringify(bad[0])} is not a pip requirement`;
    }
  }
  const model = t(form.register);
  if (model && (/[/:@%]/.test(model) || /[\x00-\x1f\x7f]/.test(model))) {
    errors.register = "the model name holds '/', ':', '@' or '%'";
  }
  if (t(form.registerVariable)) {
    if (!model) {
      errors.registerVariable = 'a variable needs a model name';
    } else if (!isIdentifier(t(form.registerVariable))) {
      errors.registerVariable = `${JSON.stringify(t(form.registerVariable))} is not a variable name`;
    }
  }
  if (t(form.promoteMetric) && !isIdentifier(t(form.promoteMetric))) {
    errors.promoteMetric = 'write the metric as a name, e.g. accuracy (with >= or <= for the better direction)';
  }
  if (form.promoteDirection !== '>=' && form.promoteDirection !== '<=') {
    errors.promoteDirection = 'the direction is >= or <=';
  }
  if (t(form.deploy) && !isServiceName(t(form.deploy))) {
    errors.deploy = `${JSON.stringify(t(form.deploy))} is not a service name: lowercase letters, digits and '-', starting with a letter`;
  }
  if (t(form.driftCurrent) && !isIdentifier(t(form.driftCurrent))) {
    errors.driftCurrent = `${JSON.stringify(t(form.driftCurrent))} is not a variable name`;
  }
  if (t(form.driftReference)) {
    if (!t(form.driftCurrent)) {
      errors.driftReference = 'a reference needs the data to test';
    } else if (!isIdentifier(t(form.driftReference))) {
      errors.driftReference = `${JSON.stringify(t(form.driftReference))} is not a variable name`;
    }
  }
  const badExplain = form.explain.map(t).filter(m => m && !(EXPLAIN_METHODS as readonly string[]).includes(m));
  if (badExplain.length) {
    errors.explain = `explain methods are anchor and ig, not ${badExplain.join(', ')}`;
  }
  for (const key of Object.keys(errors) as (keyof TagForm)[]) {
    if (!errors[key]) {
      delete errors[key];
    }
  }
  return errors;
}

/** The first bad entry of a list field, as tags.py words a bad tag; undefined when all are fine. */
function listProblem(
  kind: string,
  entries: readonly string[],
  check: (body: string) => string,
  tidy: (entry: string) => string = entry => entry.trim()
): string | undefined {
  for (const entry of entries.map(tidy).filter(Boolean)) {
    const problem = check(entry);
    if (problem) {
      return `tag ${shown(`${kind}:${entry}`)}: ${problem}`;
    }
  }
  return undefined;
}

/** Two claims at one path (the planner's check, nb2pipe/plan/volumes.py). */
function samePathProblem(entries: readonly string[]): string | undefined {
  const claimsAt = new Map<string, string[]>();
  for (const entry of entries.map(e => e.trim()).filter(Boolean)) {
    const [claim, , path] = partition(entry, ':');
    claimsAt.set(path, [...(claimsAt.get(path) ?? []), claim]);
  }
  for (const [path, claims] of claimsAt) {
    const distinct = [...new Set(claims)];
    if (distinct.length > 1) {
      return `${distinct.length} claims at ${path}: ${distinct.join(', ')}; one claim per path`;
    }
  }
  return undefined;
}
