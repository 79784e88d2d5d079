/**
 * The laid-out step graph (dag.ts) as an SVG string: nodes are `g` elements with
 * `data-node="ID"`, edges `path`s, each edge label a `text` with `data-edge="SOURCE->TARGET"`.
 * An expanded sub-pipeline is a `g` with `data-group="ID"`: a frame, a header (`data-node="ID"`,
 * a click goes to the `notebook:` cell) and a collapse button; a collapsed one is a node with an
 * expand button. Buttons carry `data-toggle="ID"`; nodes with a cell and buttons are focusable.
 *
 * No JupyterLab imports: jest tests this module directly.
 */

import { GROUP_HEADER, LABEL_CHARS, layout, minDisplayWidth, n, NODE_FONT_PX, elide, PlacedGroup, PlacedNode } from './dag';
import { NOTEBOOK_KIND } from './dagGroups';
import { Graph, GraphNode } from './types';

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
export function renderSvg(graph: Graph, attributes: Record<string, string> = {}, expanded: ReadonlySet<string> = new Set()): string {
  const lay = layout(graph, expanded);
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
  if (lay.groups.length) {
    out.push('<g class="nb2pipe-dag-groups">', ...lay.groups.map(renderFrame), '</g>');
  }
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
        `transform="translate(${n(p.x)},${n(p.y)})"${focusable(p.node)}>` +
        `<rect width="${p.width}" height="${p.height}" rx="${p.node.kind === 'step' ? 4 : p.node.kind === NOTEBOOK_KIND ? 8 : 14}"/>` +
        (p.node.kind === NOTEBOOK_KIND ? collapsedGroupText(p) : nodeText(p)) +
        '</g></g>'
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

function nodeText(p: PlacedNode): string {
  return (
    `<text x="${p.width / 2}" y="${p.height / 2}" dominant-baseline="central" text-anchor="middle">` +
    `${escapeXml(elide(p.node.label || p.node.id, LABEL_CHARS))}</text>`
  );
}

/** Focusable (Enter goes to its cell, as a click does) when the node has a cell to go to. */
function focusable(node: GraphNode): string {
  return node.cells?.length ? ` tabindex="0" role="button" aria-label="${escapeXml(`${node.label}: go to its cell`)}"` : '';
}

/** The notebook a sub-pipeline node runs (its label is `notebook PATH`). */
export function groupName(node: GraphNode): string {
  const label = node.label || node.id;
  return label.startsWith(`${NOTEBOOK_KIND} `) ? label.slice(NOTEBOOK_KIND.length + 1) : label;
}

/** A sub-pipeline's expand (`▸`) or collapse (`▾`) button, `y` from the top of its node or frame. */
function toggleButton(node: GraphNode, open: boolean, y: number): string {
  const action = `${open ? 'collapse' : 'expand'} ${node.id} (${node.label || node.id})`;
  return (
    `<g class="nb2pipe-dag-toggle" data-toggle="${escapeXml(node.id)}" tabindex="0" role="button" ` +
    `aria-expanded="${open}" aria-label="${escapeXml(action)}"><title>${escapeXml(action)}</title>` +
    `<rect x="4" y="${y}" width="${TOGGLE_SIZE}" height="${TOGGLE_SIZE}" rx="3"/>` +
    `<text x="${4 + TOGGLE_SIZE / 2}" y="${y + TOGGLE_SIZE / 2}" dominant-baseline="central" text-anchor="middle">` +
    `${open ? '\u25be' : '\u25b8'}</text></g>`
  );
}

const TOGGLE_SIZE = 18;

/** A collapsed sub-pipeline: its notebook's name beside the expand button. */
function collapsedGroupText(p: PlacedNode): string {
  const left = 4 + TOGGLE_SIZE;
  return (
    toggleButton(p.node, false, (p.height - TOGGLE_SIZE) / 2) +
    `<text x="${n(left + (p.width - left) / 2)}" y="${p.height / 2}" dominant-baseline="central" text-anchor="middle">` +
    `${escapeXml(elide(groupName(p.node), LABEL_CHARS - 3))}</text>`
  );
}

/** An expanded sub-pipeline: a frame, its header (a click goes to the `notebook:` cell) and collapse button. */
function renderFrame(g: PlacedGroup): string {
  const id = escapeXml(g.node.id);
  const chars = Math.max(4, Math.floor((g.width - TOGGLE_SIZE - 16) / (NODE_FONT_PX * 0.6)));
  return (
    `<g class="nb2pipe-dag-group" data-group="${id}" transform="translate(${n(g.x)},${n(g.y)})">` +
    `<rect class="nb2pipe-dag-group-frame" width="${n(g.width)}" height="${n(g.height)}" rx="8"/>` +
    `<g class="nb2pipe-dag-tip"><title>${escapeXml(nodeTitle(g.node))}</title>` +
    `<g class="nb2pipe-dag-group-header" data-node="${id}" data-kind="${NOTEBOOK_KIND}"${focusable(g.node)}>` +
    `<rect width="${n(g.width)}" height="${GROUP_HEADER}" rx="8"/>` +
    `<text x="${TOGGLE_SIZE + 10}" y="${GROUP_HEADER / 2}" dominant-baseline="central">` +
    `${escapeXml(elide(groupName(g.node), chars))}</text></g></g>` +
    toggleButton(g.node, true, (GROUP_HEADER - TOGGLE_SIZE) / 2) +
    '</g>'
  );
}
