import { ICellTagsHost, TagEditor } from '../cellEditor';
import { SettingsForm } from '../settingsForm';

function host(initial: string[]): ICellTagsHost & { tags: string[]; writes: number } {
  const h = {
    label: 'Cell 2 (code)',
    tags: [...initial],
    writes: 0,
    getTags: () => [...h.tags],
    setTags: (tags: string[]) => {
      h.tags = [...tags];
      h.writes++;
    }
  };
  return h;
}

function field(editor: TagEditor, id: string): HTMLInputElement {
  const el = editor.node.querySelector(`[data-nb2pipe-id="field-${id}"]`);
  expect(el).not.toBeNull();
  return el as HTMLInputElement;
}

function type(input: HTMLInputElement | HTMLSelectElement, value: string): void {
  input.value = value;
  input.dispatchEvent(new Event('input'));
}

describe('TagEditor', () => {
  const ids = [
    'step', 'after', 'role', 'cpu', 'memory', 'gpu', 'gpu-type', 'image', 'packages',
    'register', 'register-variable', 'promote', 'deploy', 'drift', 'explain',
    'shm', 'env', 'volumes', 'node', 'tolerations', 'affinity', 'prefer-affinity'
  ];
  const lists = ['env', 'volumes', 'node', 'tolerations', 'affinity', 'prefer-affinity'];

  it('has every test id', () => {
    const editor = new TagEditor();
    expect(editor.node.getAttribute('data-nb2pipe-id')).toBe('cell-editor');
    for (const id of ids) {
      field(editor, id);
    }
    expect(field(editor, 'role').tagName).toBe('SELECT');
    expect(Array.from((field(editor, 'role') as unknown as HTMLSelectElement).options).map(o => o.value)).toEqual([
      'none', 'imports', 'functions', 'parameters', 'metrics', 'skip'
    ]);
    expect(editor.node.querySelector('[data-nb2pipe-id="apply-tags"]')).not.toBeNull();
    expect(editor.node.querySelector('[data-nb2pipe-id="cell-tags"]')).not.toBeNull();
  });

  it("shows the cell's tags and fills the form", () => {
    const editor = new TagEditor();
    editor.setCell(host(['block:train', 'prev:load', 'promote:rmse<=', 'drift:a:b', 'remove-cell']));
    expect(field(editor, 'step').value).toBe('train');
    expect(field(editor, 'after').value).toBe('load');
    expect(field(editor, 'promote').value).toBe('rmse<=');
    expect(field(editor, 'drift').value).toBe('a:b');
    const codes = Array.from(editor.node.querySelectorAll('[data-nb2pipe-id="cell-tags"] code')).map(c => c.textContent);
    expect(codes).toEqual(['block:train', 'prev:load', 'promote:rmse<=', 'drift:a:b', 'remove-cell']);
  });

  it('applies the form to the cell', () => {
    const editor = new TagEditor();
    const cell = host(['remove-cell']);
    editor.setCell(cell);
    type(field(editor, 'role'), 'none');
    type(field(editor, 'step'), 'train');
    type(field(editor, 'after'), 'load, clean');
    type(field(editor, 'cpu'), '2');
    type(field(editor, 'gpu'), '1');
    type(field(editor, 'gpu-type'), 'nvidia.com/gpu');
    type(field(editor, 'image'), 'python:3.12-slim');
    type(field(editor, 'register'), 'churn');
    type(field(editor, 'promote'), 'accuracy');
    type(field(editor, 'explain'), 'anchor ig');
    (editor.node.querySelector('[data-nb2pipe-id="apply-tags"]') as HTMLButtonElement).click();
    expect(cell.tags).toEqual([
      'remove-cell',
      'step:train',
      'after:load',
      'after:clean',
      'cpu:2',
      'gpu:1:nvidia.com/gpu',
      'image:python:3.12-slim',
      'register:churn',
      'promote:accuracy>=',
      'explain:anchor',
      'explain:ig'
    ]);
    const codes = Array.from(editor.node.querySelectorAll('[data-nb2pipe-id="cell-tags"] code')).map(c => c.textContent);
    expect(codes).toEqual(cell.tags);
  });

  it('refuses to write a bad form and says why', () => {
    const messages: string[] = [];
    const editor = new TagEditor({ onMessage: text => messages.push(text) });
    const cell = host([]);
    editor.setCell(cell);
    type(field(editor, 'cpu'), 'two');
    type(field(editor, 'step'), '1st');
    expect(editor.apply()).toBeNull();
    expect(cell.writes).toBe(0);
    expect(field(editor, 'cpu').classList.contains('nb2pipe-invalid')).toBe(true);
    expect(editor.node.textContent).toContain('not a CPU quantity');
    expect(messages[0]).toContain('not written');
    type(field(editor, 'cpu'), '2');
    expect(field(editor, 'cpu').classList.contains('nb2pipe-invalid')).toBe(false);
  });

  it('removes the tags when the form is emptied', () => {
    const editor = new TagEditor();
    const cell = host(['step:a']);
    editor.setCell(cell);
    type(field(editor, 'step'), '');
    expect(editor.apply()).toEqual([]);
    expect(cell.tags).toEqual([]);
  });

  it('edits the step settings one entry a line', () => {
    const editor = new TagEditor();
    for (const id of lists) {
      expect(field(editor, id).tagName).toBe('TEXTAREA');
    }
    const cell = host(['step:fit', 'env:A=1', 'secret:s:k:B', 'env:C=x y', 'toleration:gpu:NoSchedule', 'shm:1Gi', 'remove-cell']);
    editor.setCell(cell);
    expect(field(editor, 'env').value).toBe('A=1\nC=x y');
    expect(field(editor, 'tolerations').value).toBe('gpu:NoSchedule');
    expect(field(editor, 'shm').value).toBe('1Gi');
    type(field(editor, 'env'), 'A=1\n\nC=x, y\n');
    type(field(editor, 'volumes'), 'data:/data\ncache:/cache');
    type(field(editor, 'node'), 'pool=gpu');
    type(field(editor, 'affinity'), 'zone=a|b');
    type(field(editor, 'prefer-affinity'), 'fast:20');
    type(field(editor, 'gpu'), '1');
    type(field(editor, 'gpu-type'), 'NVIDIA H100 80GB HBM3');
    expect(editor.apply()).toEqual([
      'step:fit',
      'gpu:1:NVIDIA H100 80GB HBM3',
      'shm:1Gi',
      'env:A=1',
      'env:C=x, y',
      'volume:data:/data',
      'volume:cache:/cache',
      'node:pool=gpu',
      'toleration:gpu:NoSchedule',
      'affinity:zone=a|b',
      'prefer-affinity:fast:20',
      'secret:s:k:B',
      'remove-cell'
    ]);
    expect(field(editor, 'volumes').value).toBe('data:/data\ncache:/cache');
  });

  it('starts a new line on Enter in a list and applies on Ctrl+Enter', () => {
    const editor = new TagEditor();
    const cell = host([]);
    editor.setCell(cell);
    type(field(editor, 'env'), 'A=1');
    const enter = (init: KeyboardEventInit) => {
      const event = new KeyboardEvent('keydown', { key: 'Enter', cancelable: true, ...init });
      field(editor, 'env').dispatchEvent(event);
      return event;
    };
    expect(enter({}).defaultPrevented).toBe(false);
    expect(cell.writes).toBe(0);
    expect(enter({ ctrlKey: true }).defaultPrevented).toBe(true);
    expect(cell.tags).toEqual(['env:A=1']);
  });

  it("marks a bad entry with tags.py's words", () => {
    const editor = new TagEditor();
    const cell = host([]);
    editor.setCell(cell);
    type(field(editor, 'tolerations'), 'gpu:NoSchedule\ngpu:noschedule');
    type(field(editor, 'volumes'), 'data:/tmp');
    expect(editor.apply()).toBeNull();
    expect(cell.writes).toBe(0);
    const error = (id: string) => field(editor, id).parentElement!.querySelector('.nb2pipe-field-error')!.textContent;
    expect(error('tolerations')).toBe(
      "tag 'toleration:gpu:noschedule': 'noschedule' is not a taint effect: expected NoSchedule, PreferNoSchedule, " +
        "NoExecute; did you mean 'NoSchedule'?"
    );
    expect(error('volumes')).toContain("'/tmp' is under /tmp");
    type(field(editor, 'tolerations'), 'gpu:NoSchedule');
    expect(field(editor, 'tolerations').classList.contains('nb2pipe-invalid')).toBe(false);
  });

  it('is disabled without a cell', () => {
    const editor = new TagEditor();
    editor.setCell(null);
    expect(field(editor, 'step').disabled).toBe(true);
    expect(editor.apply()).toBeNull();
  });
});

describe('SettingsForm', () => {
  it('writes metadata.nb2pipe on input, keeping other keys', () => {
    let meta: unknown = { deploy: { gpu: 1 }, image: 'python:3.12' };
    const form = new SettingsForm();
    form.setHost({ get: () => meta, set: value => (meta = value) });
    const input = (key: string) => form.node.querySelector(`[data-nb2pipe-id="setting-${key}"]`) as HTMLInputElement;
    expect(input('image').value).toBe('python:3.12');
    input('kfp_host').value = 'http://localhost:8080';
    input('kfp_host').dispatchEvent(new Event('change'));
    expect(meta).toEqual({ deploy: { gpu: 1 }, image: 'python:3.12', kfp_host: 'http://localhost:8080' });
    input('image').value = '';
    input('image').dispatchEvent(new Event('input'));
    expect(meta).toEqual({ deploy: { gpu: 1 }, kfp_host: 'http://localhost:8080' });
    for (const key of ['pipeline_name', 'experiment_name', 'image', 'kfp_host', 'mlflow_tracking_uri']) {
      expect(input(key)).not.toBeNull();
    }
  });
});

describe('TagEditor across cells', () => {
  function keyed(key: string, initial: string[], cellType = 'code') {
    return Object.assign(host(initial), { key, cellType, label: `Cell ${key} (${cellType})` });
  }
  const note = (editor: TagEditor, id: string) => editor.node.querySelector(`[data-nb2pipe-id="${id}"]`) as HTMLElement;
  const shown = (el: Element) => !el.classList.contains('nb2pipe-hidden');

  it('keeps an edit typed but not applied when another cell is selected, and warns', () => {
    const messages: [string, string][] = [];
    const editor = new TagEditor({ onMessage: (text, kind) => messages.push([text, kind]) });
    const first = keyed('1', ['step:load']);
    const second = keyed('2', []);
    editor.setCell(first);
    expect(shown(note(editor, 'unapplied-note'))).toBe(false);
    type(field(editor, 'step'), 'train');
    expect(shown(note(editor, 'unapplied-note'))).toBe(true);
    editor.setCell(second);
    expect(messages.pop()).toEqual(['Cell 1 (code): tag edits not applied. Select the cell again to apply or discard them.', 'error']);
    expect(field(editor, 'step').value).toBe('');
    expect(first.tags).toEqual(['step:load']); // not written behind the user's back
    expect(editor.unappliedCells).toEqual(['Cell 1 (code)']);
    editor.setCell(keyed('1', first.tags)); // a fresh host for the same cell, as the panel makes
    expect(field(editor, 'step').value).toBe('train');
    expect(shown(note(editor, 'unapplied-note'))).toBe(true);
  });

  it('writes the kept edit on Apply and forgets it', () => {
    const editor = new TagEditor();
    const first = keyed('1', ['step:load']);
    editor.setCell(first);
    type(field(editor, 'step'), 'train');
    editor.setCell(keyed('2', []));
    editor.setCell(first);
    expect(editor.apply()).toEqual(['step:train']);
    expect(first.tags).toEqual(['step:train']);
    expect(editor.unappliedCells).toEqual([]);
    editor.setCell(keyed('2', []));
    editor.setCell(first);
    expect(field(editor, 'step').value).toBe('train');
    expect(shown(note(editor, 'unapplied-note'))).toBe(false);
  });

  it('drops the kept edit on Discard', () => {
    const editor = new TagEditor();
    const first = keyed('1', ['step:load']);
    editor.setCell(first);
    type(field(editor, 'step'), 'train');
    editor.setCell(keyed('2', []));
    editor.setCell(first);
    (editor.node.querySelector('[data-nb2pipe-id="discard-tags"]') as HTMLButtonElement).click();
    expect(field(editor, 'step').value).toBe('load');
    expect(editor.unappliedCells).toEqual([]);
    expect(first.tags).toEqual(['step:load']);
  });

  it('shows a note instead of the form on a markdown cell', () => {
    const editor = new TagEditor();
    const form = editor.node.querySelector('form')!;
    editor.setCell(keyed('1', [], 'markdown'));
    expect(shown(note(editor, 'not-code-note'))).toBe(true);
    expect(note(editor, 'not-code-note').textContent).toContain('ignores tags on markdown');
    expect(shown(form)).toBe(false);
    editor.setCell(keyed('2', [], 'code'));
    expect(shown(note(editor, 'not-code-note'))).toBe(false);
    expect(shown(form)).toBe(true);
  });
});
