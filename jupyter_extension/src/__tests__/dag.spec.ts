import { edgeLabel, implicitEdges, layers, layout } from '../dag';
import { renderSvg } from '../dagSvg';
import { Graph, GraphNode } from '../types';

function node(id: string, kind = 'step', cells: number[] = []): GraphNode {
  return { id, kind, label: id, cells, resources: null, image: null };
}

/** load -> prep -> (forest, boost, linear) -> compare; compare registers and deploys. */
const fanOut: Graph = {
  notebook: 'fan_out.ipynb',
  pipeline: 'fan-out',
  nodes: [
    node('load', 'step', [1]),
    node('prep', 'step', [2]),
    node('forest', 'step', [3]),
    node('boost', 'step', [4]),
    node('linear', 'step', [5]),
    node('compare', 'step', [6, 7]),
    node('register-best', 'register', [7]),
    node('deploy-best', 'deploy', [7])
  ],
  edges: [
    { source: 'boost', target: 'compare', variables: ['boost_score'], kind: 'data' },
    { source: 'forest', target: 'compare', variables: ['forest_score'], kind: 'data' },
    { source: 'linear', target: 'compare', variables: ['linear_score'], kind: 'data' },
    { source: 'load', target: 'prep', variables: ['df'], kind: 'data' },
    { source: 'prep', target: 'boost', variables: ['X_train', 'X_test', 'y_train', 'y_test'], kind: 'data' },
    { source: 'prep', target: 'forest', variables: ['X_train', 'y_train'], kind: 'data' },
    { source: 'prep', target: 'linear', variables: [], kind: 'order' }
  ],
  diagnostics: []
};

function parse(svg: string): SVGSVGElement {
  const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
  expect(doc.getElementsByTagName('parsererror')).toHaveLength(0);
  return doc.documentElement as unknown as SVGSVGElement;
}

describe('layers', () => {
  it('puts each node at its longest path from a source', () => {
    const layer = layers(fanOut);
    expect(layer.get('load')).toBe(0);
    expect(layer.get('prep')).toBe(1);
    expect(layer.get('forest')).toBe(2);
    expect(layer.get('boost')).toBe(2);
    expect(layer.get('linear')).toBe(2);
    expect(layer.get('compare')).toBe(3);
    expect(layer.get('register-best')).toBe(4);
    expect(layer.get('deploy-best')).toBe(5);
  });

  it('uses the longest path, not the shortest', () => {
    const g: Graph = {
      notebook: 'x.ipynb',
      pipeline: 'x',
      nodes: [node('a'), node('b'), node('c')],
      edges: [
        { source: 'a', target: 'b', variables: ['x'], kind: 'data' },
        { source: 'a', target: 'c', variables: ['x'], kind: 'data' },
        { source: 'b', target: 'c', variables: ['y'], kind: 'data' }
      ]
    };
    expect(layers(g).get('c')).toBe(2);
  });

  it('survives a cycle and unknown edge ends', () => {
    const g: Graph = {
      notebook: 'x.ipynb',
      pipeline: 'x',
      nodes: [node('a'), node('b'), node('c')],
      edges: [
        { source: 'b', target: 'c', variables: [], kind: 'order' },
        { source: 'c', target: 'b', variables: [], kind: 'order' },
        { source: 'ghost', target: 'a', variables: [], kind: 'order' }
      ]
    };
    const layer = layers(g);
    expect(layer.get('a')).toBe(0);
    expect(new Set([layer.get('b'), layer.get('c')]).size).toBe(2);
  });
});

describe('implicitEdges', () => {
  it('links lifecycle tasks to their step, deploy after register', () => {
    expect(implicitEdges(fanOut)).toEqual([
      { source: 'compare', target: 'register-best', variables: [], kind: 'lifecycle' },
      { source: 'register-best', target: 'deploy-best', variables: [], kind: 'lifecycle' }
    ]);
  });

  it('adds nothing when the graph links them itself', () => {
    const g = {
      ...fanOut,
      edges: [...fanOut.edges, { source: 'compare', target: 'register-best', variables: [], kind: 'order' }]
    };
    expect(implicitEdges(g).map(e => e.target)).toEqual(['deploy-best']);
  });
});

describe('layout', () => {
  it('places the fan-out side by side in one row', () => {
    const lay = layout(fanOut);
    expect(lay.layers[2].sort()).toEqual(['boost', 'forest', 'linear']);
    const row = lay.nodes.filter(p => p.layer === 2);
    expect(new Set(row.map(p => p.y)).size).toBe(1);
    expect(new Set(row.map(p => p.x)).size).toBe(3);
    const ys = lay.nodes.map(p => p.y);
    expect(lay.nodes.find(p => p.node.id === 'load')!.y).toBe(Math.min(...ys));
    for (const p of lay.nodes) {
      expect(p.x).toBeGreaterThanOrEqual(0);
      expect(p.x + p.width).toBeLessThanOrEqual(lay.width);
      expect(p.y + p.height).toBeLessThanOrEqual(lay.height);
    }
  });

  it('is deterministic', () => {
    expect(layout(fanOut)).toEqual(layout(fanOut));
    expect(renderSvg(fanOut)).toBe(renderSvg(fanOut));
    const shuffled = { ...fanOut, edges: [...fanOut.edges].reverse() };
    expect(renderSvg(shuffled)).toBe(renderSvg(fanOut));
  });
});

describe('edgeLabel', () => {
  it('shows two variables and counts the rest', () => {
    expect(edgeLabel(['df'])).toBe('df');
    expect(edgeLabel(['a', 'b'])).toBe('a, b');
    expect(edgeLabel(['X_train', 'X_test', 'y_train', 'y_test'])).toBe('X_train, X_test +2');
    expect(edgeLabel([])).toBe('after');
  });
});

describe('renderSvg', () => {
  const svg = parse(renderSvg(fanOut, { 'data-nb2pipe-id': 'dag' }));

  it('is an svg with the given attributes', () => {
    expect(svg.tagName).toBe('svg');
    expect(svg.getAttribute('data-nb2pipe-id')).toBe('dag');
  });

  it('has a g per node', () => {
    const ids = Array.from(svg.querySelectorAll('g[data-node]')).map(g => g.getAttribute('data-node'));
    expect(ids).toEqual(fanOut.nodes.map(n => n.id));
    const load = svg.querySelector('g[data-node="load"]')!;
    expect(load.textContent).toBe('load');
    expect(svg.querySelector('g[data-node="register-best"]')!.getAttribute('class')).toContain('nb2pipe-dag-node-register');
    expect(svg.querySelector('g[data-node="deploy-best"]')!.getAttribute('data-kind')).toBe('deploy');
  });

  it('labels every graph edge with its variables', () => {
    const labels = Array.from(svg.querySelectorAll('text[data-edge]'));
    expect(labels.map(t => t.getAttribute('data-edge'))).toEqual([
      'boost->compare',
      'forest->compare',
      'linear->compare',
      'load->prep',
      'prep->boost',
      'prep->forest',
      'prep->linear'
    ]);
    const text = (edge: string) => svg.querySelector(`text[data-edge="${edge}"]`)!.textContent;
    expect(text('load->prep')).toBe('df');
    expect(text('prep->boost')).toBe('X_train, X_test +2');
    expect(text('prep->forest')).toBe('X_train, y_train');
    expect(text('prep->linear')).toBe('after');
  });

  it('draws a path per edge, implicit ones included, and no label for those', () => {
    expect(svg.querySelectorAll('path.nb2pipe-dag-edge')).toHaveLength(9);
    expect(svg.querySelectorAll('path.nb2pipe-dag-edge-lifecycle')).toHaveLength(2);
    expect(svg.querySelector('text[data-edge="compare->register-best"]')).toBeNull();
    expect(svg.querySelectorAll('path.nb2pipe-dag-edge-order')).toHaveLength(1);
  });

  it('escapes text', () => {
    const g: Graph = { notebook: 'x', pipeline: 'x', nodes: [{ ...node('a'), label: '<b>&"' }], edges: [] };
    const out = parse(renderSvg(g));
    expect(out.querySelector('g[data-node="a"]')!.textContent).toBe('<b>&"');
  });

  it('renders an empty graph', () => {
    const out = parse(renderSvg({ notebook: 'x', pipeline: 'x', nodes: [], edges: [] }));
    expect(out.querySelectorAll('g[data-node]')).toHaveLength(0);
  });
});

describe('edges that skip layers', () => {
  /** load -> prep -> train -> evaluate, and prep -> evaluate (the test split) skips train. */
  const skipping: Graph = {
    notebook: 'sklearn_train.ipynb',
    pipeline: 'sklearn-train',
    nodes: [node('load'), node('prep'), node('train'), node('evaluate')],
    edges: [
      { source: 'load', target: 'prep', variables: ['df'], kind: 'data' },
      { source: 'prep', target: 'evaluate', variables: ['X_test', 'y_test'], kind: 'data' },
      { source: 'prep', target: 'train', variables: ['X_train', 'y_train'], kind: 'data' },
      { source: 'train', target: 'evaluate', variables: ['model'], kind: 'data' }
    ],
    diagnostics: []
  };

  it('run beside the nodes they pass, with their label clear of every node', () => {
    const lay = layout(skipping);
    const train = lay.nodes.find(p => p.node.id === 'train')!;
    const long = lay.edges.find(e => e.source === 'prep' && e.target === 'evaluate')!;
    const inside = (x: number, y: number) =>
      lay.nodes.some(p => x >= p.x && x <= p.x + p.width && y >= p.y && y <= p.y + p.height);
    expect(inside(long.labelX, long.labelY)).toBe(false);
    expect(long.labelY).toBeGreaterThanOrEqual(train.y);
    expect(long.labelY).toBeLessThanOrEqual(train.y + train.height);
    // the path goes straight down beside train, through its layer
    expect(long.path).toContain(' L ');
    expect(lay.layers).toEqual([['load'], ['prep'], ['train'], ['evaluate']]);
    expect(lay.width).toBeGreaterThan(train.width + 2 * 12);
  });

  it('stay deterministic', () => {
    expect(renderSvg(skipping)).toBe(renderSvg({ ...skipping, edges: [...skipping.edges].reverse() }));
  });
});
