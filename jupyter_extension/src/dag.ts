/**
 * Lay out the step graph (API.md's Graph) for the sidebar: layers from top to bottom (a
 * node's layer is the longest path to it from a source), nodes of a layer side by side,
 * and render it as an SVG string. Deterministic: the same graph gives the same text.
 *
 * Nodes are `g` elements with `data-node="ID"`; edges are `path`s; each edge has a label
 * `text` with `data-edge="SOURCE->TARGET"` listing its variables (`a, b +3`), or "after"
 * for an ordering edge. Lifecycle tasks (register, deploy, explain, drift) that no edge
 * reaches are placed after the step they belong to (the step sharing their cells), with a
 * dashed, unlabelled link.
 *
 * No JupyterLab imports: jest tests this module directly.
 */

import { Graph, GraphEdge, GraphNode } from './types';

export const NODE_WIDTH = 140;
export const NODE_HEIGHT = 36;
export const LAYER_GAP = 56;
export const NODE_GAP = 24;
export const MARGIN = 12;
export const LABEL_CHARS = 18;
/** An edge label is cut to this many characters where the graph is crowded. */
export const SHORT_LABEL_CHARS = 10;
/** Font sizes of style/base.css (node labels, edge labels) and the smallest one shown. */
export const NODE_FONT_PX = 12;
export const EDGE_FONT_PX = 11;
export const MIN_FONT_PX = 10;
/** The sidebar never draws the graph smaller than this (its box scrolls instead). */
export const MIN_SCALE = MIN_FONT_PX / Math.min(NODE_FONT_PX, EDGE_FONT_PX);

export interface PlacedNode {
  node: GraphNode;
  layer: number;
  /** position within its layer */
  order: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedEdge {
  source: string;
  target: string;
  kind: string;
  variables: string[];
  /** layout-only link from a step to its lifecycle task (not in the graph's edges) */
  implicit: boolean;
  path: string;
  label: string;
  labelX: number;
  labelY: number;
}

export interface Layout {
  nodes: PlacedNode[];
  edges: PlacedEdge[];
  width: number;
  height: number;
  layers: string[][];
}

const LIFECYCLE = new Set(['register', 'deploy', 'explain', 'drift']);

/** `["a","b","c","d"]` -> `a, b +2`. */
export function edgeLabel(variables: readonly string[], max = 2): string {
  if (!variables.length) {
    return 'after';
  }
  const shown = variables.slice(0, max).join(', ');
  return variables.length > max ? `${shown} +${variables.length - max}` : shown;
}

/** `text` cut to `chars` characters, the last one an ellipsis when it was longer. */
export function elide(text: string, chars: number): string {
  return text.length > chars ? text.slice(0, Math.max(0, chars - 1)) + '\u2026' : text;
}

/** The narrowest the sidebar may draw a graph `width` wide, its labels at least MIN_FONT_PX. */
export function minDisplayWidth(width: number): number {
  return Math.ceil(width * MIN_SCALE);
}

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The box of an edge label centred on (x, y) (monospace: ~0.6 em a character, a margin). */
export function labelBox(label: string, x: number, y: number): Box {
  const width = label.length * EDGE_FONT_PX * 0.6 + 6;
  const height = EDGE_FONT_PX + 4;
  return { x: x - width / 2, y: y - height / 2, width, height };
}

export function overlaps(a: Box, b: Box): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

/** A place an edge label may take, and the text it shows there. */
export interface LabelSpot extends Point {
  label: string;
}

/**
 * Picks each label's spot among its candidates (best first), in order: the first one whose
 * box meets no node and no label placed before it, else its first candidate. Candidates
 * list each text an edge may show, longest first. When some labels find no room, all try
 * their second text only, then their third… (a crowded fan-out then fits side by side);
 * the first placement without collisions wins, else the one with fewest.
 */
export function placeLabels(labels: readonly LabelSpot[][], obstacles: readonly Box[]): LabelSpot[] {
  let best = placeGreedily(labels, obstacles);
  const texts = labels.map(spots => [...new Set(spots.map(c => c.label))]);
  const levels = Math.max(0, ...texts.map(t => t.length));
  for (let level = 1; level < levels && best.crowded; level++) {
    const only = labels.map((spots, k) => {
      const text = texts[k][Math.min(level, texts[k].length - 1)];
      return spots.filter(c => c.label === text);
    });
    const attempt = placeGreedily(only, obstacles);
    if (attempt.crowded < best.crowded) {
      best = attempt;
    }
  }
  // give back its longer text to each shortened label that has room for it
  const spots = [...best.spots];
  const boxes = spots.map(c => (c.label ? labelBox(c.label, c.x, c.y) : null));
  labels.forEach((candidates, k) => {
    const others = boxes.filter((b, j): b is Box => b !== null && j !== k);
    const better = candidates.find(
      c =>
        c.label.length > spots[k].label.length &&
        !obstacles.some(o => overlaps(labelBox(c.label, c.x, c.y), o)) &&
        !others.some(o => overlaps(labelBox(c.label, c.x, c.y), o))
    );
    if (better) {
      spots[k] = better;
      boxes[k] = labelBox(better.label, better.x, better.y);
    }
  });
  return spots;
}

function placeGreedily(labels: readonly LabelSpot[][], obstacles: readonly Box[]): { spots: LabelSpot[]; crowded: number } {
  const placed: Box[] = [];
  let crowded = 0;
  const spots = labels.map(candidates => {
    const free = candidates.find(c => {
      const box = labelBox(c.label, c.x, c.y);
      return !c.label || (!obstacles.some(o => overlaps(box, o)) && !placed.some(o => overlaps(box, o)));
    });
    crowded += free ? 0 : 1;
    const chosen = free ?? candidates[0];
    if (chosen.label) {
      placed.push(labelBox(chosen.label, chosen.x, chosen.y));
    }
    return chosen;
  });
  return { spots, crowded };
}

/** A point of the cubic Bézier from p to q that leaves and arrives vertically (`bend` deep). */
function bezierPoint(p: Point, q: Point, bend: number, t: number): Point {
  const u = 1 - t;
  const [a, b, c, d] = [u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t];
  return { x: (a + b) * p.x + (c + d) * q.x, y: a * p.y + b * (p.y + bend) + c * (q.y - bend) + d * q.y };
}

/** Where along its curve a label may sit, best first: the middle, then nearer either end. */
const LABEL_STOPS = [0.5, 0.35, 0.65, 0.25, 0.75];

/**
 * Links a lifecycle task nothing points to from the node it follows: deploy and explain
 * from the register task of the same step when there is one, else from the step itself.
 */
export function implicitEdges(graph: Graph): GraphEdge[] {
  const ids = new Set(graph.nodes.map(n => n.id));
  const reached = new Set(graph.edges.filter(e => ids.has(e.source)).map(e => e.target));
  const steps = graph.nodes.filter(n => !LIFECYCLE.has(n.kind));
  const shares = (a: GraphNode, b: GraphNode) => (a.cells ?? []).some(c => (b.cells ?? []).includes(c));
  const out: GraphEdge[] = [];
  for (const node of graph.nodes) {
    if (!LIFECYCLE.has(node.kind) || reached.has(node.id)) {
      continue;
    }
    const owner = steps.find(step => shares(step, node));
    if (!owner) {
      continue;
    }
    let source = owner.id;
    if (node.kind === 'deploy' || node.kind === 'explain') {
      const register = graph.nodes.find(n => n.kind === 'register' && n.id !== node.id && shares(n, owner));
      if (register) {
        source = register.id;
      }
    }
    out.push({ source, target: node.id, variables: [], kind: 'lifecycle' });
  }
  return out;
}

/** The layer of each node: 0 for sources, else one more than its deepest predecessor. */
export function layers(graph: Graph): Map<string, number> {
  const ids = graph.nodes.map(n => n.id);
  const known = new Set(ids);
  const edges = [...graph.edges, ...implicitEdges(graph)].filter(
    e => known.has(e.source) && known.has(e.target) && e.source !== e.target
  );
  const preds = new Map<string, string[]>(ids.map(id => [id, []]));
  const succs = new Map<string, string[]>(ids.map(id => [id, []]));
  for (const e of edges) {
    preds.get(e.target)!.push(e.source);
    succs.get(e.source)!.push(e.target);
  }
  const layer = new Map<string, number>();
  const waiting = new Map<string, number>(ids.map(id => [id, preds.get(id)!.length]));
  const ready = ids.filter(id => waiting.get(id) === 0);
  while (ready.length) {
    const id = ready.shift()!;
    const depth = Math.max(-1, ...preds.get(id)!.map(p => layer.get(p) ?? -1)) + 1;
    layer.set(id, depth);
    for (const next of succs.get(id)!) {
      const left = waiting.get(next)! - 1;
      waiting.set(next, left);
      if (left === 0) {
        ready.push(next);
      }
    }
  }
  // a cycle (the server reports it): put what is left below everything else, in plan order
  let deepest = Math.max(-1, ...layer.values());
  for (const id of ids) {
    if (!layer.has(id)) {
      layer.set(id, ++deepest);
    }
  }
  return layer;
}

/** Width of the empty slot a long edge takes in each layer it crosses (room for its label). */
export const WAYPOINT_WIDTH = 80;

export interface Point {
  x: number;
  y: number;
}

export function layout(graph: Graph): Layout {
  const layerOf = layers(graph);
  const planIndex = new Map(graph.nodes.map((n, i) => [n.id, i]));
  const count = Math.max(0, ...[...layerOf.values()].map(l => l + 1));
  const rows: string[][] = Array.from({ length: count }, () => []);
  for (const node of graph.nodes) {
    rows[layerOf.get(node.id)!].push(node.id);
  }
  const known = new Set(graph.nodes.map(n => n.id));
  const sortedEdges = [...graph.edges, ...implicitEdges(graph)]
    .filter(e => known.has(e.source) && known.has(e.target))
    .sort((a, b) => cmp(a.source, b.source) || cmp(a.target, b.target));
  // An edge that skips layers gets a waypoint in each layer it crosses, laid out like a
  // narrow node, so it runs beside the nodes of those layers instead of through them.
  const waypoints: string[][] = sortedEdges.map((e, k) => {
    const from = layerOf.get(e.source)!;
    const to = layerOf.get(e.target)!;
    const ids: string[] = [];
    for (let depth = from + 1; depth < to; depth++) {
      const id = `\u0000${k}:${depth}`;
      rows[depth].push(id);
      ids.push(id);
    }
    return ids;
  });
  const segments: [string, string][] = [];
  sortedEdges.forEach((e, k) => {
    const chain = [e.source, ...waypoints[k], e.target];
    chain.slice(1).forEach((id, i) => segments.push([chain[i], id]));
  });
  const isWaypoint = (id: string) => !known.has(id);
  const slotWidth = (id: string) => (isWaypoint(id) ? WAYPOINT_WIDTH : NODE_WIDTH);
  const tieBreak = (id: string) => (isWaypoint(id) ? graph.nodes.length + rows.length : planIndex.get(id)!);
  // order each layer by the mean position of its predecessors (fewer crossings), then plan order
  const position = new Map<string, number>();
  rows.forEach((row, depth) => {
    if (depth > 0) {
      const key = (id: string): number => {
        const ps = segments.filter(([s, t]) => t === id && position.has(s)).map(([s]) => position.get(s)!);
        return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : Number.MAX_SAFE_INTEGER;
      };
      const keys = new Map(row.map(id => [id, key(id)]));
      row.sort((a, b) => keys.get(a)! - keys.get(b)! || tieBreak(a) - tieBreak(b) || cmp(a, b));
    }
    row.forEach((id, i) => position.set(id, i - (row.length - 1) / 2));
  });
  const rowWidth = (row: string[]) =>
    row.reduce((sum, id) => sum + slotWidth(id), 0) + Math.max(0, row.length - 1) * NODE_GAP;
  const width = MARGIN * 2 + Math.max(NODE_WIDTH, ...rows.map(rowWidth));
  const height = MARGIN * 2 + count * NODE_HEIGHT + Math.max(0, count - 1) * LAYER_GAP;
  const placed = new Map<string, PlacedNode>();
  const slots = new Map<string, Point>();
  rows.forEach((row, depth) => {
    let x = (width - rowWidth(row)) / 2;
    const y = MARGIN + depth * (NODE_HEIGHT + LAYER_GAP);
    row.forEach((id, order) => {
      if (isWaypoint(id)) {
        slots.set(id, { x: x + WAYPOINT_WIDTH / 2, y });
      } else {
        placed.set(id, {
          node: graph.nodes[planIndex.get(id)!],
          layer: depth,
          order,
          x,
          y,
          width: NODE_WIDTH,
          height: NODE_HEIGHT
        });
      }
      x += slotWidth(id) + NODE_GAP;
    });
  });
  const candidates: LabelSpot[][] = [];
  const edges: PlacedEdge[] = sortedEdges.map((e, k) => {
    const s = placed.get(e.source)!;
    const t = placed.get(e.target)!;
    const points: Point[] = [{ x: s.x + s.width / 2, y: s.y + s.height }];
    for (const id of waypoints[k]) {
      const slot = slots.get(id)!;
      points.push({ x: slot.x, y: slot.y }, { x: slot.x, y: slot.y + NODE_HEIGHT });
    }
    points.push({ x: t.x + t.width / 2, y: t.y });
    let path = `M ${n(points[0].x)} ${n(points[0].y)}`;
    for (let i = 1; i < points.length; i++) {
      const [p, q] = [points[i - 1], points[i]];
      if (i % 2 === 0) {
        path += ` L ${n(q.x)} ${n(q.y)}`; // straight down through a waypoint's slot
      } else {
        const bend = Math.max(20, (q.y - p.y) / 2);
        path += ` C ${n(p.x)} ${n(p.y + bend)}, ${n(q.x)} ${n(q.y - bend)}, ${n(q.x)} ${n(q.y)}`;
      }
    }
    const implicit = e.kind === 'lifecycle';
    // a long edge's label sits in its first waypoint's slot, clear of every node; a short
    // one on its curve, moved along it when it would cover another label
    const first = waypoints[k].length ? slots.get(waypoints[k][0])! : null;
    const spots = first
      ? [NODE_HEIGHT / 2, 10, NODE_HEIGHT - 10].map(dy => ({ x: first.x, y: first.y + dy }))
      : LABEL_STOPS.map(t => bezierPoint(points[0], points[1], Math.max(20, (points[1].y - points[0].y) / 2), t));
    // where the full label finds no room, a shorter one (`X_train +3`); the tooltip lists all
    const short = edgeLabel(e.variables, 1);
    const texts = implicit ? [''] : [...new Set([edgeLabel(e.variables), short, elide(short, SHORT_LABEL_CHARS)])];
    candidates.push(([] as LabelSpot[]).concat(...texts.map(label => spots.map(p => ({ ...p, label })))));
    return {
      source: e.source,
      target: e.target,
      kind: implicit ? 'lifecycle' : e.variables.length ? 'data' : 'order',
      variables: [...e.variables],
      implicit,
      path,
      label: implicit ? '' : edgeLabel(e.variables),
      labelX: 0,
      labelY: 0
    };
  });
  const nodeBoxes: Box[] = [...placed.values()].map(p => ({ x: p.x, y: p.y, width: p.width, height: p.height }));
  placeLabels(candidates, nodeBoxes).forEach((spot, k) => {
    edges[k].label = spot.label;
    edges[k].labelX = spot.x;
    edges[k].labelY = spot.y;
  });
  return {
    nodes: graph.nodes.map(node => placed.get(node.id)!),
    edges,
    width,
    height,
    layers: rows.map(row => row.filter(id => !isWaypoint(id)))
  };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function n(value: number): string {
  return String(Math.round(value * 10) / 10);
}

export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function nodeTitle(node: GraphNode): string {
  const lines = [`${node.label} (${node.kind})`];
  const r = node.resources;
  if (r) {
    const parts: string[] = [];
    if (r.cpu) {
      parts.push(`cpu ${r.cpu}`);
    }
    if (r.memory) {
      parts.push(`memory ${r.memory}`);
    }
    if (r.gpu) {
      parts.push(`gpu ${r.gpu}${r.gpu_type ? ' ' + r.gpu_type : ''}`);
    }
    if (parts.length) {
      lines.push(parts.join(', '));
    }
  }
  if (node.image) {
    lines.push(`image ${node.image}`);
  }
  if (node.cells?.length) {
    lines.push(`cell${node.cells.length > 1 ? 's' : ''} ${node.cells.map(c => c + 1).join(', ')}`);
  }
  return lines.join('\n');
}

/** The laid-out graph as an SVG document fragment (one `svg` element). */
export function renderSvg(graph: Graph, attributes: Record<string, string> = {}): string {
  const lay = layout(graph);
  const attrs = Object.keys(attributes)
    .sort()
    .map(key => ` ${key}="${escapeXml(attributes[key])}"`)
    .join('');
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="nb2pipe-dag" width="${n(lay.width)}" height="${n(lay.height)}" ` +
      `viewBox="0 0 ${n(lay.width)} ${n(lay.height)}" style="min-width: ${minDisplayWidth(lay.width)}px"${attrs}>`
  );
  out.push(
    '<defs><marker id="nb2pipe-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">' +
      '<path d="M 0 0 L 10 5 L 0 10 z" class="nb2pipe-dag-arrow"/></marker></defs>'
  );
  out.push('<g class="nb2pipe-dag-edges">');
  for (const e of lay.edges) {
    out.push(
      `<path class="nb2pipe-dag-edge nb2pipe-dag-edge-${e.kind}" data-source="${escapeXml(e.source)}" ` +
        `data-target="${escapeXml(e.target)}" d="${e.path}" marker-end="url(#nb2pipe-arrow)"/>`
    );
  }
  out.push('</g><g class="nb2pipe-dag-nodes">');
  for (const p of lay.nodes) {
    const kind = escapeXml(String(p.node.kind));
    // the tooltip sits on a wrapper, so the node's own text is just its label
    out.push(
      `<g class="nb2pipe-dag-tip"><title>${escapeXml(nodeTitle(p.node))}</title>` +
        `<g class="nb2pipe-dag-node nb2pipe-dag-node-${kind}" data-node="${escapeXml(p.node.id)}" data-kind="${kind}" ` +
        `transform="translate(${n(p.x)},${n(p.y)})">` +
        `<rect width="${p.width}" height="${p.height}" rx="${p.node.kind === 'step' ? 4 : 14}"/>` +
        `<text x="${p.width / 2}" y="${p.height / 2}" dominant-baseline="central" text-anchor="middle">` +
        `${escapeXml(elide(p.node.label || p.node.id, LABEL_CHARS))}</text></g></g>`
    );
  }
  out.push('</g><g class="nb2pipe-dag-labels">');
  for (const e of lay.edges) {
    if (e.implicit) {
      continue;
    }
    out.push(
      `<g class="nb2pipe-dag-tip"><title>${escapeXml(e.variables.length ? e.variables.join(', ') : 'runs after, no data')}</title>` +
        `<text class="nb2pipe-dag-label nb2pipe-dag-label-${e.kind}" data-edge="${escapeXml(`${e.source}->${e.target}`)}" ` +
        `x="${n(e.labelX)}" y="${n(e.labelY)}" dominant-baseline="central" text-anchor="middle">` +
        `${escapeXml(e.label)}</text></g>`
    );
  }
  out.push('</g></svg>');
  return out.join('');
}
