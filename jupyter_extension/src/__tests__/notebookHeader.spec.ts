import { IPathSignal, NO_NOTEBOOK, NotebookHeader } from '../notebookHeader';

/** A document context whose path changes as a rename would. */
class FakeContext {
  constructor(public path: string) {}
  slots: { slot: (sender: any, path: string) => void; thisArg: unknown }[] = [];
  pathChanged: IPathSignal = {
    connect: (slot, thisArg) => {
      this.slots.push({ slot, thisArg });
      return true;
    },
    disconnect: (slot, thisArg) => {
      const before = this.slots.length;
      this.slots = this.slots.filter(s => s.slot !== slot || s.thisArg !== thisArg);
      return this.slots.length < before;
    }
  };
  rename(path: string): void {
    this.path = path;
    for (const { slot, thisArg } of this.slots) {
      slot.call(thisArg, this, path);
    }
  }
}

describe('NotebookHeader', () => {
  it('shows the new name after a rename', () => {
    const renamed: string[] = [];
    const header = new NotebookHeader({ onPathChanged: path => renamed.push(path) });
    expect(header.node.textContent).toBe(NO_NOTEBOOK);
    const context = new FakeContext('work/old.ipynb');
    header.follow(context);
    expect(header.node.textContent).toBe('work/old.ipynb');
    context.rename('work/new.ipynb');
    expect(header.node.textContent).toBe('work/new.ipynb');
    expect(header.node.title).toBe('work/new.ipynb');
    expect(renamed).toEqual(['work/new.ipynb']);
  });

  it('stops following the notebook it left', () => {
    const header = new NotebookHeader();
    const first = new FakeContext('a.ipynb');
    const second = new FakeContext('b.ipynb');
    header.follow(first);
    header.follow(second);
    expect(first.slots.length).toBe(0);
    first.rename('c.ipynb');
    expect(header.node.textContent).toBe('b.ipynb');
    header.follow(null);
    expect(second.slots.length).toBe(0);
    expect(header.node.textContent).toBe(NO_NOTEBOOK);
  });
});
