import cases from './tag_cases.json';

import {
  FORM_FIELDS,
  TagForm,
  emptyForm,
  formFrom,
  formTags,
  normalizePackages,
  parseTags,
  readTags,
  splitDrift,
  splitList,
  splitPackages,
  splitPromote,
  writeTags
} from '../tags';
import { isCpuQuantity, isMemoryQuantity, isServiceName, isStepName, validateForm } from '../tagChecks';

interface Case {
  name: string;
  form: Partial<TagForm>;
  tags: string[];
}

describe('tag_cases.json (shared with the Python cross-check)', () => {
  const all = cases as Case[];

  it('uses only the form field names', () => {
    for (const c of all) {
      for (const key of Object.keys(c.form)) {
        expect(FORM_FIELDS).toContain(key);
      }
    }
  });

  it.each(all.map(c => [c.name, c] as const))('%s: form -> tags', (_, c) => {
    const form = formFrom(c.form);
    expect(validateForm(form)).toEqual({});
    expect(writeTags([], form)).toEqual(c.tags);
  });

  it.each(all.map(c => [c.name, c] as const))('%s: tags -> form -> the same tags', (_, c) => {
    const form = parseTags(c.tags);
    expect(writeTags(c.tags, form)).toEqual(c.tags);
    // the form read back holds what the case says (packages are written with ';')
    const expected = formFrom(c.form);
    expected.packages = expected.packages ? normalizePackages(expected.packages) : '';
    expect(form).toEqual(expected);
  });
});

describe('readTags', () => {
  it('reads every modelled field', () => {
    const form = parseTags([
      'step:train',
      'after:a',
      'after:b',
      'cpu:2',
      'memory:4Gi',
      'gpu:1:nvidia.com/gpu',
      'image:python:3.12-slim',
      'packages:rich;pandas>=2',
      'register:churn:model',
      'promote:rmse<=',
      'deploy:churn',
      'drift:X_new:X_ref',
      'explain:anchor',
      'explain:ig'
    ]);
    expect(form).toEqual({
      role: '',
      step: 'train',
      after: ['a', 'b'],
      cpu: '2',
      memory: '4Gi',
      gpu: '1',
      gpuType: 'nvidia.com/gpu',
      image: 'python:3.12-slim',
      packages: 'rich;pandas>=2',
      register: 'churn',
      registerVariable: 'model',
      promoteMetric: 'rmse',
      promoteDirection: '<=',
      deploy: 'churn',
      driftCurrent: 'X_new',
      driftReference: 'X_ref',
      explain: ['anchor', 'ig']
    });
  });

  it("accepts Kale's spellings", () => {
    expect(parseTags(['block:load'])).toEqual({ ...emptyForm(), step: 'load' });
    expect(parseTags(['block:train', 'prev:load', 'prev:clean'])).toEqual({
      ...emptyForm(),
      step: 'train',
      after: ['load', 'clean']
    });
    expect(parseTags(['pipeline-parameters']).role).toBe('parameters');
    expect(parseTags(['pipeline-metrics']).role).toBe('metrics');
    expect(parseTags(['injected-parameters']).role).toBe('skip');
  });

  it("writes nb2pipe's spellings for Kale's tags", () => {
    const tags = ['block:train', 'prev:load', 'limit:memory:8Gi'];
    expect(writeTags(tags, parseTags(tags))).toEqual(['step:train', 'after:load', 'limit:memory:8Gi']);
    expect(writeTags(['pipeline-parameters'], parseTags(['pipeline-parameters']))).toEqual(['parameters']);
  });

  it('keeps the colons of image and the gpu type', () => {
    expect(parseTags(['image:gcr.io:443/a/b:1.0']).image).toBe('gcr.io:443/a/b:1.0');
    const gpu = parseTags(['gpu:2:example.com/accel:big']);
    expect(gpu.gpu).toBe('2');
    expect(gpu.gpuType).toBe('example.com/accel:big');
    expect(writeTags([], { ...emptyForm(), image: 'a:b:c' })).toEqual(['image:a:b:c']);
  });

  it('leaves tags of the wrong shape alone', () => {
    // cpu takes one field, promote needs a direction, `step` needs a value
    const tags = ['cpu:1:2', 'promote:accuracy', 'step', 'remove-cell'];
    const read = readTags(tags);
    expect(read.modelled).toEqual([]);
    expect(read.form).toEqual(emptyForm());
    expect(writeTags(tags, read.form)).toEqual(tags);
  });

  it('models the first of single tags and keeps the others', () => {
    const tags = ['drift:a', 'drift:b:c', 'step:x', 'step:y'];
    const form = parseTags(tags);
    expect(form.driftCurrent).toBe('a');
    expect(form.step).toBe('x');
    form.step = 'z';
    expect(writeTags(tags, form)).toEqual(['step:z', 'drift:a', 'drift:b:c', 'step:y']);
  });
});

describe('writeTags', () => {
  it('keeps foreign tags untouched and in place', () => {
    const tags = ['remove-cell', 'step:train', 'label:team:ml', 'cpu:1', 'annotation:a:b:c', 'cache:off', 'retry:2'];
    const form = parseTags(tags);
    form.cpu = '4';
    form.memory = '8Gi';
    expect(writeTags(tags, form)).toEqual([
      'remove-cell',
      'step:train',
      'cpu:4',
      'memory:8Gi',
      'label:team:ml',
      'annotation:a:b:c',
      'cache:off',
      'retry:2'
    ]);
  });

  it('appends the form when the cell had none of its tags', () => {
    const tags = ['remove-cell', 'limit:nvidia.com/gpu:1'];
    expect(writeTags(tags, { ...emptyForm(), step: 'a' })).toEqual(['remove-cell', 'limit:nvidia.com/gpu:1', 'step:a']);
  });

  it('writes the canonical order whatever the order read', () => {
    const tags = ['explain:ig', 'deploy:svc', 'register:m', 'memory:1Gi', 'step:s', 'imports', 'cpu:1', 'after:p'];
    expect(writeTags(tags, parseTags(tags))).toEqual([
      'imports',
      'step:s',
      'after:p',
      'cpu:1',
      'memory:1Gi',
      'register:m',
      'deploy:svc',
      'explain:ig'
    ]);
  });

  it('removes what the form empties', () => {
    const tags = ['step:train', 'keep-me', 'cpu:2'];
    const form = parseTags(tags);
    form.step = '';
    form.cpu = '';
    expect(writeTags(tags, form)).toEqual(['keep-me']);
    expect(writeTags(['step:a'], emptyForm())).toEqual([]);
  });

  it('writes packages with semicolons (nbformat forbids commas in tags)', () => {
    const tags = formTags({ ...emptyForm(), packages: 'pandas>=2,<3, rich' });
    expect(tags).toEqual(['packages:pandas>=2;<3;rich']);
    expect(tags.join('')).not.toContain(',');
    // means the same to tags.py's split_packages
    expect(splitPackages('pandas>=2;<3;rich')).toEqual(splitPackages('pandas>=2,<3, rich'));
    expect(splitPackages('pandas>=2;<3;rich')).toEqual(['pandas>=2,<3', 'rich']);
  });

  it('writes each tag once', () => {
    const form = { ...emptyForm(), after: ['a', 'a', ' b '], explain: ['ig', 'ig'] };
    expect(formTags(form)).toEqual(['after:a', 'after:b', 'explain:ig']);
    expect(writeTags(['x', 'x'], emptyForm())).toEqual(['x']);
  });

  it("keeps papermill's injected-parameters spelling while the cell stays skipped", () => {
    const original = ['injected-parameters'];
    expect(writeTags(original, parseTags(original))).toEqual(['injected-parameters']);
    expect(writeTags(original, { ...parseTags(original), role: 'parameters' })).toEqual(['parameters']);
  });

  it('round-trips a read form', () => {
    const tags = ['parameters', 'remove-input'];
    expect(writeTags(tags, parseTags(tags))).toEqual(tags);
  });
});

describe('validation', () => {
  it('checks step names like tags.py', () => {
    for (const ok of ['train', '_x', 'a-b_1', 'Load2']) {
      expect(isStepName(ok)).toBe(true);
    }
    for (const bad of ['', '1st', '-a', 'a b', 'a.b', 'é']) {
      expect(isStepName(bad)).toBe(false);
    }
  });

  it('checks CPU quantities like tags.py', () => {
    for (const ok of ['2', '0.5', '.5', '500m', '1.5m']) {
      expect(isCpuQuantity(ok)).toBe(true);
    }
    for (const bad of ['', 'm', '2 cores', '1.', '-1', '1Gi', '0,5']) {
      expect(isCpuQuantity(bad)).toBe(false);
    }
  });

  it('checks memory quantities like tags.py', () => {
    for (const ok of ['512Mi', '4G', '4Gi', '1000000', '1Ki', '2E']) {
      expect(isMemoryQuantity(ok)).toBe(true);
    }
    for (const bad of ['', 'Gi', '4GB', '1.5Gi', '4 Gi', 'lots']) {
      expect(isMemoryQuantity(bad)).toBe(false);
    }
  });

  it('checks service names', () => {
    expect(isServiceName('churn-svc')).toBe(true);
    expect(isServiceName('Churn')).toBe(false);
    expect(isServiceName('svc-')).toBe(false);
    expect(isServiceName('1svc')).toBe(false);
    expect(isServiceName('a'.repeat(64))).toBe(false);
  });

  it('reports every bad field of a form', () => {
    const errors = validateForm({
      ...emptyForm(),
      step: '1st',
      after: ['ok', 'not ok'],
      cpu: 'two',
      memory: '4GB',
      gpu: '0',
      image: 'a b',
      packages: 'pandas>=2;;@@',
      register: 'a/b',
      registerVariable: '1x',
      promoteMetric: 'acc uracy',
      deploy: 'Svc',
      driftCurrent: 'x-y',
      explain: ['shap']
    });
    expect(Object.keys(errors).sort()).toEqual(
      [
        'after',
        'cpu',
        'deploy',
        'driftCurrent',
        'explain',
        'gpu',
        'image',
        'memory',
        'packages',
        'promoteMetric',
        'register',
        'registerVariable',
        'step'
      ].sort()
    );
    expect(errors.cpu).toContain('CPU quantity');
  });

  it('bounds the GPU count as tags.py does (int64)', () => {
    const gpu = (count: string) => validateForm(formFrom({ gpu: count })).gpu;
    expect(gpu('1')).toBeUndefined();
    expect(gpu('9223372036854775807')).toBeUndefined();
    expect(gpu('9223372036854775808')).toMatch(/at most 9223372036854775807/);
    expect(gpu('0')).toMatch(/at least 1/);
    expect(gpu('²')).toMatch(/whole number/);
  });

  it('needs the first part of two-part fields', () => {
    expect(Object.keys(validateForm({ ...emptyForm(), gpuType: 'nvidia.com/gpu' }))).toEqual(['gpuType']);
    expect(Object.keys(validateForm({ ...emptyForm(), registerVariable: 'model' }))).toEqual(['registerVariable']);
    expect(Object.keys(validateForm({ ...emptyForm(), driftReference: 'X' }))).toEqual(['driftReference']);
  });

  it('accepts good pip requirements', () => {
    for (const ok of ['xgboost==2.1', 'pandas>=2,<3', 'scikit-learn', 'requests[socks]>=2', 'rich;numpy~=1.26']) {
      expect(validateForm({ ...emptyForm(), packages: ok })).toEqual({});
    }
  });
});

describe('input helpers', () => {
  it('splits lists', () => {
    expect(splitList(' a, b;c  d ,, a')).toEqual(['a', 'b', 'c', 'd']);
    expect(splitList('')).toEqual([]);
  });

  it('splits promote rules', () => {
    expect(splitPromote('accuracy>=')).toEqual({ metric: 'accuracy', direction: '>=' });
    expect(splitPromote('rmse <=')).toEqual({ metric: 'rmse', direction: '<=' });
    expect(splitPromote('rmse<')).toEqual({ metric: 'rmse', direction: '<=' });
    expect(splitPromote('f1')).toEqual({ metric: 'f1', direction: '>=' });
    expect(splitPromote('f1', '<=')).toEqual({ metric: 'f1', direction: '<=' });
  });

  it('splits drift specs', () => {
    expect(splitDrift('X_new:X_train')).toEqual({ current: 'X_new', reference: 'X_train' });
    expect(splitDrift('X_new X_train')).toEqual({ current: 'X_new', reference: 'X_train' });
    expect(splitDrift('X_new')).toEqual({ current: 'X_new', reference: '' });
  });
});
