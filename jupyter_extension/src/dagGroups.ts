/**
 * Sub-pipelines of a composed notebook as the graph draws them. A node of kind `notebook` is a
 * group: the nodes whose `group` is its id are its members (a nested sub-pipeline's members
 * name the inner group, `train.features`). A collapsed group is drawn as one node standing for
 * all it holds; an expanded one as a frame around its members. Edges that meet a hidden member
 * are drawn to the collapsed group that holds it. An edge out of a group comes from the task
 * its `from_tasks` names for each value (or the collapsed group holding that task); without it,
 * as edges into an expanded group, it meets the group's exit members (they feed no member) or
 * entry members (no member feeds them).
 *
 * Pure, no DOM: dag.ts lays out what this module says is shown.
 */

import { Graph, GraphEdge, GraphNode } from './types';

export const NOTEBOOK_KIND = 'notebook';

export class Groups {
  /** `links`: every edge of the graph, the implicit ones included (they tell a group's entries and exits). */
  constructor(graph: Graph, expanded: ReadonlySet<string>, links: readonly GraphEdge[]) {
    this._links = links;
    const nodes = new Map(graph.nodes.map(n => [n.id, n]));
    this._nodes = nodes;
    const groupOf = (node: GraphNode): string | null =>
      node.group && node.group !== node.id && nodes.get(node.group)?.kind === NOTEBOOK_KIND ? node.group : null;
    for (const node of graph.nodes) {
      // a group the graph does not list, or groups holding each other (a broken answer): the top level
      let parent = groupOf(node);
      const seen = new Set([node.id]);
      for (let up = parent; up !== null; up = groupOf(nodes.get(up)!)) {
        if (seen.has(up)) {
          parent = null;
          break;
        }
        seen.add(up);
      }
      this._parent.set(node.id, parent);
      this._members.set(parent, [...(this._members.get(parent) ?? []), node.id]);
    }
    for (const node of graph.nodes) {
      if (node.kind === NOTEBOOK_KIND && expanded.has(node.id) && this.members(node.id).length) {
        this._open.add(node.id);
      }
    }
    // a node inside a collapsed group (or below a hidden one) is not drawn: the outermost
    // collapsed group holding it is
    for (const node of graph.nodes) {
      let shown = node.id;
      for (let up = this.parent(node.id); up !== null; up = this.parent(up)) {
        if (!this._open.has(up)) {
          shown = up;
        }
      }
      this._shown.set(node.id, shown);
    }
  }

  /** The group `id` belongs to (null: the notebook's own pipeline). */
  parent(id: string): string | null {
    return this._parent.get(id) ?? null;
  }

  /** The direct members of group `id` (null: the top level), in plan order. */
  members(id: string | null): string[] {
    return this._members.get(id) ?? [];
  }

  /** Expanded (and not empty): drawn as a frame around its members. */
  isOpen(id: string): boolean {
    return this._open.has(id);
  }

  /** The node drawn in place of `id`: itself, or the outermost collapsed group holding it. */
  shown(id: string): string {
    return this._shown.get(id) ?? id;
  }

  /** Drawn as a node: every group holding it is expanded and it is no expanded group itself. */
  drawn(id: string): boolean {
    return this.shown(id) === id && !this._open.has(id);
  }

  /** `id` or the group holding it that is a direct member of `group`; null when `group` does not hold it. */
  itemUnder(group: string | null, id: string): string | null {
    for (let item: string | null = id; item !== null; item = this.parent(item)) {
      if (this.parent(item) === group) {
        return item;
      }
    }
    return null;
  }

  /** The innermost group (null: the top level) holding both `a` and `b` as different items. */
  meet(a: string, b: string): string | null {
    const above = new Set<string | null>();
    for (let up = this.parent(a); up !== null; up = this.parent(up)) {
      above.add(up);
    }
    for (let up = this.parent(b); up !== null; up = this.parent(up)) {
      if (above.has(up)) {
        return up;
      }
    }
    return null;
  }

  /**
   * The edges between drawn nodes: each edge of `edges` moved to the nodes shown for its ends,
   * an expanded group's end spread over its entries or exits; edges that end up on one node
   * (both ends in one collapsed group) are dropped, those that meet merge their variables.
   */
  edges(edges: readonly GraphEdge[]): GraphEdge[] {
    const merged = new Map<string, GraphEdge>();
    for (const edge of ([] as GraphEdge[]).concat(...edges.map(e => this._byProducer(e)))) {
      if (!this._nodes.has(edge.source) || !this._nodes.has(edge.target)) {
        continue;
      }
      const [source, target] = [this.shown(edge.source), this.shown(edge.target)];
      if (source === target && edge.source !== edge.target) {
        continue;
      }
      for (const from of this.ends(source, 'exits')) {
        for (const to of this.ends(target, 'entries')) {
          const key = `${from}\u0000${to}`;
          const known = merged.get(key);
          if (!known) {
            merged.set(key, { ...edge, source: from, target: to, variables: [...edge.variables] });
          } else if (edge.variables.length) {
            const variables = [...new Set([...known.variables, ...edge.variables])].sort();
            merged.set(key, { ...known, variables, kind: 'data' });
          }
        }
      }
    }
    return [...merged.values()];
  }

  /** The drawn nodes an edge meets for `id`: itself, or an expanded group's entries or exits. */
  ends(id: string, side: 'entries' | 'exits'): string[] {
    if (!this._open.has(id)) {
      return [id];
    }
    const members = this.members(id);
    const linked = new Set<string>();
    for (const [a, b] of this._memberLinks(id)) {
      linked.add(side === 'entries' ? b : a);
    }
    const ends = members.filter(m => !linked.has(m));
    // a cycle among the members (the server reports it) leaves none: every member then
    return ([] as string[]).concat(...(ends.length ? ends : members).map(m => this.ends(m, side)));
  }

  /**
   * `edge` split by the task inside its source group that makes each value (`from_tasks`), those
   * parts starting there; values it names no known task inside the group for stay on the source.
   */
  private _byProducer(edge: GraphEdge): GraphEdge[] {
    const producers = edge.from_tasks;
    if (!producers || !edge.variables.length) {
      return [edge];
    }
    const parts = new Map<string, string[]>();
    for (const variable of edge.variables) {
      const task = Object.prototype.hasOwnProperty.call(producers, variable) ? producers[variable] : null;
      const inside = task !== null && task !== edge.source && this._nodes.has(task) && this._holds(edge.source, task);
      const source = inside ? task : edge.source;
      parts.set(source, [...(parts.get(source) ?? []), variable]);
    }
    return [...parts].map(([source, variables]) => ({ source, target: edge.target, variables, kind: edge.kind }));
  }

  /** Whether group `group` holds `id`, directly or through the groups inside it. */
  private _holds(group: string, id: string): boolean {
    for (let up = this.parent(id); up !== null; up = this.parent(up)) {
      if (up === group) {
        return true;
      }
    }
    return false;
  }

  private _memberLinks(group: string): [string, string][] {
    const links: [string, string][] = [];
    for (const edge of this._links) {
      const [a, b] = [this.itemUnder(group, edge.source), this.itemUnder(group, edge.target)];
      if (a !== null && b !== null && a !== b) {
        links.push([a, b]);
      }
    }
    return links;
  }

  private _nodes: Map<string, GraphNode>;
  private _parent = new Map<string, string | null>();
  private _members = new Map<string | null, string[]>();
  private _open = new Set<string>();
  private _shown = new Map<string, string>();
  private _links: readonly GraphEdge[];
}

/**
 * What a click (or Enter) on the graph's SVG at `target` asks for: to expand or collapse a
 * sub-pipeline (`toggle`), or the node whose cell to go to (`node`); null: neither.
 */
export function dagTarget(target: EventTarget | null): { toggle: string } | { node: string } | null {
  const element = target as Element | null;
  const toggle = element?.closest?.('[data-toggle]');
  if (toggle) {
    return { toggle: toggle.getAttribute('data-toggle') ?? '' };
  }
  const node = element?.closest?.('[data-node]');
  return node ? { node: node.getAttribute('data-node') ?? '' } : null;
}

/** `expanded` with `group` expanded or collapsed (a new set: the caller's state stays as it was). */
export function toggled(expanded: ReadonlySet<string>, group: string): Set<string> {
  const next = new Set(expanded);
  if (!next.delete(group)) {
    next.add(group);
  }
  return next;
}
