import { GROUP_HEADER, GROUP_PAD, layout, PlacedGroup, PlacedNode } from '../dag';
import { dagTarget, Groups, toggled } from '../dagGroups';
import { renderSvg } from '../dagSvg';
import { GraphViewer } from '../graphView';
import { Graph, GraphNode } from '../types';

function node(id: string, kind: string, label: string, cells: number[], group?: string): GraphNode {
  return { id, kind, label, cells, resources: null, image: null, ...(group ? { group } : {}) } as GraphNode;
}

/**
 * examples/compose/pipeline.ipynb as nb2pipe/editor/graph.py describes it, with a `setup -> train`
 * edge added (a value handed to the sub-pipeline): pipeline -> train.ipynb -> features.ipynb.
 */
const composed: Graph = {
  notebook: 'examples/compose/pipeline.ipynb',
  pipeline: 'pipeline',
  nodes: [
    node('setup', 'step', 'setup', [3]),
    node('report', 'step', 'report', [5]),
    node('train', 'notebook', 'notebook train.ipynb', [4]),
    node('train.fit', 'step', 'fit', [], 'train'),
    node('train.features', 'notebook', 'notebook features.ipynb', [], 'train'),
    node('train.features.make_features', 'step', 'make_features', [], 'train.features')
  ],
  edges: [
    { source: 'setup', target: 'report', variables: ['label'], kind: 'data' },
    { source: 'setup', target: 'train', variables: ['label'], kind: 'data' },
    {
      source: 'train',
      target: 'report',
      variables: ['model', 'score'],
      kind: 'data',
      from_tasks: { model: 'train.fit', score: 'train.fit' }
    },
    {
      source: 'train.features',
      target: 'train.fit',
      variables: ['frame'],
      kind: 'data',
      from_tasks: { frame: 'train.features.make_features' }
    }
  ],
  cells: [
    { cell: 3, step: 'setup', role: 'step' },
    { cell: 4, step: null, role: 'notebook' },
    { cell: 5, step: 'report', role: 'step' }
  ]
};

const ids = (nodes: PlacedNode[] | PlacedGroup[]) => nodes.map(p => p.node.id).sort();
const pairs = (lay: ReturnType<typeof layout>) => lay.edges.map(e => `${e.source}->${e.target}:${e.variables.join(',')}`);

function inside(p: { x: number; y: number; width: number; height: number }, g: PlacedGroup): boolean {
  return p.x >= g.x + GROUP_PAD - 0.01 && p.y >= g.y + GROUP_HEADER - 0.01 && p.x + p.width <= g.x + g.width + 0.01 && p.y + p.height <= g.y + g.height + 0.01;
}

describe('sub-pipelines in the layout', () => {
  it('draws each sub-pipeline as one node by default, its edges rerouted to it', () => {
    const lay = layout(composed);
    expect(ids(lay.nodes)).toEqual(['report', 'setup', 'train']);
    expect(lay.groups).toEqual([]);
    expect(pairs(lay)).toEqual(['setup->report:label', 'setup->train:label', 'train->report:model,score']);
    expect(lay.layers).toEqual([['setup'], ['train'], ['report']]);
  });

  it('expands a group into a frame around its members, edges drawn to its entry and exit members', () => {
    const lay = layout(composed, new Set(['train']));
    expect(ids(lay.nodes)).toEqual(['report', 'setup', 'train.features', 'train.fit']);
    expect(ids(lay.groups)).toEqual(['train']);
    // features feeds fit: values come in at features and leave from fit
    expect(pairs(lay)).toEqual([
      'setup->report:label',
      'setup->train.features:label',
      'train.features->train.fit:frame',
      'train.fit->report:model,score'
    ]);
    const frame = lay.groups[0];
    for (const member of lay.nodes.filter(p => p.node.id.startsWith('train.'))) {
      expect(inside(member, frame)).toBe(true);
    }
    for (const other of lay.nodes.filter(p => !p.node.id.startsWith('train.'))) {
      expect(inside(other, frame)).toBe(false);
    }
    const features = lay.nodes.find(p => p.node.id === 'train.features')!;
    const fit = lay.nodes.find(p => p.node.id === 'train.fit')!;
    expect(features.y + features.height).toBeLessThan(fit.y);
    expect(lay.height).toBeGreaterThan(layout(composed).height);
    // each edge ends where its nodes are: out of the source's bottom, into the target's top
    const report = lay.nodes.find(p => p.node.id === 'report')!;
    const edge = lay.edges.find(e => e.source === 'train.fit')!;
    expect(edge.path.startsWith(`M ${fit.x + fit.width / 2} ${fit.y + fit.height} `)).toBe(true);
    expect(edge.path.endsWith(`${report.x + report.width / 2} ${report.y}`)).toBe(true);
  });

  it('nests an expanded group inside its parent frame; an inner group stays hidden while its parent is collapsed', () => {
    const both = layout(composed, new Set(['train', 'train.features']));
    expect(ids(both.nodes)).toEqual(['report', 'setup', 'train.features.make_features', 'train.fit']);
    expect(both.groups.map(g => g.node.id)).toEqual(['train', 'train.features']);
    const [outer, inner] = both.groups;
    expect(inside(inner, outer)).toBe(true);
    const make = both.nodes.find(p => p.node.id === 'train.features.make_features')!;
    expect(inside(make, inner)).toBe(true);
    expect(pairs(both)).toEqual([
      'setup->report:label',
      'setup->train.features.make_features:label',
      'train.features.make_features->train.fit:frame',
      'train.fit->report:model,score'
    ]);
    // the inner group's state alone changes nothing while train is collapsed
    expect(layout(composed, new Set(['train.features']))).toEqual(layout(composed));
  });

  it('keeps the layout deterministic and its nodes apart', () => {
    const expanded = new Set(['train', 'train.features']);
    expect(renderSvg(composed, {}, expanded)).toBe(renderSvg(composed, {}, new Set(['train.features', 'train'])));
    const boxes = layout(composed, expanded).nodes;
    boxes.forEach((a, i) =>
      boxes.slice(i + 1).forEach(b => {
        const apart = a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y;
        expect(apart).toBe(true);
      })
    );
  });

  it('merges edges that meet on one collapsed group and drops those inside it', () => {
    const graph: Graph = {
      ...composed,
      edges: [...composed.edges, { source: 'setup', target: 'train.fit', variables: ['seed'], kind: 'data' }]
    };
    const groups = new Groups(graph, new Set(), graph.edges);
    expect(groups.edges(graph.edges).map(e => `${e.source}->${e.target}:${e.variables.join(',')}`)).toEqual([
      'setup->report:label',
      'setup->train:label,seed',
      'train->report:model,score'
    ]);
    expect(groups.shown('train.features.make_features')).toBe('train');
    expect(groups.itemUnder('train', 'train.features.make_features')).toBe('train.features');
    expect(groups.meet('train.fit', 'train.features.make_features')).toBe('train');
    expect(groups.meet('setup', 'train.fit')).toBeNull();
  });

  it('draws an open group\'s edge out of it from the task that makes each value, not from every sink', () => {
    // train gets a second sink, `check` (it reads fit's score); `report` reads model and score (from
    // fit) and `checked` (from check)
    const graph: Graph = {
      ...composed,
      nodes: [...composed.nodes, node('train.check', 'step', 'check', [], 'train')],
      edges: [
        ...composed.edges.filter(e => e.source !== 'train'),
        {
          source: 'train',
          target: 'report',
          variables: ['checked', 'model', 'score'],
          kind: 'data',
          from_tasks: { checked: 'train.check', model: 'train.fit', score: 'train.fit' }
        },
        { source: 'train.fit', target: 'train.check', variables: ['score'], kind: 'data' }
      ]
    };
    const open = pairs(layout(graph, new Set(['train'])));
    expect(open).toContain('train.fit->report:model,score');
    expect(open).toContain('train.check->report:checked');
    expect(open.filter(p => p.endsWith('->report:checked,model,score'))).toEqual([]);
    // collapsed: one edge from the group, as before
    expect(pairs(layout(graph))).toContain('train->report:checked,model,score');
    // a nested producer inside a collapsed inner group: drawn from that group
    const nested: Graph = {
      ...graph,
      edges: [
        ...graph.edges,
        { source: 'train', target: 'report', variables: ['frame'], kind: 'data', from_tasks: { frame: 'train.features.make_features' } }
      ]
    };
    expect(pairs(layout(nested, new Set(['train'])))).toContain('train.features->report:frame');
    expect(pairs(layout(nested, new Set(['train', 'train.features'])))).toContain('train.features.make_features->report:frame');
  });

  it('without from_tasks (an older server), or naming no task inside the group, draws from the group\'s sinks', () => {
    const graph: Graph = {
      ...composed,
      nodes: [...composed.nodes, node('train.check', 'step', 'check', [], 'train')],
      edges: [
        ...composed.edges.filter(e => e.source !== 'train'),
        { source: 'train', target: 'report', variables: ['model'], kind: 'data' },
        { source: 'train.fit', target: 'train.check', variables: ['score'], kind: 'data' }
      ]
    };
    expect(pairs(layout(graph, new Set(['train'])))).toEqual([
      'setup->report:label',
      'setup->train.features:label',
      'train.check->report:model',
      'train.features->train.fit:frame',
      'train.fit->train.check:score'
    ]);
    const outside = { ...graph, edges: graph.edges.map(e => (e.source === 'train' ? { ...e, from_tasks: { model: 'report' } } : e)) };
    expect(pairs(layout(outside, new Set(['train'])))).toContain('train.check->report:model');
  });

  it('draws a node whose group is not in the graph at the top level', () => {
    const graph: Graph = { ...composed, nodes: [...composed.nodes, node('stray', 'step', 'stray', [], 'gone')] };
    expect(ids(layout(graph).nodes)).toContain('stray');
  });
});

describe('sub-pipelines in the SVG', () => {
  function parse(svg: string): Element {
    const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
    expect(doc.getElementsByTagName('parsererror')).toHaveLength(0);
    return doc.documentElement;
  }

  it('shows a collapsed group as a node with an expand button', () => {
    const root = parse(renderSvg(composed));
    const group = root.querySelector('[data-node="train"]')!;
    expect(group.getAttribute('data-kind')).toBe('notebook');
    expect(group.getAttribute('tabindex')).toBe('0');
    const button = group.querySelector('[data-toggle="train"]')!;
    expect(button.getAttribute('aria-expanded')).toBe('false');
    expect(button.getAttribute('tabindex')).toBe('0');
    expect(group.textContent).toContain('train.ipynb');
    expect(root.querySelector('[data-node="train.fit"]')).toBeNull();
    expect(root.querySelector('[data-group]')).toBeNull();
  });

  it('shows an expanded group as a frame with a header (the notebook: cell) and a collapse button', () => {
    const root = parse(renderSvg(composed, {}, new Set(['train'])));
    const frame = root.querySelector('[data-group="train"]')!;
    const header = frame.querySelector('[data-node="train"]')!;
    expect(header.textContent).toBe('train.ipynb');
    expect(frame.querySelector('[data-toggle="train"]')!.getAttribute('aria-expanded')).toBe('true');
    expect(root.querySelector('[data-node="train.fit"]')).not.toBeNull();
    // members have no cell of this notebook: nothing to focus
    expect(root.querySelector('[data-node="train.fit"]')!.hasAttribute('tabindex')).toBe(false);
    expect(root.querySelector('[data-toggle="train.features"]')!.getAttribute('aria-expanded')).toBe('false');
  });

  it('tells a button press from a click on a node', () => {
    const root = parse(renderSvg(composed));
    const text = root.querySelector('[data-toggle="train"] text')!;
    expect(dagTarget(text)).toEqual({ toggle: 'train' });
    expect(dagTarget(root.querySelector('[data-node="train"] > rect'))).toEqual({ node: 'train' });
    expect(dagTarget(root)).toBeNull();
    expect([...toggled(new Set(['a']), 'b')].sort()).toEqual(['a', 'b']);
    expect([...toggled(new Set(['a', 'b']), 'a')]).toEqual(['b']);
  });
});

describe('GraphViewer and sub-pipelines', () => {
  it('expands on the button (click or Enter) and goes to the notebook: cell from the header; members do nothing', () => {
    const jumps: number[] = [];
    const view = new GraphViewer({ onJump: cell => jumps.push(cell), measure: () => ({ width: 800, height: 600 }) });
    view.setGraph(composed);
    const press = (selector: string, event: Event) => view.node.querySelector(selector)!.dispatchEvent(event);
    press('[data-toggle="train"]', new MouseEvent('click', { bubbles: true }));
    expect([...view.expanded]).toEqual(['train']);
    expect(view.node.querySelector('[data-group="train"]')).not.toBeNull();
    expect(jumps).toEqual([]);
    press('[data-node="train.fit"]', new MouseEvent('click', { bubbles: true }));
    expect(jumps).toEqual([]);
    press('[data-group="train"] [data-node="train"]', new MouseEvent('click', { bubbles: true }));
    expect(jumps).toEqual([4]);
    press('[data-node="setup"]', new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    expect(jumps).toEqual([4, 3]);
    press('[data-toggle="train"]', new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    expect([...view.expanded]).toEqual([]);
    expect(view.node.querySelector('[data-node="train.fit"]')).toBeNull();
  });

  it('asks its owner to toggle when told how, and shows what the owner keeps', () => {
    const asked: string[] = [];
    const view = new GraphViewer({ onJump: () => undefined, onToggle: group => asked.push(group), measure: () => ({ width: 800, height: 600 }) });
    view.setGraph(composed, '', new Set(['train']));
    view.node.querySelector('[data-toggle="train.features"]')!.dispatchEvent(new MouseEvent('click', { bubbles: true }));
    expect(asked).toEqual(['train.features']);
    expect([...view.expanded]).toEqual(['train']);
  });
});
