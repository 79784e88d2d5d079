/**
 * The notebook settings form: five inputs (`setting-KEY`) over `metadata.nb2pipe`, written
 * on every change. Plain DOM over a small host interface (no JupyterLab imports).
 */

import { h } from './dom';
import {
  SETTING_KEYS,
  SETTING_LABELS,
  SETTING_PLACEHOLDERS,
  SettingKey,
  readSettings,
  writeSetting
} from './settings';

/** How the form reads and writes the notebook's `metadata.nb2pipe`. */
export interface INotebookSettingsHost {
  get(): unknown;
  /** the new `metadata.nb2pipe`, or null to remove the key */
  set(value: { [key: string]: unknown } | null): void;
}

export class SettingsForm {
  constructor() {
    this.node = h('div', { className: 'nb2pipe-settings', 'id-nb2pipe': 'settings' });
    for (const key of SETTING_KEYS) {
      const input = h('input', {
        type: 'text',
        id: `nb2pipe-setting-${key}`,
        'id-nb2pipe': `setting-${key}`,
        placeholder: SETTING_PLACEHOLDERS[key],
        title: `metadata.nb2pipe.${key}`
      });
      input.addEventListener('input', () => this._write(key));
      input.addEventListener('change', () => this._write(key));
      this._inputs.set(key, input);
      this.node.appendChild(
        h(
          'div',
          { className: 'nb2pipe-field' },
          h('label', { for: `nb2pipe-setting-${key}` }, SETTING_LABELS[key]),
          input
        )
      );
    }
    this.setHost(null);
  }

  readonly node: HTMLDivElement;

  setHost(host: INotebookSettingsHost | null): void {
    this._host = host;
    this.refresh(true);
  }

  /** Show the notebook's values; an input being edited keeps its text unless forced. */
  refresh(force = false): void {
    const values = readSettings(this._host ? this._host.get() : null);
    for (const [key, input] of this._inputs) {
      input.disabled = this._host === null;
      const editing = typeof document !== 'undefined' && document.activeElement === input;
      if (force || !editing) {
        input.value = values[key];
      }
    }
  }

  private _write(key: SettingKey): void {
    if (!this._host) {
      return;
    }
    const value = this._inputs.get(key)!.value;
    const current = this._host.get();
    if (readSettings(current)[key] === value.trim()) {
      return;
    }
    this._host.set(writeSetting(current, key, value));
  }

  private _host: INotebookSettingsHost | null = null;
  private _inputs = new Map<SettingKey, HTMLInputElement>();
}
