/**
 * The pipeline parameters form for "Run locally" and "Submit": one input per parameter of
 * the graph (its name, type and default), prefilled with the default. Only the values the
 * user changed are sent (as strings, API.md); one that does not parse for its type is
 * flagged before anything is sent. The edits are kept per notebook.
 *
 * No JupyterLab imports: jest tests this module directly.
 */

import { clear, h } from './dom';
import { GraphParameter } from './types';

/** The default as the form shows it (the text a user would type). */
export function formatDefault(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (typeof value === 'boolean') {
    return value ? 'true' : 'false';
  }
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : JSON.stringify(value);
}

/**
 * Why `text` is not a value of `type`, or null when it is; the same rules as the server's
 * (nb2pipe/runners/parameters.py): bool true/false/1/0/yes/no/on/off, finite numbers only,
 * list and dict as JSON; str takes any text.
 */
export function checkValue(type: string, text: string): string | null {
  const value = text.trim();
  switch (type) {
    case 'int':
      return /^[+-]?\d+(_\d+)*$/.test(value) ? null : 'not an integer';
    case 'float':
      return /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(value) && Number.isFinite(Number(value))
        ? null
        : 'not a finite number';
    case 'bool':
      return /^(true|false|1|0|yes|no|on|off)$/i.test(value) ? null : 'not a boolean (true or false)';
    case 'list':
    case 'dict':
      try {
        const parsed: unknown = JSON.parse(text);
        const isList = Array.isArray(parsed);
        const isDict = typeof parsed === 'object' && parsed !== null && !isList;
        return (type === 'list' ? isList : isDict) ? null : `not a JSON ${type === 'list' ? 'list' : 'object'}`;
      } catch {
        return `not JSON (a ${type})`;
      }
    default:
      return null;
  }
}

export interface ParameterValues {
  /** name -> value, only those that differ from the default */
  parameters: Record<string, string>;
  /** name -> why its value does not parse */
  errors: Record<string, string>;
}

/** What to send for `edits` (name -> text typed) of `parameters`: the changed, valid values, and the errors. */
export function collectParameters(parameters: readonly GraphParameter[], edits: Readonly<Record<string, string>>): ParameterValues {
  const out: ParameterValues = { parameters: {}, errors: {} };
  for (const p of parameters) {
    const text = edits[p.name];
    if (text === undefined || text === formatDefault(p.default)) {
      continue;
    }
    const problem = checkValue(p.type, text);
    if (problem) {
      out.errors[p.name] = problem;
    } else {
      out.parameters[p.name] = p.type === 'str' ? text : text.trim();
    }
  }
  return out;
}

/** The request body's `parameters` field: left out when nothing was changed. */
export function parametersBody(parameters: Readonly<Record<string, string>>): { parameters?: Record<string, string> } {
  return Object.keys(parameters).length ? { parameters: { ...parameters } } : {};
}

/** "seed: not an integer; lr: not a number" */
export function describeErrors(errors: Readonly<Record<string, string>>): string {
  return Object.entries(errors)
    .map(([name, problem]) => `${name}: ${problem}`)
    .join('; ');
}

export class ParametersForm {
  constructor() {
    this.node = h('div', { className: 'nb2pipe-parameters', 'id-nb2pipe': 'parameters' });
    this._render();
  }

  readonly node: HTMLDivElement;

  /** Show the parameters of notebook `key` (its edits kept while another is shown). */
  setParameters(key: string | null, parameters: readonly GraphParameter[]): void {
    const same =
      key === this._key &&
      parameters.length === this._parameters.length &&
      parameters.every((p, i) => {
        const q = this._parameters[i];
        return p.name === q.name && p.type === q.type && formatDefault(p.default) === formatDefault(q.default);
      });
    if (same) {
      return;
    }
    this._key = key;
    this._parameters = [...parameters];
    this._render();
  }

  /** The values to send, and the errors (each flagged on its input). */
  values(): ParameterValues {
    const values = collectParameters(this._parameters, this._edits());
    for (const [name, input] of this._inputs) {
      const problem = values.errors[name];
      input.classList.toggle('nb2pipe-invalid', !!problem);
      input.setAttribute('aria-invalid', problem ? 'true' : 'false');
      input.title = problem ? `${name}: ${problem}` : this._titleOf(name);
    }
    return values;
  }

  private _edits(): Record<string, string> {
    return this._key === null ? {} : (this._editsByKey.get(this._key) ?? {});
  }

  private _titleOf(name: string): string {
    const p = this._parameters.find(q => q.name === name);
    return p ? `${p.name} (${p.type}), default ${formatDefault(p.default) || '""'}` : name;
  }

  private _render(): void {
    clear(this.node);
    this._inputs.clear();
    if (!this._parameters.length) {
      this.node.appendChild(h('div', { className: 'nb2pipe-empty' }, 'The pipeline has no parameters.'));
      return;
    }
    const edits = this._edits();
    for (const p of this._parameters) {
      const input = h('input', {
        type: 'text',
        className: 'nb2pipe-parameter-input',
        'id-nb2pipe': `parameter-${p.name}`,
        'data-type': p.type,
        placeholder: formatDefault(p.default),
        title: this._titleOf(p.name)
      });
      input.value = edits[p.name] ?? formatDefault(p.default);
      input.addEventListener('input', () => {
        if (this._key === null) {
          return;
        }
        const kept = { ...(this._editsByKey.get(this._key) ?? {}), [p.name]: input.value };
        this._editsByKey.set(this._key, kept);
        // flag a bad value as it is typed, clear the flag once it parses
        this.values();
      });
      this._inputs.set(p.name, input);
      this.node.appendChild(
        h(
          'label',
          { className: 'nb2pipe-parameter', 'data-parameter': p.name },
          h('span', { className: 'nb2pipe-parameter-name' }, p.name),
          h('span', { className: 'nb2pipe-parameter-type' }, p.type),
          input
        )
      );
    }
    this.values();
  }

  private _key: string | null = null;
  private _parameters: GraphParameter[] = [];
  private _editsByKey = new Map<string, Record<string, string>>();
  private _inputs = new Map<string, HTMLInputElement>();
}
