import cases from './tag_cases.json';
import problems from './tag_problems.json';

import {
  FORM_FIELDS,
  LIST_FIELDS,
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
import { shown } from '../podChecks';

interface Case {
  name: string;
  form: Partial<TagForm>;
  tags: string[];
}

describe('tag_cases.json (shared with the Python cross-check)', () => {
  const all = cases as Case[];

  it('names every field of the form, the list fields as the ones that hold lists', () => {
    expect(FORM_FIELDS).toHaveLength(24);
    expect(FORM_FIELDS.filter(key => Array.isArray(emptyForm()[key]))).toEqual([...LIST_FIELDS]);
  });

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
      ...emptyForm(),
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

interface ProblemCase {
  name: string;
  form: Partial<TagForm>;
  field: keyof TagForm;
  tag: string;
  problem: string;
}

describe('tag_problems.json (the same words as tags.py, checked by the Python cross-check)', () => {
  const all = problems as ProblemCase[];

  it.each(all.map(c => [c.name, c] as const))('%s', (_, c) => {
    const errors = validateForm(formFrom(c.form));
    expect(Object.keys(errors)).toEqual([c.field]);
    // a list field names the entry as tags.py names the tag; a single field is the field's own message
    const listed = Array.isArray(emptyForm()[c.field]);
    expect(errors[c.field]).toBe(listed ? `tag ${shown(c.tag)}: ${c.problem}` : c.problem);
  });

  it('covers every new step setting', () => {
    expect(new Set(all.map(c => c.field))).toEqual(
      new Set(['tolerations', 'nodeSelectors', 'affinity', 'preferAffinity', 'env', 'volumes', 'shm', 'gpuType'])
    );
  });
});

describe('step settings (scheduling, environment, volumes)', () => {
  const settings = [
    'step:fit',
    'shm:2Gi',
    'env:A=1',
    'volume:data:/data',
    'node:pool=gpu',
    'toleration:nvidia.com/gpu:NoSchedule',
    'affinity:zone=a|b',
    'prefer-affinity:fast:20',
    'env:B=x:y=z'
  ];

  it('reads each into its list, in the order of the cell', () => {
    const form = parseTags(settings);
    expect(form.shm).toBe('2Gi');
    expect(form.env).toEqual(['A=1', 'B=x:y=z']);
    expect(form.volumes).toEqual(['data:/data']);
    expect(form.nodeSelectors).toEqual(['pool=gpu']);
    expect(form.tolerations).toEqual(['nvidia.com/gpu:NoSchedule']);
    expect(form.affinity).toEqual(['zone=a|b']);
    expect(form.preferAffinity).toEqual(['fast:20']);
  });

  it('writes them back with the foreign tags in place', () => {
    const tags = ['remove-cell', ...settings, 'label:team:ml', 'env:A=2'];
    expect(writeTags(tags, parseTags(tags))).toEqual([
      'remove-cell',
      'step:fit',
      'shm:2Gi',
      // for one name the later value wins: A=2 stays after A=1
      'env:A=1',
      'env:B=x:y=z',
      'env:A=2',
      'volume:data:/data',
      'node:pool=gpu',
      'toleration:nvidia.com/gpu:NoSchedule',
      'affinity:zone=a|b',
      'prefer-affinity:fast:20',
      'label:team:ml'
    ]);
  });

  it("leaves an env: tag for a secret's variable where it is", () => {
    // secret: and env: for one variable: the later tag wins, so moving the env: tag would change the value
    const tags = ['step:s', 'secret:creds:token:TOKEN', 'env:TOKEN=plain', 'env:OTHER=1'];
    const read = readTags(tags);
    expect(read.form.env).toEqual(['OTHER=1']);
    expect(writeTags(tags, read.form)).toEqual(['step:s', 'env:OTHER=1', 'secret:creds:token:TOKEN', 'env:TOKEN=plain']);
  });

  it('keeps the second shm: tag as it is', () => {
    const tags = ['shm:1Gi', 'shm:2Gi'];
    const form = parseTags(tags);
    expect(form.shm).toBe('1Gi');
    form.shm = '4Gi';
    expect(writeTags(tags, form)).toEqual(['shm:4Gi', 'shm:2Gi']);
  });

  it('leaves tags of the wrong shape alone', () => {
    const tags = ['toleration:a', 'toleration:a:NoSchedule:x', 'volume:a:/b:c', 'node:a=b:c', 'affinity:a:1', 'shm:1:2'];
    const read = readTags(tags);
    expect(read.modelled).toEqual([]);
    expect(writeTags(tags, read.form)).toEqual(tags);
  });

  it('removes what the form empties', () => {
    const tags = ['step:s', 'env:A=1', 'volume:d:/d', 'remove-cell'];
    const form = parseTags(tags);
    form.env = [];
    form.volumes = [' ', 'e:/e'];
    expect(writeTags(tags, form)).toEqual(['step:s', 'volume:e:/e', 'remove-cell']);
  });

  it("keeps an env value's own trailing spaces and trims the rest", () => {
    const form = formFrom({ env: ['  PAD=a  '], nodeSelectors: [' k=v '] });
    expect(formTags(form)).toEqual(['env:PAD=a  ', 'node:k=v']);
    expect(validateForm(form)).toEqual({});
  });

  it('refuses two claims at one path, as the planner does', () => {
    const errors = validateForm(formFrom({ volumes: ['a:/data', 'b:/data', 'a:/other'] }));
    expect(errors).toEqual({ volumes: '2 claims at /data: a, b; one claim per path' });
    expect(validateForm(formFrom({ volumes: ['a:/data', 'a:/data2'] }))).toEqual({});
  });

  it('accepts the effects, operators and weights tags.py accepts', () => {
    const form = formFrom({
      tolerations: ['a:NoSchedule', 'b=c:PreferNoSchedule', 'example.com/d:NoExecute'],
      nodeSelectors: ['a=', 'kubernetes.io/arch=amd64'],
      affinity: ['a', '!b', 'c=1|2', 'd!=x', 'e>-3', 'f<999999999999999999'],
      preferAffinity: ['a', 'b=c:1', 'd:100'],
      env: ['A=', 'b.c-d=e=f'],
      volumes: ['my-claim.v1:/mnt/data', 'x:/home/jovyan/tmp'],
      shm: '64Mi'
    });
    expect(validateForm(form)).toEqual({});
  });
});
