/**
 * @jest-environment jsdom
 */
import { formatValue, listedEndpoints, markCells, renderDiagnosticList, renderRunBox } from '../views';
import { Deployment, Diagnostic, Run } from '../types';

const diagnostic = (cell: number | null, message: string): Diagnostic => ({
  code: 'bad-tag',
  severity: 'error',
  message,
  notebook: 'nb.ipynb',
  cell,
  execution_count: null,
  line: null,
  hint: ''
});

describe('renderDiagnosticList', () => {
  it('lists diagnostics by cell and jumps to the cell on click', () => {
    const list = document.createElement('ul');
    const jumps: number[] = [];
    renderDiagnosticList(list, [diagnostic(4, 'late'), diagnostic(null, 'notebook-wide'), diagnostic(2, 'early')], c =>
      jumps.push(c)
    );
    const cells = [...list.querySelectorAll('li[data-cell]')].map(li => li.getAttribute('data-cell'));
    expect(cells).toEqual(['2', '4']);
    (list.querySelector('li[data-cell="4"]') as HTMLElement).click();
    expect(jumps).toEqual([4]);
    expect(list.querySelectorAll('li')).toHaveLength(3);
  });

  it('says when there is nothing wrong', () => {
    const list = document.createElement('ul');
    renderDiagnosticList(list, [], () => undefined);
    expect(list.textContent).toBe('No problems.');
  });
});

describe('renderRunBox', () => {
  it('puts the run status first, then the Kubeflow link and the deployments', () => {
    const box = document.createElement('div');
    const status = document.createElement('div');
    renderRunBox(box, {
      status,
      runUrl: 'http://kfp/#/runs/details/r-1',
      runId: 'r-1',
      deployments: [
        { service: 'cancer', model_uri: 'models:/cancer@champion', target: 'local', url: 'http://127.0.0.1:8080' },
        { service: 'iris', model_uri: 'nb-1', target: 'from the run', url: null }
      ]
    });
    expect(box.firstChild).toBe(status);
    const link = box.querySelector('[data-nb2pipe-id="run-link"]')!;
    expect(link.getAttribute('href')).toBe('http://kfp/#/runs/details/r-1');
    expect(link.textContent).toBe('r-1');
    const cancer = box.querySelector('li[data-service="cancer"]')!;
    expect(cancer.querySelector('a')!.getAttribute('href')).toBe('http://127.0.0.1:8080');
    expect(cancer.getAttribute('title')).toBe('local, models:/cancer@champion');
    expect(box.querySelector('li[data-service="iris"]')!.textContent).toBe('iris: no URL yet');
    expect(box.textContent).not.toContain('No run yet.');
  });

  it('shows a run status alone, without the empty note', () => {
    const box = document.createElement('div');
    const status = document.createElement('div');
    renderRunBox(box, { status, runUrl: null, runId: null, deployments: [] });
    expect([...box.childNodes]).toEqual([status]);
  });

  it('says when nothing ran yet', () => {
    const box = document.createElement('div');
    renderRunBox(box, { status: null, runUrl: null, runId: null, deployments: [] });
    expect(box.textContent).toBe('No run yet.');
  });
});

describe('listedEndpoints', () => {
  const run = (endpoints: { service: string; url: string | null }[]) =>
    ({ run_id: 'nb-1', notebook: 'nb.ipynb', status: 'succeeded', done: true, steps: [], endpoints }) as Run;
  const deployed = (service: string, url: string | null, target = 'local'): Deployment => ({
    service,
    model_uri: `models:/${service}@champion`,
    target,
    url
  });

  it('keeps one row per service and URL (a trailing slash is the same URL), the deployment first', () => {
    const listed = listedEndpoints(
      [deployed('cancer', 'http://127.0.0.1:8080/')],
      run([
        { service: 'cancer', url: 'http://127.0.0.1:8080' },
        { service: 'iris', url: 'http://127.0.0.1:8081' }
      ])
    );
    expect(listed.map(d => `${d.service} ${d.target} ${d.url}`)).toEqual([
      'cancer local http://127.0.0.1:8080/',
      'iris from the run http://127.0.0.1:8081'
    ]);
    expect(listed[1].model_uri).toBe('nb-1');
  });

  it('keeps a service at another URL, and services without a URL yet', () => {
    const listed = listedEndpoints(
      [deployed('cancer', null, 'cluster'), deployed('iris', null, 'cluster')],
      run([{ service: 'cancer', url: 'http://127.0.0.1:8080' }])
    );
    expect(listed.map(d => `${d.service} ${d.target}`)).toEqual(['cancer cluster', 'iris cluster', 'cancer from the run']);
    expect(listedEndpoints([], null)).toEqual([]);
  });
});

describe('formatValue', () => {
  it('formats metric values', () => {
    expect(formatValue(3)).toBe('3');
    expect(formatValue(0.123456)).toBe('0.1235');
    expect(formatValue('x')).toBe('x');
    expect(formatValue([1])).toBe('[1]');
  });
});

describe('markCells', () => {
  it('marks the offending cells and clears marks that no longer apply', () => {
    const cells = [0, 1, 2].map(() => document.createElement('div'));
    markCells(cells, [diagnostic(1, 'bad tag'), diagnostic(1, 'another')]);
    expect(cells[1].classList.contains('nb2pipe-cell-error')).toBe(true);
    expect(cells[1].querySelector('.nb2pipe-cell-message')!.textContent).toContain('bad tag');
    expect(cells[0].classList.length).toBe(0);
    markCells(cells, []);
    expect(cells[1].classList.contains('nb2pipe-cell-error')).toBe(false);
    expect(cells[1].querySelector('.nb2pipe-cell-message')).toBeNull();
  });
});
