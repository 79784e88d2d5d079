/**
 * The active cell's tag editor (`data-nb2pipe-id="cell-editor"`): a form over the tags
 * nb2pipe models (tags.ts), an `apply-tags` button that writes them into the cell, and the
 * cell's tags as written (`cell-tags`, one `code` each). Plain DOM; the cell is reached
 * through a small host interface, so no JupyterLab imports and jest can drive it in jsdom.
 *
 * Edits typed but not applied are kept per cell when another cell is selected (with a
 * warning) and come back when that cell is selected again; *Discard* drops them. Applying on
 * every keystroke would write half-typed tags (`step:tr`) and recompile the graph each time.
 * Markdown and raw cells get a note instead of the form: the compiler reads only code cells.
 */

import { clear, h } from './dom';
import {
  Direction,
  ROLES,
  Role,
  TagForm,
  emptyForm,
  readTags,
  splitDrift,
  splitLines,
  splitList,
  splitPromote,
  writeTags
} from './tags';
import { FormErrors, validateForm } from './tagChecks';

/** How the editor reads and writes one cell's `metadata.tags`. */
export interface ICellTagsHost {
  /** e.g. "cell 3 (code)" */
  readonly label: string;
  /** identifies the cell across selections (its model id); the label when absent */
  readonly key?: string;
  /** `code`, `markdown` or `raw`; code when absent */
  readonly cellType?: string;
  getTags(): string[];
  /** write the list (an empty list removes the key) */
  setTags(tags: string[]): void;
}

type FieldId =
  | 'step'
  | 'after'
  | 'role'
  | 'cpu'
  | 'memory'
  | 'gpu'
  | 'gpu-type'
  | 'image'
  | 'packages'
  | 'register'
  | 'register-variable'
  | 'promote'
  | 'deploy'
  | 'drift'
  | 'explain'
  | 'shm'
  | 'env'
  | 'volumes'
  | 'node'
  | 'tolerations'
  | 'affinity'
  | 'prefer-affinity';

interface FieldSpec {
  id: FieldId;
  label: string;
  placeholder: string;
  help: string;
  /** a list of tag bodies, one a line: their values may hold spaces, commas and colons */
  lines?: boolean;
}

const FIELDS: FieldSpec[] = [
  { id: 'role', label: 'Role', placeholder: '', help: 'a cell with a role is not a step cell' },
  { id: 'step', label: 'Step', placeholder: 'e.g. train', help: 'step:NAME starts a step' },
  { id: 'after', label: 'After', placeholder: 'e.g. download, clean', help: 'after:NAME, steps to run after' },
  { id: 'cpu', label: 'CPU', placeholder: 'e.g. 2, 0.5, 500m', help: 'cpu:QUANTITY request' },
  { id: 'memory', label: 'Memory', placeholder: 'e.g. 512Mi, 4Gi', help: 'memory:QUANTITY request' },
  { id: 'gpu', label: 'GPUs', placeholder: 'e.g. 1', help: 'gpu:N[:TYPE]' },
  {
    id: 'gpu-type',
    label: 'GPU type',
    placeholder: 'default nvidia.com/gpu; or NVIDIA H100 80GB HBM3',
    help: "a resource name with '/' (nvidia.com/mig-1g.10gb), or a GPU product as nvidia-smi prints it"
  },
  { id: 'shm', label: 'Shared memory', placeholder: 'e.g. 1Gi', help: 'shm:SIZE, the /dev/shm of the step (default 64Mi)' },
  { id: 'image', label: 'Image', placeholder: 'e.g. python:3.12-slim', help: 'image:IMAGE of the step' },
  { id: 'packages', label: 'Packages', placeholder: 'e.g. xgboost==2.1;rich', help: 'packages:PKG[;PKG]' },
  {
    id: 'env',
    label: 'Environment',
    placeholder: 'NAME=VALUE, one a line\ne.g. OMP_NUM_THREADS=4',
    help: 'env:NAME=VALUE, one variable a line (a later line for the same name wins)',
    lines: true
  },
  {
    id: 'volumes',
    label: 'Volumes',
    placeholder: 'CLAIM:PATH, one a line\ne.g. training-data:/data',
    help: 'volume:CLAIM:PATH, an existing PersistentVolumeClaim mounted at PATH',
    lines: true
  },
  {
    id: 'node',
    label: 'Node labels',
    placeholder: 'KEY=VALUE, one a line\ne.g. cloud.google.com/gke-nodepool=gpu-pool',
    help: 'node:KEY=VALUE, a node selector label',
    lines: true
  },
  {
    id: 'tolerations',
    label: 'Tolerations',
    placeholder: 'KEY[=VALUE]:EFFECT, one a line\ne.g. nvidia.com/gpu:NoSchedule',
    help: 'toleration:KEY[=VALUE]:EFFECT, EFFECT NoSchedule, PreferNoSchedule or NoExecute',
    lines: true
  },
  {
    id: 'affinity',
    label: 'Node affinity',
    placeholder: 'one rule a line, all must hold\ne.g. topology.kubernetes.io/zone=a|b',
    help: 'affinity:EXPR with EXPR KEY, !KEY, KEY=V1|V2, KEY!=V1|V2, KEY>N or KEY<N',
    lines: true
  },
  {
    id: 'prefer-affinity',
    label: 'Preferred affinity',
    placeholder: 'EXPR[:WEIGHT], one a line\ne.g. gpu-class=a100:50',
    help: 'prefer-affinity:EXPR[:WEIGHT], weight 1 to 100 (default 1)',
    lines: true
  },
  { id: 'register', label: 'Register model', placeholder: 'e.g. churn', help: 'register:MODEL_NAME[:VARIABLE]' },
  { id: 'register-variable', label: 'Model variable', placeholder: 'default: found by type', help: 'the variable holding the model' },
  { id: 'promote', label: 'Promote if', placeholder: 'e.g. accuracy>= or rmse<=', help: 'promote:METRIC>= (higher is better) or <=' },
  { id: 'deploy', label: 'Deploy as', placeholder: 'e.g. churn-svc', help: 'deploy:SERVICE_NAME' },
  { id: 'drift', label: 'Drift check', placeholder: 'e.g. X_new or X_new:X_train', help: 'drift:CURRENT[:REFERENCE]' },
  { id: 'explain', label: 'Explain', placeholder: 'anchor, ig', help: 'explain:anchor / explain:ig' }
];

/** Which input shows a form field's error. */
const ERROR_FIELD: Record<keyof TagForm, FieldId> = {
  role: 'role',
  step: 'step',
  after: 'after',
  cpu: 'cpu',
  memory: 'memory',
  gpu: 'gpu',
  gpuType: 'gpu-type',
  image: 'image',
  packages: 'packages',
  register: 'register',
  registerVariable: 'register-variable',
  promoteMetric: 'promote',
  promoteDirection: 'promote',
  deploy: 'deploy',
  driftCurrent: 'drift',
  driftReference: 'drift',
  explain: 'explain',
  shm: 'shm',
  env: 'env',
  volumes: 'volumes',
  nodeSelectors: 'node',
  tolerations: 'tolerations',
  affinity: 'affinity',
  preferAffinity: 'prefer-affinity'
};

export interface TagEditorOptions {
  /** an outcome to show ("tags written", "fix the marked fields") */
  onMessage?: (text: string, kind: 'info' | 'error') => void;
  /** the tags were written */
  onApplied?: (tags: string[]) => void;
}

export class TagEditor {
  constructor(options: TagEditorOptions = {}) {
    this._options = options;
    this.node = h('div', { className: 'nb2pipe-cell-editor', 'id-nb2pipe': 'cell-editor' });
    this._title = h('div', { className: 'nb2pipe-cell-editor-title' }, 'No active cell');
    this._form = h('form', { className: 'nb2pipe-form' });
    this._form.addEventListener('submit', event => {
      event.preventDefault();
      this.apply();
    });
    for (const spec of FIELDS) {
      const input =
        spec.id === 'role'
          ? this._roleSelect()
          : spec.lines
            ? h('textarea', { rows: 2, placeholder: spec.placeholder })
            : h('input', { type: 'text', placeholder: spec.placeholder });
      input.setAttribute('data-nb2pipe-id', `field-${spec.id}`);
      input.setAttribute('id', `nb2pipe-field-${spec.id}`);
      input.setAttribute('title', spec.help);
      input.addEventListener('input', () => this._onEdit(spec.id));
      input.addEventListener('change', () => this._onEdit(spec.id));
      if (spec.id !== 'role') {
        input.addEventListener('keydown', event => {
          // Enter in a list starts its next line; Ctrl/Cmd+Enter applies there
          const key = event as KeyboardEvent;
          if (key.key === 'Enter' && (!spec.lines || key.ctrlKey || key.metaKey)) {
            event.preventDefault();
            this.apply();
          }
        });
      }
      const error = h('div', { className: 'nb2pipe-field-error', role: 'alert' });
      this._inputs.set(spec.id, input);
      this._errors.set(spec.id, error);
      this._form.appendChild(
        h(
          'div',
          { className: `nb2pipe-field nb2pipe-field-${spec.id}` },
          h('label', { for: `nb2pipe-field-${spec.id}` }, spec.label),
          input,
          error
        )
      );
    }
    this._apply = h(
      'button',
      { type: 'button', className: 'nb2pipe-button nb2pipe-apply', 'id-nb2pipe': 'apply-tags' },
      'Apply tags'
    );
    this._apply.addEventListener('click', () => this.apply());
    this._form.appendChild(h('div', { className: 'nb2pipe-form-actions' }, this._apply));
    this._tags = h('div', { className: 'nb2pipe-cell-tags', 'id-nb2pipe': 'cell-tags' });
    this._notCode = h(
      'div',
      { className: 'nb2pipe-note nb2pipe-hidden', 'id-nb2pipe': 'not-code-note' },
      'Only code cells are part of the pipeline: nb2pipe ignores tags on markdown and raw cells. Select a code cell to tag it.'
    );
    const discard = h('button', { type: 'button', className: 'nb2pipe-button', 'id-nb2pipe': 'discard-tags' }, 'Discard');
    discard.addEventListener('click', () => this.discard());
    this._unapplied = h(
      'div',
      { className: 'nb2pipe-unapplied nb2pipe-hidden', 'id-nb2pipe': 'unapplied-note', role: 'status' },
      'Edits not applied yet: Apply writes them into the cell. ',
      discard
    );
    this.node.append(
      this._title,
      this._notCode,
      this._unapplied,
      this._form,
      h('div', { className: 'nb2pipe-cell-tags-label' }, 'Tags'),
      this._tags
    );
    this.setCell(null);
  }

  readonly node: HTMLDivElement;

  get host(): ICellTagsHost | null {
    return this._host;
  }

  /** Show `host`'s cell (null: no active cell); edits not applied to the previous cell are kept for it. */
  setCell(host: ICellTagsHost | null): void {
    const old = this._host;
    if (old && this._dirty && (!host || keyOf(host) !== keyOf(old))) {
      this._drafts.set(keyOf(old), { label: old.label, values: this._values() });
      this._options.onMessage?.(
        `${old.label}: tag edits not applied. Select the cell again to apply or discard them.`,
        'error'
      );
    }
    this._host = host;
    this._dirty = false;
    this.refresh(true);
    const draft = host ? this._drafts.get(keyOf(host)) : undefined;
    if (host && draft) {
      for (const [id, value] of draft.values) {
        this._inputs.get(id)!.value = value;
      }
      this._setDirty(true);
    }
  }

  /** The cells (labels) with edits not applied. */
  get unappliedCells(): string[] {
    const labels = [...this._drafts.values()].map(d => d.label);
    return this._dirty && this._host ? [this._host.label, ...labels] : labels;
  }

  /** Drop the edits not applied to the current cell and show its tags again. */
  discard(): void {
    if (this._host) {
      this._drafts.delete(keyOf(this._host));
    }
    this.refresh(true);
  }

  /** Re-read the cell's tags (after a change from elsewhere); edits in progress stay. */
  refresh(force = false): void {
    const host = this._host;
    this._title.textContent = host ? host.label : 'No active cell';
    const tags = host ? host.getTags() : [];
    this._showTags(tags);
    for (const input of this._inputs.values()) {
      input.disabled = host === null;
    }
    this._apply.disabled = host === null;
    const code = !host || (host.cellType ?? 'code') === 'code';
    this._form.classList.toggle('nb2pipe-hidden', !code);
    this._notCode.classList.toggle('nb2pipe-hidden', code);
    if (force || !this._dirty) {
      this._fill(readTags(tags).form);
      this._showErrors({});
      this._setDirty(false);
    }
  }

  /** The form as typed. */
  readForm(): TagForm {
    const value = (id: FieldId) => this._inputs.get(id)!.value.trim();
    const form = emptyForm();
    const role = value('role');
    form.role = role === 'none' ? '' : (role as Role);
    form.step = value('step');
    form.after = splitList(value('after'));
    form.cpu = value('cpu');
    form.memory = value('memory');
    form.gpu = value('gpu');
    form.gpuType = value('gpu-type');
    form.image = value('image');
    form.packages = value('packages');
    form.register = value('register');
    form.registerVariable = value('register-variable');
    const promote = splitPromote(value('promote'), this._direction);
    form.promoteMetric = promote.metric;
    form.promoteDirection = promote.direction;
    form.deploy = value('deploy');
    const drift = splitDrift(value('drift'));
    form.driftCurrent = drift.current;
    form.driftReference = drift.reference;
    form.explain = splitList(value('explain'));
    form.shm = value('shm');
    const lines = (id: FieldId) => splitLines(this._inputs.get(id)!.value);
    // an env value keeps its own trailing spaces
    form.env = splitLines(this._inputs.get('env')!.value, true);
    form.volumes = lines('volumes');
    form.nodeSelectors = lines('node');
    form.tolerations = lines('tolerations');
    form.affinity = lines('affinity');
    form.preferAffinity = lines('prefer-affinity');
    return form;
  }

  /** Validate and write the form into the cell; answers the tags written, or null. */
  apply(): string[] | null {
    const host = this._host;
    if (!host) {
      return null;
    }
    const form = this.readForm();
    const errors = validateForm(form);
    this._showErrors(errors);
    if (Object.keys(errors).length) {
      this._options.onMessage?.('The tags were not written: fix the marked fields.', 'error');
      return null;
    }
    const tags = writeTags(host.getTags(), form);
    this._drafts.delete(keyOf(host));
    this._setDirty(false);
    host.setTags(tags);
    this.refresh(true);
    this._options.onMessage?.(tags.length ? `Tags written: ${tags.join(' ')}` : 'Tags removed.', 'info');
    this._options.onApplied?.(tags);
    return tags;
  }

  private _roleSelect(): HTMLSelectElement {
    const select = h('select', {});
    select.appendChild(h('option', { value: 'none' }, 'none'));
    for (const role of ROLES) {
      select.appendChild(h('option', { value: role }, role));
    }
    return select;
  }

  private _fill(form: TagForm): void {
    const set = (id: FieldId, text: string) => {
      this._inputs.get(id)!.value = text;
    };
    set('role', form.role || 'none');
    set('step', form.step);
    set('after', form.after.join(', '));
    set('cpu', form.cpu);
    set('memory', form.memory);
    set('gpu', form.gpu);
    set('gpu-type', form.gpuType);
    set('image', form.image);
    set('packages', form.packages);
    set('register', form.register);
    set('register-variable', form.registerVariable);
    set('promote', form.promoteMetric ? `${form.promoteMetric}${form.promoteDirection}` : '');
    this._direction = form.promoteDirection;
    set('deploy', form.deploy);
    set('drift', form.driftReference ? `${form.driftCurrent}:${form.driftReference}` : form.driftCurrent);
    set('explain', form.explain.join(', '));
    set('shm', form.shm);
    set('env', form.env.join('\n'));
    set('volumes', form.volumes.join('\n'));
    set('node', form.nodeSelectors.join('\n'));
    set('tolerations', form.tolerations.join('\n'));
    set('affinity', form.affinity.join('\n'));
    set('prefer-affinity', form.preferAffinity.join('\n'));
  }

  private _showTags(tags: string[]): void {
    clear(this._tags);
    if (!tags.length) {
      this._tags.appendChild(h('span', { className: 'nb2pipe-empty' }, 'no tags'));
      return;
    }
    for (const tag of tags) {
      this._tags.appendChild(h('code', { className: 'nb2pipe-tag' }, tag));
    }
  }

  private _showErrors(errors: FormErrors): void {
    const byField = new Map<FieldId, string>();
    for (const [key, message] of Object.entries(errors) as [keyof TagForm, string][]) {
      const id = ERROR_FIELD[key];
      if (!byField.has(id)) {
        byField.set(id, message);
      }
    }
    for (const [id, input] of this._inputs) {
      const message = byField.get(id) ?? '';
      input.classList.toggle('nb2pipe-invalid', message !== '');
      input.setAttribute('aria-invalid', message ? 'true' : 'false');
      this._errors.get(id)!.textContent = message;
    }
  }

  private _values(): [FieldId, string][] {
    return [...this._inputs].map(([id, input]) => [id, input.value]);
  }

  private _setDirty(dirty: boolean): void {
    this._dirty = dirty;
    this._unapplied.classList.toggle('nb2pipe-hidden', !dirty);
  }

  private _onEdit(id: FieldId): void {
    this._setDirty(true);
    const error = this._errors.get(id)!;
    if (error.textContent) {
      // re-check as the user fixes it
      const errors = validateForm(this.readForm());
      const still = (Object.entries(errors) as [keyof TagForm, string][]).find(([key]) => ERROR_FIELD[key] === id);
      error.textContent = still ? still[1] : '';
      this._inputs.get(id)!.classList.toggle('nb2pipe-invalid', !!still);
    }
  }

  private _options: TagEditorOptions;
  private _host: ICellTagsHost | null = null;
  private _dirty = false;
  private _drafts = new Map<string, { label: string; values: [FieldId, string][] }>();
  private _notCode: HTMLDivElement;
  private _unapplied: HTMLDivElement;
  private _direction: Direction = '>=';
  private _title: HTMLDivElement;
  private _form: HTMLFormElement;
  private _apply: HTMLButtonElement;
  private _tags: HTMLDivElement;
  private _inputs = new Map<FieldId, HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>();
  private _errors = new Map<FieldId, HTMLDivElement>();
}

function keyOf(host: ICellTagsHost): string {
  return host.key ?? host.label;
}
