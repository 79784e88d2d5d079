/**
 * Lay out the step graph (API.md's Graph) for the sidebar: layers from top to bottom (a
 * node's layer is the longest path to it from a source), nodes of a layer side by side;
 * dagSvg.ts draws it. Deterministic: the same graph gives the same layout.
 *
 * Each edge has a label listing its variables (`a, b +3`), or "after" for an ordering edge.
 * Lifecycle tasks (register, deploy, explain, drift) that no edge reaches are placed after
 * the step they belong to (the step sharing their cells), with a dashed, unlabelled link.
 * A composed notebook's sub-pipelines (dagGroups.ts) are one node each, or, expanded, a
 * frame laid out as a graph of its own inside the level that holds it.
 *
 * No JupyterLab imports: jest tests this module directly.
 */

import { Groups } from './dagGroups';
import { Box, EDGE_FONT_PX, LabelSpot, Point, placeLabels } from './dagLabels';
import { Graph, GraphEdge, GraphNode } from './types';

export { Box, EDGE_FONT_PX, labelBox, LabelSpot, overlaps, placeLabels, Point } from './dagLabels';

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
  /** expanded sub-pipelines, in plan order (outer before inner) */
  groups: PlacedGroup[];
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
  const edges = [...graph.edges, ...implicitEdges(graph)];
  return rank(
    graph.nodes.map(n => n.id),
    edges.map(e => [e.source, e.target])
  );
}

/** :func:`layers` of the nodes `ids` joined by `links` (source, target). */
function rank(ids: readonly string[], links: readonly [string, string][]): Map<string, number> {
  const known = new Set(ids);
  const edges = links.filter(([s, t]) => known.has(s) && known.has(t) && s !== t);
  const preds = new Map<string, string[]>(ids.map(id => [id, []]));
  const succs = new Map<string, string[]>(ids.map(id => [id, []]));
  for (const [source, target] of edges) {
    preds.get(target)!.push(source);
    succs.get(source)!.push(target);
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

/** An expanded sub-pipeline's frame: its header (the group's label) above its members. */
export const GROUP_HEADER = 24;
export const GROUP_PAD = 12;

export interface PlacedGroup {
  node: GraphNode;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** One level of the layout: the top, or an expanded group's inside (coordinates from its corner). */
interface Level {
  width: number;
  height: number;
  nodes: PlacedNode[];
  groups: PlacedGroup[];
  edges: EdgeDraft[];
  rows: string[][];
}

/** An edge's points (start, each waypoint's top and bottom, end) and where its label may sit. */
interface EdgeDraft {
  edge: GraphEdge;
  points: Point[];
  /** label spots in the first waypoint's slot; none: on the first curve */
  slotSpots: Point[];
}

function shift<T extends Point>(item: T, dx: number, dy: number): T {
  return { ...item, x: item.x + dx, y: item.y + dy };
}

/**
 * The graph laid out, each group of `expanded` (notebook node ids) as a frame around its
 * members, the other groups as one node (dagGroups.ts). A level (the top, or a group's inside)
 * is laid out in layers as a flat graph is, an expanded group taking the room of its frame.
 */
export function layout(graph: Graph, expanded: ReadonlySet<string> = new Set()): Layout {
  const links = [...graph.edges, ...implicitEdges(graph)];
  const groups = new Groups(graph, expanded, links);
  const top = layoutLevel(graph, groups, null, groups.edges(links));
  const drafts = top.edges
    .map(d => ({ ...d, points: d.points.map(p => shift(p, MARGIN, MARGIN)), slotSpots: d.slotSpots.map(p => shift(p, MARGIN, MARGIN)) }))
    .sort((a, b) => cmp(a.edge.source, b.edge.source) || cmp(a.edge.target, b.edge.target));
  const placed = new Map(top.nodes.map(p => [p.node.id, shift(p, MARGIN, MARGIN)]));
  const frames = top.groups.map(g => shift(g, MARGIN, MARGIN));
  const candidates: LabelSpot[][] = [];
  const edges: PlacedEdge[] = drafts.map(({ edge: e, points, slotSpots }) => {
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
    const spots = slotSpots.length
      ? slotSpots
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
  const obstacles: Box[] = [
    ...[...placed.values()].map(p => ({ x: p.x, y: p.y, width: p.width, height: p.height })),
    ...frames.map(g => ({ x: g.x, y: g.y, width: g.width, height: GROUP_HEADER }))
  ];
  placeLabels(candidates, obstacles).forEach((spot, k) => {
    edges[k].label = spot.label;
    edges[k].labelX = spot.x;
    edges[k].labelY = spot.y;
  });
  return {
    nodes: graph.nodes.filter(node => placed.has(node.id)).map(node => placed.get(node.id)!),
    groups: graph.nodes.map(node => frames.find(g => g.node.id === node.id)).filter((g): g is PlacedGroup => !!g),
    edges,
    width: top.width + 2 * MARGIN,
    height: top.height + 2 * MARGIN,
    layers: top.rows
  };
}

/** The members of `parent` (null: the top) laid out in layers; `edges`: those between drawn nodes. */
function layoutLevel(graph: Graph, groups: Groups, parent: string | null, edges: readonly GraphEdge[]): Level {
  const items = groups.members(parent);
  const planIndex = new Map(graph.nodes.map((node, i) => [node.id, i]));
  const inner = new Map<string, Level>();
  for (const id of items.filter(id => groups.isOpen(id))) {
    inner.set(id, layoutLevel(graph, groups, id, edges));
  }
  // the edges drawn at this level: those whose ends first meet here; each joins two items
  const own = edges
    .filter(e => groups.meet(e.source, e.target) === parent)
    .map(e => ({ edge: e, from: groups.itemUnder(parent, e.source)!, to: groups.itemUnder(parent, e.target)! }))
    .filter(e => e.from !== null && e.to !== null)
    .sort((a, b) => cmp(a.edge.source, b.edge.source) || cmp(a.edge.target, b.edge.target));
  const layerOf = rank(
    items,
    own.map(e => [e.from, e.to])
  );
  const count = Math.max(0, ...[...layerOf.values()].map(l => l + 1));
  const rows: string[][] = Array.from({ length: count }, () => []);
  for (const id of items) {
    rows[layerOf.get(id)!].push(id);
  }
  const known = new Set(items);
  // An edge that skips layers gets a waypoint in each layer it crosses, laid out like a
  // narrow node, so it runs beside the nodes of those layers instead of through them.
  const waypoints: string[][] = own.map((e, k) => {
    const ids: string[] = [];
    for (let depth = layerOf.get(e.from)! + 1; depth < layerOf.get(e.to)!; depth++) {
      const id = `\u0000${k}:${depth}`;
      rows[depth].push(id);
      ids.push(id);
    }
    return ids;
  });
  const segments: [string, string][] = [];
  own.forEach((e, k) => {
    const chain = [e.from, ...waypoints[k], e.to];
    chain.slice(1).forEach((id, i) => segments.push([chain[i], id]));
  });
  const isWaypoint = (id: string) => !known.has(id);
  const sizeOf = (id: string): { width: number; height: number } => {
    const level = inner.get(id);
    if (level) {
      return { width: level.width + 2 * GROUP_PAD, height: level.height + GROUP_HEADER + GROUP_PAD };
    }
    return { width: isWaypoint(id) ? WAYPOINT_WIDTH : NODE_WIDTH, height: NODE_HEIGHT };
  };
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
    row.reduce((sum, id) => sum + sizeOf(id).width, 0) + Math.max(0, row.length - 1) * NODE_GAP;
  const rowHeights = rows.map(row => Math.max(NODE_HEIGHT, ...row.map(id => sizeOf(id).height)));
  const width = Math.max(NODE_WIDTH, ...rows.map(rowWidth));
  const height = rowHeights.reduce((a, b) => a + b, 0) + Math.max(0, count - 1) * LAYER_GAP;
  const placed = new Map<string, PlacedNode>();
  const frames: PlacedGroup[] = [];
  const drafts: EdgeDraft[] = [];
  const slots = new Map<string, Point & { height: number }>();
  let y = 0;
  rows.forEach((row, depth) => {
    let x = (width - rowWidth(row)) / 2;
    row.forEach((id, order) => {
      const size = sizeOf(id);
      const level = inner.get(id);
      if (isWaypoint(id)) {
        slots.set(id, { x: x + WAYPOINT_WIDTH / 2, y, height: rowHeights[depth] });
      } else if (level) {
        const [dx, dy] = [x + GROUP_PAD, y + GROUP_HEADER];
        frames.push({ node: graph.nodes[planIndex.get(id)!], x, y, ...size }, ...level.groups.map(g => shift(g, dx, dy)));
        level.nodes.forEach(p => placed.set(p.node.id, shift(p, dx, dy)));
        drafts.push(
          ...level.edges.map(d => ({ ...d, points: d.points.map(p => shift(p, dx, dy)), slotSpots: d.slotSpots.map(p => shift(p, dx, dy)) }))
        );
      } else {
        placed.set(id, { node: graph.nodes[planIndex.get(id)!], layer: depth, order, x, y, ...size });
      }
      x += size.width + NODE_GAP;
    });
    y += rowHeights[depth] + LAYER_GAP;
  });
  own.forEach(({ edge }, k) => {
    const s = placed.get(edge.source)!;
    const t = placed.get(edge.target)!;
    const points: Point[] = [{ x: s.x + s.width / 2, y: s.y + s.height }];
    for (const id of waypoints[k]) {
      const slot = slots.get(id)!;
      points.push({ x: slot.x, y: slot.y }, { x: slot.x, y: slot.y + slot.height });
    }
    points.push({ x: t.x + t.width / 2, y: t.y });
    const first = waypoints[k].length ? slots.get(waypoints[k][0])! : null;
    const slotSpots = first ? [first.height / 2, 10, first.height - 10].map(dy => ({ x: first.x, y: first.y + dy })) : [];
    drafts.push({ edge, points, slotSpots });
  });
  return {
    width,
    height,
    nodes: [...placed.values()],
    groups: frames,
    edges: drafts,
    rows: rows.map(row => row.filter(id => !isWaypoint(id)))
  };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function n(value: number): string {
  return String(Math.round(value * 10) / 10);
}
