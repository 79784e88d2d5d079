// the main-area tab and the server need JupyterLab: the section's own logic does not
jest.mock('../graphWidget', () => ({
  GraphWindow: class {
    open(): void {}
    update(): void {}
  }
}));
jest.mock('../api', () => ({ NB2PipeError: class extends Error {}, post: jest.fn() }));

import { GraphSection } from '../panelGraph';
import { NotebookState } from '../panelState';
import { Graph, GraphNode } from '../types';

function node(id: string, kind: string, label: string, cells: number[], group?: string): GraphNode {
  return { id, kind, label, cells, resources: null, image: null, ...(group ? { group } : {}) } as GraphNode;
}

const composed: Graph = {
  notebook: 'pipeline.ipynb',
  pipeline: 'pipeline',
  nodes: [
    node('setup', 'step', 'setup', [3]),
    node('train', 'notebook', 'notebook train.ipynb', [4]),
    node('train.fit', 'step', 'fit', [], 'train')
  ],
  edges: [{ source: 'setup', target: 'train', variables: ['label'], kind: 'data' }]
};

describe('the sidebar graph of a composed notebook', () => {
  it('keeps which sub-pipelines are expanded per notebook, and the keyboard on the button', () => {
    const [first, second] = [new NotebookState(), new NotebookState()];
    first.graph = composed;
    second.graph = composed;
    let current = first;
    const jumps: number[] = [];
    const section = new GraphSection({ onJump: cell => jumps.push(cell), currentState: () => current });
    document.body.appendChild(section.dag);
    section.render(first, null);
    expect(section.dag.querySelector('[data-node="train.fit"]')).toBeNull();
    const button = section.dag.querySelector('[data-toggle="train"]')!;
    button.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    expect([...first.expandedGroups]).toEqual(['train']);
    expect(section.dag.querySelector('[data-group="train"]')).not.toBeNull();
    expect(section.dag.querySelector('[data-node="train.fit"]')).not.toBeNull();
    expect(document.activeElement?.getAttribute('data-toggle')).toBe('train');
    // a click on the frame's header goes to the notebook: cell; on a member, nowhere
    section.dag.querySelector('[data-group="train"] [data-node="train"]')!.dispatchEvent(new MouseEvent('click', { bubbles: true }));
    section.dag.querySelector('[data-node="train.fit"]')!.dispatchEvent(new MouseEvent('click', { bubbles: true }));
    expect(jumps).toEqual([4]);
    // another notebook has its own state: collapsed
    current = second;
    section.render(second, null);
    expect(second.expandedGroups.size).toBe(0);
    expect(section.dag.querySelector('[data-node="train.fit"]')).toBeNull();
    current = first;
    section.render(first, null);
    expect(section.dag.querySelector('[data-node="train.fit"]')).not.toBeNull();
    section.dag.remove();
  });
});
