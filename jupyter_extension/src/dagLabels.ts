/**
 * Where the graph's edge labels go (dag.ts): each label's box, and the spots chosen so that
 * labels cover no node and no other label where there is room. Pure.
 */

/** The edge labels' font size (style/base.css). */
export const EDGE_FONT_PX = 11;

export interface Point {
  x: number;
  y: number;
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

