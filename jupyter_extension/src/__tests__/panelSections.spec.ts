/**
 * @jest-environment jsdom
 */
import { NotebookPanel } from '@jupyterlab/notebook';

import { cellTagsHost, notebookSettingsHost } from '../panelActions';
import { ProblemsSection, RunSection } from '../panelRunSection';
import { NotebookState } from '../panelState';
import { ActionBar } from '../panelToolbar';
import { DeployResult, Run } from '../types';

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

describe('RunSection and a deployed model', () => {
  const url = 'http://127.0.0.1:8080';
  // GET /nb2pipe/runs/RUN_ID of a run whose deploy task served `cancer` locally (RunView.to_json)
  const deployedRun = {
    run_id: 'lifecycle-1',
    notebook: 'lifecycle.ipynb',
    status: 'succeeded',
    done: true,
    steps: [
      { name: 'train', status: 'succeeded', seconds: 2.5, waiting: false },
      { name: 'register-cancer-classifier', status: 'succeeded', seconds: 1.2, waiting: false },
      { name: 'deploy-cancer', status: 'succeeded', seconds: 3.1, waiting: false }
    ],
    metrics: { accuracy: 0.96 },
    failures: [],
    endpoints: [{ service: 'cancer', url }],
    log: null,
    failure: null
  } as Run;
  // POST /nb2pipe/deploy afterwards (Deployed.to_json): the same service, restarted at its port
  const deployAnswer = (target: string, at: string | null): DeployResult => ({
    deployments: [
      {
        service: 'cancer',
        model_uri: 'models:/cancer-classifier@champion',
        target,
        url: at,
        call: {
          base_url: at,
          predict_path: '/v1/models/cancer:predict',
          infer_path: '/v2/models/cancer/infer',
          metadata_path: '/v2/models/cancer',
          inputs: [{ name: 'mean radius', type: 'double', datatype: 'FP64' }],
          curl: null,
          curl_note: 'no example input is kept with the model'
        }
      }
    ]
  });
  const rows = (section: RunSection) => [...section.runBox.querySelectorAll('[data-nb2pipe-id="endpoints"] li')];

  function shown(deployments: DeployResult | null): RunSection {
    const section = new RunSection({ onJumpToCell: () => undefined, onOpenReport: () => undefined });
    const state = new NotebookState();
    state.run = deployedRun;
    state.runId = deployedRun.run_id;
    state.deployments = deployments?.deployments ?? [];
    section.render(state, fakeNotebook(1).panel);
    return section;
  }

  it('lists the run\'s endpoint once', () => {
    const section = shown(null);
    expect(rows(section).map(li => li.textContent)).toEqual([`cancer: ${url}`]);
  });

  it('lists a service the run served and Deploy restarted at the same URL once, not twice', () => {
    const section = shown(deployAnswer('local', url));
    expect(rows(section).map(li => li.textContent)).toEqual([`cancer: ${url}`]);
    expect(section.runBox.querySelectorAll(`a[href="${url}"]`)).toHaveLength(1);
    expect(rows(section)[0].getAttribute('data-target')).toBe('local');
    // the Deploy's card still says how to call it
    expect(byId(section.deployBox, 'deploy-call')!.getAttribute('data-service')).toBe('cancer');
  });

  it('labels the rows of one service at two URLs with where each comes from', () => {
    const cluster = 'http://cancer.models.example.com';
    const section = shown(deployAnswer('cluster', cluster));
    expect(rows(section).map(li => li.textContent)).toEqual([`cancer (cluster): ${cluster}`, `cancer (from the run): ${url}`]);
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
