import {
  BADGE_CLASS,
  NOTHING_TO_COMPILE,
  badgeModel,
  clearBadges,
  nothingToCompile,
  renderBadges,
  stepColour
} from '../cellBadges';
import { Graph } from '../types';

/** What POST /nb2pipe/graph answers for: markdown, imports, functions, params, train, skip, evaluate, metrics. */
const GRAPH: Graph = {
  notebook: 'nb.ipynb',
  pipeline: 'nb',
  nodes: [
    { id: 'train', kind: 'step', label: 'train', cells: [5] },
    { id: 'evaluate', kind: 'step', label: 'evaluate', cells: [7] },
    { id: 'register-churn', kind: 'register', label: 'register churn', cells: [7] }
  ],
  edges: [{ source: 'train', target: 'evaluate', variables: ['y'], kind: 'data' }],
  cells: [
    { cell: 1, step: null, role: 'imports' },
    { cell: 2, step: null, role: 'functions' },
    { cell: 4, step: null, role: 'parameters' },
    { cell: 5, step: 'train', role: 'step' },
    { cell: 6, step: null, role: 'skip' },
    { cell: 7, step: 'evaluate', role: 'step' },
    { cell: 8, step: null, role: 'metrics' }
  ]
};

function cells(count: number): HTMLElement[] {
  return Array.from({ length: count }, () => {
    const node = document.createElement('div');
    node.className = 'jp-Cell';
    document.body.appendChild(node);
    return node;
  });
}

function badgeOf(node: HTMLElement): HTMLElement | null {
  return node.querySelector(`:scope > .${BADGE_CLASS}`);
}

describe('badgeModel', () => {
  it('badges each placed cell with its step or role', () => {
    const model = badgeModel(GRAPH);
    expect([...model.keys()]).toEqual([1, 2, 4, 5, 6, 7, 8]);
    expect(model.get(5)).toMatchObject({ text: 'train', role: 'step', step: 'train', colour: stepColour('train') });
    expect(model.get(1)).toMatchObject({ text: 'imports', role: 'imports', step: null, colour: null });
    expect(model.get(4)!.text).toBe('pipeline-parameters');
    expect(model.get(8)!.text).toBe('pipeline-metrics');
    expect(model.get(6)!.text).toBe('skip');
    expect(model.has(0)).toBe(false); // markdown
  });

  it('falls back to the step nodes when the graph has no cells', () => {
    const { cells: _dropped, ...old } = GRAPH;
    const model = badgeModel(old);
    expect([...model.keys()]).toEqual([5, 7]);
    expect(model.get(7)!.step).toBe('evaluate'); // the register node's cell stays the step's
  });

  it('is empty without a graph', () => {
    expect(badgeModel(null).size).toBe(0);
  });
});

describe('stepColour', () => {
  it('is stable and tells steps apart', () => {
    expect(stepColour('train')).toBe(stepColour('train'));
    expect(stepColour('train')).toMatch(/^hsl\(\d+, 60%, 40%\)$/);
    const names = ['load', 'clean', 'split', 'train', 'evaluate', 'results'];
    const colours = new Set(names.map(stepColour));
    expect(colours.size).toBe(names.length);
  });
});

describe('renderBadges', () => {
  afterEach(() => {
    document.body.innerHTML = '';
  });

  it('puts a coloured step badge and role badges on the cells', () => {
    const nodes = cells(9);
    renderBadges(nodes, GRAPH);
    expect(badgeOf(nodes[0])).toBeNull();
    expect(badgeOf(nodes[3])).toBeNull();
    const train = badgeOf(nodes[5])!;
    expect(train.textContent).toBe('train');
    expect(train.classList.contains('nb2pipe-badge-step')).toBe(true);
    expect(train.getAttribute('data-nb2pipe-step')).toBe('train');
    expect(train.style.backgroundColor).not.toBe('');
    const functions = badgeOf(nodes[2])!;
    expect(functions.textContent).toBe('functions');
    expect(functions.classList.contains('nb2pipe-badge-functions')).toBe(true);
    expect(functions.style.backgroundColor).toBe('');
  });

  it('updates in place, drops badges of cells no longer placed, and dims when stale', () => {
    const nodes = cells(9);
    renderBadges(nodes, GRAPH);
    const first = badgeOf(nodes[5]);
    const moved: Graph = { ...GRAPH, cells: [{ cell: 5, step: 'fit', role: 'step' }] };
    renderBadges(nodes, moved, true);
    expect(badgeOf(nodes[5])).toBe(first);
    expect(first!.textContent).toBe('fit');
    expect(first!.classList.contains('nb2pipe-badge-stale')).toBe(true);
    expect(nodes.filter(n => badgeOf(n)).length).toBe(1);
    expect(nodes[5].querySelectorAll(`.${BADGE_CLASS}`).length).toBe(1);
  });

  it('clears every badge', () => {
    const nodes = cells(9);
    renderBadges(nodes, GRAPH);
    clearBadges(nodes);
    expect(document.querySelectorAll(`.${BADGE_CLASS}`).length).toBe(0);
  });
});

describe('nothingToCompile', () => {
  const empty: Graph = {
    notebook: 'e.ipynb',
    pipeline: 'e',
    nodes: [{ id: 'e', kind: 'step', label: 'e', cells: [0] }],
    edges: [],
    cells: [{ cell: 0, step: 'e', role: 'step' }]
  };

  it('is true for one empty cell (the graph route answers one empty step)', () => {
    expect(nothingToCompile(empty, [''])).toBe(true);
    expect(nothingToCompile(empty, ['  \n'])).toBe(true);
    expect(NOTHING_TO_COMPILE).toContain('tag a cell or add code');
  });

  it('is false once a step cell has code, or without a graph', () => {
    expect(nothingToCompile(empty, ['x = 1'])).toBe(false);
    expect(nothingToCompile(GRAPH, ['', '', '', '', '', 'y = 1', '', '', ''])).toBe(false);
    expect(nothingToCompile(null, [''])).toBe(false);
  });
});

describe('the notebook: cell of a composed notebook', () => {
  const composed: Graph = {
    notebook: 'pipeline.ipynb',
    pipeline: 'pipeline',
    nodes: [
      { id: 'setup', kind: 'step', label: 'setup', cells: [1] },
      { id: 'train', kind: 'notebook', label: 'notebook train.ipynb', cells: [2] },
      { id: 'train.fit', kind: 'step', label: 'fit', cells: [], group: 'train' } as Graph['nodes'][number]
    ],
    edges: [],
    cells: [
      { cell: 1, step: 'setup', role: 'step' },
      { cell: 2, step: null, role: 'notebook' }
    ]
  };

  it('is badged "notebook", its tooltip naming the task and the notebook it runs', () => {
    const badge = badgeModel(composed).get(2)!;
    expect(badge.text).toBe('notebook');
    expect(badge.role).toBe('notebook');
    expect(badge.step).toBeNull();
    expect(badge.title).toBe('task train: runs train.ipynb’s pipeline as a sub-pipeline');
    const cells = [document.createElement('div'), document.createElement('div'), document.createElement('div')];
    renderBadges(cells, composed);
    expect(cells[2].querySelector(`.${BADGE_CLASS}`)!.className).toContain('nb2pipe-badge-notebook');
    // the sub-pipeline's tasks have no cell here: only this notebook's cells are badged
    expect(cells.map(c => c.textContent)).toEqual(['', 'setup', 'notebook']);
  });
});
