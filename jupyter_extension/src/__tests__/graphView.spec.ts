import { renderSvg } from '../dagSvg';
import { labelBox, layout, MIN_FONT_PX, NODE_FONT_PX, EDGE_FONT_PX, minDisplayWidth, elide, overlaps, placeLabels } from '../dag';
import {
  fitViewBox,
  firstCellOf,
  formatViewBox,
  GraphViewer,
  MAX_ZOOM,
  MIN_ZOOM,
  panBy,
  scaleOf,
  toGraphPoint,
  zoomAt
} from '../graphView';
import { Graph, GraphNode } from '../types';

function node(id: string, cells: number[] = [], label = id): GraphNode {
  return { id, kind: 'step', label, cells, resources: null, image: null };
}

/** prep fans out to five models, each fed several variables (labels that used to collide). */
const fiveModels: Graph = {
  notebook: 'kale_five_models.ipynb',
  pipeline: 'five-models',
  nodes: [
    node('load', [1]),
    node('prep', [2, 3]),
    ...['forest', 'boost', 'linear', 'svm', 'knn'].map((m, i) => node(m, [4 + i])),
    node('compare', [9], 'compare_all_the_models_and_pick_one')
  ],
  edges: [
    { source: 'load', target: 'prep', variables: ['df'], kind: 'data' },
    ...['boost', 'forest', 'knn', 'linear', 'svm'].map(m => ({
      source: 'prep',
      target: m,
      variables: ['X_train', 'X_test', 'y_train', 'y_test'],
      kind: 'data'
    })),
    ...['boost', 'forest', 'knn', 'linear', 'svm'].map(m => ({
      source: m,
      target: 'compare',
      variables: [`${m}_accuracy`],
      kind: 'data'
    }))
  ]
};

describe('view-box math', () => {
  const viewport = { width: 800, height: 600 };

  it('fits the whole graph, centred, never enlarged past 1:1', () => {
    const big = fitViewBox({ width: 1600, height: 400 }, viewport, 0);
    expect(scaleOf(big, viewport)).toBeCloseTo(0.5);
    expect(big.x).toBeCloseTo(0);
    expect(big.y + big.height / 2).toBeCloseTo(200);
    expect(big.width / big.height).toBeCloseTo(800 / 600);
    const small = fitViewBox({ width: 100, height: 100 }, viewport);
    expect(scaleOf(small, viewport)).toBeCloseTo(1);
    expect(small.x + small.width / 2).toBeCloseTo(50);
  });

  it('keeps the margin around a fitted graph', () => {
    const box = fitViewBox({ width: 768, height: 100 }, viewport, 16);
    expect(box.x).toBeCloseTo(-16);
  });

  it('zooms around a point that stays put on screen', () => {
    const box = { x: 0, y: 0, width: 800, height: 600 };
    const at = { x: 200, y: 150 };
    const zoomed = zoomAt(box, 2, at, viewport);
    expect(scaleOf(zoomed, viewport)).toBeCloseTo(2);
    // the point was a quarter of the way across the screen and still is
    expect((at.x - zoomed.x) / zoomed.width).toBeCloseTo(0.25);
    expect((at.y - zoomed.y) / zoomed.height).toBeCloseTo(0.25);
    const back = zoomAt(zoomed, 0.5, at, viewport);
    expect(back.x).toBeCloseTo(0);
    expect(back.width).toBeCloseTo(800);
  });

  it('holds the zoom within its limits', () => {
    const box = { x: 0, y: 0, width: 800, height: 600 };
    expect(scaleOf(zoomAt(box, 1000, { x: 0, y: 0 }, viewport), viewport)).toBeCloseTo(MAX_ZOOM);
    expect(scaleOf(zoomAt(box, 0.0001, { x: 0, y: 0 }, viewport), viewport)).toBeCloseTo(MIN_ZOOM);
  });

  it('pans with the pointer, in graph units', () => {
    const box = { x: 10, y: 20, width: 400, height: 300 };
    const moved = panBy(box, 80, -60, viewport);
    expect(moved).toEqual({ x: 10 - 40, y: 20 + 30, width: 400, height: 300 });
    expect(toGraphPoint(box, 400, 300, viewport)).toEqual({ x: 210, y: 170 });
    expect(formatViewBox({ x: 1 / 3, y: 0, width: 10, height: 5 })).toBe('0.33 0 10 5');
  });
});

describe('the sidebar stays legible', () => {
  it('elides long labels', () => {
    expect(elide('compare_all_the_models', 10)).toBe('compare_a\u2026');
    expect(elide('short', 10)).toBe('short');
  });

  it('never draws labels below the minimum font size', () => {
    const width = layout(fiveModels).width;
    expect(width).toBeGreaterThan(234);
    expect((minDisplayWidth(width) / width) * Math.min(NODE_FONT_PX, EDGE_FONT_PX)).toBeGreaterThanOrEqual(MIN_FONT_PX);
  });

  it('keeps the sidebar SVG at least that wide (its box scrolls) and explains elided labels', () => {
    const doc = new DOMParser().parseFromString(renderSvg(fiveModels), 'image/svg+xml');
    const root = doc.documentElement;
    expect(root.getAttribute('style')).toBe(`min-width: ${minDisplayWidth(layout(fiveModels).width)}px`);
    const compare = root.querySelector('[data-node="compare"]')!;
    expect(compare.querySelector('text')!.textContent).toBe(elide('compare_all_the_models_and_pick_one', 18));
    expect(compare.parentElement!.querySelector('title')!.textContent).toContain('compare_all_the_models_and_pick_one');
  });

  it('places edge labels clear of each other and of the nodes', () => {
    const lay = layout(fiveModels);
    const boxes = lay.edges.filter(e => e.label).map(e => labelBox(e.label, e.labelX, e.labelY));
    expect(boxes).toHaveLength(fiveModels.edges.length);
    // the fan-out's labels are shortened where the full ones would collide
    expect(lay.edges.find(e => e.target === 'forest')!.label).toMatch(/^X_train(, X_test)? \+\d$/);
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        expect(overlaps(boxes[i], boxes[j])).toBe(false);
      }
      for (const p of lay.nodes) {
        expect(overlaps(boxes[i], p)).toBe(false);
      }
    }
  });

  it('falls back to the first candidate when nothing is free', () => {
    const wall = [{ x: -100, y: -100, width: 200, height: 200 }];
    const spot = (x: number, y: number, label = 'abc') => ({ x, y, label });
    expect(placeLabels([[spot(0, 0), spot(5, 5)]], wall)).toEqual([spot(0, 0)]);
    const two = placeLabels([[spot(0, 0)], [spot(0, 0), spot(0, 40)]], []);
    expect(two[1]).toEqual(spot(0, 40));
  });
});

describe('GraphViewer', () => {
  const viewport = { width: 800, height: 600 };

  function viewer(): { view: GraphViewer; jumps: number[] } {
    const jumps: number[] = [];
    const view = new GraphViewer({ onJump: cell => jumps.push(cell), measure: () => viewport });
    document.body.appendChild(view.node);
    view.setGraph(fiveModels);
    return { view, jumps };
  }

  function svg(view: GraphViewer): SVGSVGElement {
    return view.node.querySelector('svg[data-nb2pipe-id="graph-view-svg"]') as SVGSVGElement;
  }

  it('shows the graph fitted, every node and edge label there', () => {
    const { view } = viewer();
    const el = svg(view);
    expect(el.querySelectorAll('[data-node]')).toHaveLength(fiveModels.nodes.length);
    expect(el.querySelectorAll('[data-edge]')).toHaveLength(fiveModels.edges.length);
    expect(el.getAttribute('width')).toBe('100%');
    expect(el.getAttribute('viewBox')).toBe(formatViewBox(view.viewBox!));
    const lay = layout(fiveModels);
    expect(view.viewBox).toEqual(fitViewBox({ width: lay.width, height: lay.height }, viewport));
    expect(view.node.textContent).toContain('five-models (kale_five_models.ipynb)');
  });

  it('zooms with its buttons and the wheel, and fits again', () => {
    const { view } = viewer();
    const fitted = view.viewBox!;
    (view.node.querySelector('[data-nb2pipe-id="graph-zoom-in"]') as HTMLButtonElement).click();
    expect(scaleOf(view.viewBox!, viewport)).toBeCloseTo(scaleOf(fitted, viewport) * 1.25);
    const canvas = view.node.querySelector('[data-nb2pipe-id="graph-view-canvas"]')!;
    canvas.dispatchEvent(new WheelEvent('wheel', { deltaY: 200, clientX: 0, clientY: 0, cancelable: true }));
    expect(scaleOf(view.viewBox!, viewport)).toBeLessThan(scaleOf(fitted, viewport) * 1.25);
    (view.node.querySelector('[data-nb2pipe-id="graph-fit"]') as HTMLButtonElement).click();
    expect(view.viewBox).toEqual(fitted);
  });

  it('keeps the zoom when the same graph comes again', () => {
    const { view } = viewer();
    view.zoom(2);
    const zoomed = view.viewBox;
    view.setGraph({ ...fiveModels });
    expect(view.viewBox).toEqual(zoomed);
  });

  it('goes to the first cell of a clicked node; a drag pans and does not', () => {
    const { view, jumps } = viewer();
    const prep = view.node.querySelector('[data-node="prep"] rect')!;
    prep.dispatchEvent(new MouseEvent('click', { bubbles: true }));
    expect(jumps).toEqual([2]);
    const before = view.viewBox!;
    const canvas = view.node.querySelector('[data-nb2pipe-id="graph-view-canvas"]')!;
    canvas.dispatchEvent(new MouseEvent('mousedown', { bubbles: true, button: 0, clientX: 100, clientY: 100 }));
    window.dispatchEvent(new MouseEvent('mousemove', { clientX: 160, clientY: 100 }));
    window.dispatchEvent(new MouseEvent('mouseup', {}));
    prep.dispatchEvent(new MouseEvent('click', { bubbles: true }));
    expect(jumps).toEqual([2]);
    expect(view.viewBox!.x).toBeLessThan(before.x);
  });

  it('says why there is no graph', () => {
    const { view } = viewer();
    view.setGraph(null, 'No graph: boom');
    expect(svg(view)).toBeNull();
    expect(view.node.textContent).toContain('No graph: boom');
    expect(firstCellOf(fiveModels, 'ghost')).toBeNull();
    expect(firstCellOf(fiveModels, 'compare')).toBe(9);
  });
});
