/**
 * @jest-environment jsdom
 */
import {
  ParametersForm,
  checkValue,
  collectParameters,
  describeErrors,
  formatDefault,
  parametersBody
} from '../parametersForm';
import { GraphParameter } from '../types';

const PARAMETERS: GraphParameter[] = [
  { name: 'seed', type: 'int', default: 3 },
  { name: 'rate', type: 'float', default: 0.5 },
  { name: 'shuffle', type: 'bool', default: true },
  { name: 'label', type: 'str', default: 'target' },
  { name: 'layers', type: 'list', default: [1, 2] },
  { name: 'note', type: 'str', default: null }
];

function type(form: ParametersForm, name: string, value: string): HTMLInputElement {
  const input = form.node.querySelector(`[data-nb2pipe-id="parameter-${name}"]`) as HTMLInputElement;
  input.value = value;
  input.dispatchEvent(new Event('input'));
  return input;
}

describe('checkValue', () => {
  it.each([
    ['int', '42', null],
    ['int', ' -7 ', null],
    ['int', '1_000', null],
    ['int', '4.2', 'not an integer'],
    ['int', '', 'not an integer'],
    ['float', '0.25', null],
    ['float', '1e-3', null],
    ['float', '.5', null],
    ['float', 'abc', 'not a finite number'],
    ['float', 'nan', 'not a finite number'],
    ['float', 'inf', 'not a finite number'],
    ['float', '', 'not a finite number'],
    ['bool', 'False', null],
    ['bool', 'on', null],
    ['bool', 'maybe', 'not a boolean (true or false)'],
    ['list', '[1, 2, 3]', null],
    ['list', '{"a": 1}', 'not a JSON list'],
    ['dict', '{"a": 1}', null],
    ['dict', '[1', 'not JSON (a dict)'],
    ['str', 'anything at all', null]
  ])('%s %p -> %p', (kind, text, expected) => {
    expect(checkValue(kind, text)).toBe(expected);
  });
});

describe('collectParameters', () => {
  it('sends only the values that differ from the default', () => {
    const edits = { seed: '3', rate: '0.75', shuffle: 'true', label: 'y', layers: '[1, 2, 3]' };
    expect(collectParameters(PARAMETERS, edits)).toEqual({
      parameters: { rate: '0.75', label: 'y', layers: '[1, 2, 3]' },
      errors: {}
    });
  });

  it('flags a value that does not parse for its type and sends nothing for it', () => {
    const out = collectParameters(PARAMETERS, { seed: 'three', rate: '1.5' });
    expect(out.errors).toEqual({ seed: 'not an integer' });
    expect(out.parameters).toEqual({ rate: '1.5' });
    expect(describeErrors(out.errors)).toBe('seed: not an integer');
  });

  it('keeps a string as typed (spaces included) and trims typed numbers', () => {
    expect(collectParameters(PARAMETERS, { label: '  spaced ', seed: ' 5 ' }).parameters).toEqual({ label: '  spaced ', seed: '5' });
  });

  it('ignores edits of names the pipeline no longer has', () => {
    expect(collectParameters(PARAMETERS, { gone: 'x' })).toEqual({ parameters: {}, errors: {} });
  });
});

describe('formatDefault and parametersBody', () => {
  it('shows defaults the way a user types them', () => {
    expect(PARAMETERS.map(p => formatDefault(p.default))).toEqual(['3', '0.5', 'true', 'target', '[1,2]', '']);
  });

  it('leaves `parameters` out of the request body when nothing changed', () => {
    expect(parametersBody({})).toEqual({});
    expect(parametersBody({ seed: '5' })).toEqual({ parameters: { seed: '5' } });
  });
});

describe('ParametersForm', () => {
  it('shows each parameter with its name, type and default', () => {
    const form = new ParametersForm();
    form.setParameters('a.ipynb', PARAMETERS);
    const rows = [...form.node.querySelectorAll('[data-parameter]')];
    expect(rows.map(r => r.getAttribute('data-parameter'))).toEqual(PARAMETERS.map(p => p.name));
    expect(rows[0].querySelector('.nb2pipe-parameter-type')?.textContent).toBe('int');
    const seed = form.node.querySelector('[data-nb2pipe-id="parameter-seed"]') as HTMLInputElement;
    expect(seed.value).toBe('3');
    expect(form.values()).toEqual({ parameters: {}, errors: {} });
  });

  it('flags a bad value on its input and sends only what changed', () => {
    const form = new ParametersForm();
    form.setParameters('a.ipynb', PARAMETERS);
    const seed = type(form, 'seed', 'x');
    expect(seed.classList.contains('nb2pipe-invalid')).toBe(true);
    expect(seed.getAttribute('aria-invalid')).toBe('true');
    expect(form.values().errors).toEqual({ seed: 'not an integer' });
    type(form, 'seed', '11');
    type(form, 'shuffle', 'false');
    expect(seed.classList.contains('nb2pipe-invalid')).toBe(false);
    expect(form.values()).toEqual({ parameters: { seed: '11', shuffle: 'false' }, errors: {} });
  });

  it('keeps each notebook its own edits', () => {
    const form = new ParametersForm();
    form.setParameters('a.ipynb', PARAMETERS);
    type(form, 'seed', '9');
    form.setParameters('b.ipynb', PARAMETERS);
    expect(form.values().parameters).toEqual({});
    expect((form.node.querySelector('[data-nb2pipe-id="parameter-seed"]') as HTMLInputElement).value).toBe('3');
    form.setParameters('a.ipynb', PARAMETERS);
    expect(form.values().parameters).toEqual({ seed: '9' });
  });

  it('keeps the inputs (and the focus) when the same parameters come again', () => {
    const form = new ParametersForm();
    form.setParameters('a.ipynb', PARAMETERS);
    const before = form.node.querySelector('input');
    form.setParameters('a.ipynb', PARAMETERS.map(p => ({ ...p })));
    expect(form.node.querySelector('input')).toBe(before);
  });

  it('says so when the pipeline has no parameters', () => {
    const form = new ParametersForm();
    form.setParameters('a.ipynb', []);
    expect(form.node.textContent).toContain('no parameters');
    expect(form.values()).toEqual({ parameters: {}, errors: {} });
  });
});
