/**
 * @jest-environment jsdom
 */
import { NotebookPanel } from '@jupyterlab/notebook';

import { cellTagsHost, notebookSettingsHost } from '../panelActions';
import { ProblemsSection, RunSection } from '../panelRunSection';
import { NotebookState } from '../panelState';
import { ActionBar } from '../panelToolbar';
import { Run } from '../types';

/** A stand-in for a NotebookPanel: cell nodes and metadata, nothing else. */
function fakeNotebook(cellCount: number): { panel: NotebookPanel; nodes: HTMLElement[]; metadata: Map<string, unknown> } {
  const nodes = Array.from({ length: cellCount }, () => document.createElement('div'));
  const metadata = new Map<string, unknown>();
  const model = {
    getMetadata: (key: string) => metadata.get(key),
    setMetadata: (key: string, value: unknown) => metadata.set(key, value),
    deleteMetadata: (key: string) => metadata.delete(key)
  };
  const panel = { content: { widgets: nodes.map(node => ({ node })) }, model } as unknown as NotebookPanel;
  return { panel, nodes, metadata };
}

const byId = (root: Element, id: string) => root.querySelector(`[data-nb2pipe-id="${id}"]`);

describe('ActionBar', () => {
  it('has the four buttons and the deploy target, and disables the busy one', () => {
    const clicked: string[] = [];
    const bar = new ActionBar(action => clicked.push(action));
    for (const id of ['compile', 'run', 'submit', 'deploy', 'deploy-target']) {
      expect(byId(bar.node, id)).not.toBeNull();
    }
    (byId(bar.node, 'deploy') as HTMLButtonElement).click();
    expect(clicked).toEqual(['deploy']);

    bar.render(null, false);
    expect((byId(bar.node, 'compile') as HTMLButtonElement).disabled).toBe(true);
    const state = new NotebookState();
    state.busy.add('compile');
    bar.render(state, true);
    expect((byId(bar.node, 'compile') as HTMLButtonElement).disabled).toBe(true);
    expect(byId(bar.node, 'compile')!.classList.contains('nb2pipe-busy')).toBe(true);
    expect((byId(bar.node, 'run') as HTMLButtonElement).disabled).toBe(false);

    expect(bar.deployTarget).toBe('local');
    bar.deployTarget = 'cluster';
    expect(bar.deployTarget).toBe('cluster');
  });
});

describe('ProblemsSection', () => {
  it('lists the diagnostics and marks their cells', () => {
    const jumps: number[] = [];
    const section = new ProblemsSection(cell => jumps.push(cell));
    const { panel, nodes } = fakeNotebook(2);
    const state = new NotebookState();
    state.diagnostics = [{ severity: 'error', message: 'no such step', cell: 1, code: 'x' } as never];
    section.render(state, panel);
    expect(section.list.getAttribute('data-nb2pipe-id')).toBe('diagnostics');
    expect(section.list.textContent).toContain('no such step');
    expect(nodes[1].classList.contains('nb2pipe-cell-error')).toBe(true);
    expect(nodes[0].classList.contains('nb2pipe-cell-error')).toBe(false);

    section.render(null, panel);
    expect(section.list.textContent).toContain('No problems.');
    expect(nodes[1].classList.contains('nb2pipe-cell-error')).toBe(false);
  });
});

describe('RunSection', () => {
  it('shows the run and marks the failed cell', () => {
    const section = new RunSection({ onJumpToCell: () => undefined, onOpenReport: () => undefined });
    const { panel, nodes } = fakeNotebook(2);
    section.render(null, panel);
    expect(section.runBox.textContent).toContain('No run yet.');
    expect(section.deployBox.getAttribute('data-nb2pipe-id')).toBe('deploy-calls');

    const state = new NotebookState();
    const run: Run = {
      run_id: 'nb-1',
      notebook: 'nb.ipynb',
      status: 'failed',
      done: true,
      steps: [{ name: 'train', status: 'failed', seconds: 1, waiting: false }],
      failure: { step: 'train', cell: 0, line: 1, message: 'boom' }
    } as Run;
    state.run = run;
    state.runId = run.run_id;
    section.render(state, panel);
    expect(byId(section.runBox, 'run-status')).not.toBeNull();
    expect(section.runBox.textContent).not.toContain('No run yet.');
    expect(nodes[0].classList.contains('nb2pipe-cell-failed')).toBe(true);
  });
});

describe('notebook hosts', () => {
  it('write the settings and the tags into the model metadata', () => {
    const { panel, metadata } = fakeNotebook(1);
    const settings = notebookSettingsHost(panel);
    settings.set({ kfp_host: 'http://x' });
    expect(settings.get()).toEqual({ kfp_host: 'http://x' });
    settings.set(null);
    expect(metadata.has('nb2pipe')).toBe(false);

    const cellMetadata = new Map<string, unknown>();
    const cell = {
      model: {
        id: 'c1',
        type: 'code',
        getMetadata: (key: string) => cellMetadata.get(key),
        setMetadata: (key: string, value: unknown) => cellMetadata.set(key, value),
        deleteMetadata: (key: string) => cellMetadata.delete(key)
      }
    } as never;
    const host = cellTagsHost(cell, null);
    expect(host.label).toBe('Cell 0 (code)');
    host.setTags(['step:train']);
    expect(host.getTags()).toEqual(['step:train']);
    host.setTags([]);
    expect(cellMetadata.has('tags')).toBe(false);
  });
});
