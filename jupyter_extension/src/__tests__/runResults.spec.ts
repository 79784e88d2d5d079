/**
 * @jest-environment jsdom
 */
import {
  IRunActions,
  RunHistoryView,
  formatFailure,
  markFailedCell,
  renderRunHistory,
  renderRunStatus,
  reportUrl,
  stepState
} from '../runResults';
import { Run, RunSummary } from '../types';

function actions(): IRunActions & { jumps: number[]; reports: [string, string | null][] } {
  const jumps: number[] = [];
  const reports: [string, string | null][] = [];
  return { jumps, reports, onJumpToCell: cell => jumps.push(cell), onOpenReport: (id, step) => reports.push([id, step]) };
}

const FAILED: Run = {
  run_id: 'nb-20261201-170501',
  notebook: 'nb.ipynb',
  status: 'failed',
  done: true,
  steps: [
    { name: 'load', status: 'succeeded', seconds: 1.25, waiting: false },
    { name: 'train', status: 'failed', seconds: 3.1, waiting: false },
    { name: 'report', status: 'not run', seconds: null, waiting: false }
  ],
  failures: [{ step: 'train', message: 'ZeroDivisionError: division by zero' }],
  failure: { step: 'train', cell: 4, line: 2, message: 'ZeroDivisionError: division by zero' },
  log: '  load: succeeded (1.2s)\n  train: failed (3.1s)\nTraceback (most recent call last):\n  <b>x</b>\nrun nb failed'
};

describe('reportUrl', () => {
  it('builds the report route under the base URL', () => {
    expect(reportUrl('/user/ann/', 'nb-1')).toBe('/user/ann/nb2pipe/runs/nb-1/report');
    expect(reportUrl('http://h:8888/base', 'nb-1')).toBe('http://h:8888/base/nb2pipe/runs/nb-1/report');
  });

  it('adds the step and the notebook path, encoded', () => {
    expect(reportUrl('/', 'a b/c', { step: 'train model', path: 'dir/my nb.ipynb' })).toBe(
      '/nb2pipe/runs/a%20b%2Fc/report?step=train+model&path=dir%2Fmy+nb.ipynb'
    );
    expect(reportUrl('/', 'r', { step: null, path: 'x&y.ipynb' })).toBe('/nb2pipe/runs/r/report?path=x%26y.ipynb');
  });
});

describe('renderRunStatus', () => {
  it('shows the run, every step with its time, and the metrics', () => {
    const status = renderRunStatus({ ...FAILED, metrics: { accuracy: 0.912345, rows: 10 } }, actions());
    expect(status.getAttribute('data-run')).toBe(FAILED.run_id);
    expect(status.getAttribute('data-done')).toBe('true');
    expect(status.querySelector('.nb2pipe-run-title')?.textContent).toBe(`${FAILED.run_id} failed`);
    const rows = [...status.querySelectorAll('tr[data-step]')].map(r => [r.getAttribute('data-step'), r.getAttribute('data-status')]);
    expect(rows).toEqual([
      ['load', 'succeeded'],
      ['train', 'failed'],
      ['report', 'not run']
    ]);
    const seconds = [...status.querySelectorAll('.nb2pipe-step-seconds')].map(td => td.textContent);
    expect(seconds).toEqual(['1.3 s', '3.1 s', '']);
    const metrics = [...status.querySelectorAll('.nb2pipe-metric')].map(m => [m.getAttribute('data-metric'), m.textContent]);
    expect(metrics).toEqual([
      ['accuracy', 'accuracy = 0.9123'],
      ['rows', 'rows = 10']
    ]);
  });

  it('has no metrics line when the run reports none', () => {
    expect(renderRunStatus(FAILED, actions()).querySelector('.nb2pipe-metrics')).toBeNull();
  });

  it('shows a step waiting for its inputs apart from a running one', () => {
    const run: Run = {
      run_id: 'r',
      notebook: 'nb.ipynb',
      status: 'running',
      done: false,
      steps: [
        { name: 'load', status: 'running', seconds: null, waiting: false },
        { name: 'train', status: 'running', seconds: null, waiting: true }
      ]
    };
    const status = renderRunStatus(run, actions());
    const row = (name: string) => status.querySelector(`tr[data-step="${name}"]`) as HTMLElement;
    expect(row('load').querySelector('.nb2pipe-step-status')?.textContent).toBe('running');
    expect(row('load').classList.contains('nb2pipe-step-running')).toBe(true);
    expect(row('train').querySelector('.nb2pipe-step-status')?.textContent).toBe('waiting for inputs');
    expect(row('train').classList.contains('nb2pipe-step-waiting')).toBe(true);
    expect(row('train').getAttribute('data-status')).toBe('running');
    expect(row('train').getAttribute('data-waiting')).toBe('true');
    // no report while the run goes
    expect(status.querySelector('[data-nb2pipe-id="open-report"]')).toBeNull();
  });

  it('marks only the failed step as failed in a failed run', () => {
    const status = renderRunStatus(FAILED, actions());
    expect(status.getAttribute('data-nb2pipe-id')).toBe('run-status');
    expect(status.getAttribute('data-status')).toBe('failed');
    const failedRows = [...status.querySelectorAll('tr.nb2pipe-step-failed')].map(r => r.getAttribute('data-step'));
    expect(failedRows).toEqual(['train']);
    expect(status.querySelector('tr[data-step="load"]')?.className).toContain('nb2pipe-step-succeeded');
    expect(status.querySelector('tr[data-step="report"]')?.className).toContain('nb2pipe-step-not-run');
    // the run element itself carries no step class a step's colour could inherit from
    expect(status.className).not.toMatch(/nb2pipe-status-failed|nb2pipe-step-failed/);
  });

  it('shows the log as plain text in a pre', () => {
    const status = renderRunStatus(FAILED, actions());
    const log = status.querySelector('pre[data-nb2pipe-id="run-log"]') as HTMLPreElement;
    expect(log.textContent).toBe(FAILED.log);
    expect(log.querySelector('b')).toBeNull();
  });

  it('shows the failure with its cell and goes to the cell', () => {
    const acts = actions();
    const status = renderRunStatus(FAILED, acts);
    const failure = status.querySelector('[data-nb2pipe-id="run-failure"]') as HTMLElement;
    expect(failure.getAttribute('data-cell')).toBe('4');
    expect(failure.textContent).toContain('step train, cell 5, line 2: ZeroDivisionError');
    (failure.querySelector('[data-nb2pipe-id="go-to-cell"]') as HTMLButtonElement).click();
    expect(acts.jumps).toEqual([4]);
    // the failure replaces the failures list (no message twice)
    expect(status.querySelectorAll('.nb2pipe-failure')).toHaveLength(1);
  });

  it('offers no "go to cell" when the step failed outside the notebook code', () => {
    const run: Run = { ...FAILED, failure: { step: 'train', cell: null, line: null, message: 'no output model' } };
    const status = renderRunStatus(run, actions());
    expect(status.querySelector('[data-nb2pipe-id="go-to-cell"]')).toBeNull();
    expect(formatFailure(run.failure!)).toBe('step train: no output model');
  });

  it('opens the run report and a step report', () => {
    const acts = actions();
    const status = renderRunStatus(FAILED, acts);
    (status.querySelector('[data-nb2pipe-id="open-report"]') as HTMLButtonElement).click();
    (status.querySelector('tr[data-step="train"] .nb2pipe-step-report button') as HTMLButtonElement).click();
    expect(acts.reports).toEqual([
      [FAILED.run_id, null],
      [FAILED.run_id, 'train']
    ]);
    // a step that did not run has no report
    expect(status.querySelector('tr[data-step="report"] .nb2pipe-step-report button')).toBeNull();
  });

  it('lists the failures when the run has no `failure`', () => {
    const status = renderRunStatus({ ...FAILED, failure: null }, actions());
    expect([...status.querySelectorAll('.nb2pipe-failure')].map(f => f.textContent)).toEqual([
      'train: ZeroDivisionError: division by zero'
    ]);
  });

  it('stepState keeps other states as they are', () => {
    expect(stepState({ name: 's', status: 'pending', seconds: null, waiting: true })).toBe('pending');
    expect(stepState({ name: 's', status: 'running', seconds: null })).toBe('running');
  });
});

describe('markFailedCell', () => {
  it('marks the failed cell and clears the mark when the failure goes', () => {
    const cells = [0, 1, 2, 3, 4, 5].map(() => document.createElement('div'));
    cells[4].classList.add('nb2pipe-cell-error');
    markFailedCell(cells, FAILED.failure);
    expect(cells.map(c => c.classList.contains('nb2pipe-cell-failed'))).toEqual([false, false, false, false, true, false]);
    expect(cells[4].querySelector('.nb2pipe-cell-run-failure')?.textContent).toContain('ZeroDivisionError');
    markFailedCell(cells, FAILED.failure);
    expect(cells[4].querySelectorAll('.nb2pipe-cell-run-failure')).toHaveLength(1);
    markFailedCell(cells, null);
    expect(cells[4].classList.contains('nb2pipe-cell-failed')).toBe(false);
    expect(cells[4].querySelector('.nb2pipe-cell-run-failure')).toBeNull();
    // a diagnostic's mark is not the run's to clear
    expect(cells[4].classList.contains('nb2pipe-cell-error')).toBe(true);
  });
});

const HISTORY: RunSummary[] = [
  { run_id: 'nb-2', status: 'failed', started: 1_800_000_000, finished: 1_800_000_012.5 },
  { run_id: 'nb-1', status: 'succeeded', started: null, finished: null }
];

describe('renderRunHistory', () => {
  it('lists each run with its status, time and report link', () => {
    const list = document.createElement('ul');
    const acts = actions();
    renderRunHistory(list, HISTORY, acts);
    const items = [...list.querySelectorAll('li[data-run]')] as HTMLElement[];
    expect(items.map(i => [i.getAttribute('data-run'), i.getAttribute('data-status')])).toEqual([
      ['nb-2', 'failed'],
      ['nb-1', 'succeeded']
    ]);
    expect(items[0].querySelector('.nb2pipe-run-time')?.textContent).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(12\.5 s\)$/);
    expect(items[1].querySelector('.nb2pipe-run-time')?.textContent).toBe('');
    (items[1].querySelector('button') as HTMLButtonElement).click();
    expect(acts.reports).toEqual([['nb-1', null]]);
  });

  it('offers no report for a run still going', () => {
    const list = document.createElement('ul');
    renderRunHistory(list, [{ run_id: 'nb-3', status: 'running', started: 1_800_000_000, finished: null }], actions());
    expect(list.querySelector('li[data-run="nb-3"] button')).toBeNull();
    expect(list.querySelector('.nb2pipe-run-time')?.textContent).not.toContain('(');
  });

  it('says when there is no run yet', () => {
    const list = document.createElement('ul');
    renderRunHistory(list, [], actions());
    expect(list.textContent).toBe('No runs yet.');
  });
});

describe('RunHistoryView', () => {
  it('loads the notebook history only when open, and again on refresh', async () => {
    const loaded: string[] = [];
    const view = new RunHistoryView({
      load: async path => {
        loaded.push(path);
        return HISTORY;
      },
      onOpenReport: () => undefined
    });
    await view.setPath('dir/nb.ipynb');
    expect(loaded).toEqual([]);
    view.node.open = true;
    await view.refresh();
    expect(loaded).toEqual(['dir/nb.ipynb']);
    expect(view.node.querySelectorAll('li[data-run]')).toHaveLength(2);
    expect(view.node.getAttribute('data-nb2pipe-id')).toBe('run-history');
  });

  it('shows a load error in place of the list', async () => {
    const view = new RunHistoryView({
      load: () => Promise.reject(new Error('404 no such notebook')),
      onOpenReport: () => undefined
    });
    view.node.open = true;
    await view.setPath('nb.ipynb');
    expect(view.node.textContent).toContain('No history: 404 no such notebook');
    expect(view.node.querySelectorAll('li')).toHaveLength(0);
  });
});
