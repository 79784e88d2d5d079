import { cellSeverities, formatDiagnostic, groupByCell, summarize } from '../diagnostics';
import { Diagnostic } from '../types';

function diag(partial: Partial<Diagnostic>): Diagnostic {
  return {
    code: 'undefined-name',
    severity: 'error',
    message: 'm',
    notebook: 'nb.ipynb',
    cell: null,
    execution_count: null,
    line: null,
    hint: '',
    ...partial
  };
}

describe('formatDiagnostic', () => {
  it('says cell (from 1), line, message and hint', () => {
    const d = diag({ cell: 4, line: 3, message: "step 'forest' uses 'X_tran'", hint: "did you mean 'X_train'?" });
    expect(formatDiagnostic(d)).toBe("cell 5, line 3: step 'forest' uses 'X_tran' (did you mean 'X_train'?)");
  });

  it('adds the execution count and leaves out what is unknown', () => {
    expect(formatDiagnostic(diag({ cell: 0, execution_count: 12, line: 1, message: 'x' }))).toBe('cell 1 [12], line 1: x');
    expect(formatDiagnostic(diag({ cell: 2, message: 'x', hint: null }))).toBe('cell 3: x');
    expect(formatDiagnostic(diag({ message: 'no steps', hint: 'tag a cell' }))).toBe('no steps (tag a cell)');
    expect(formatDiagnostic(diag({ line: 7, message: 'x' }))).toBe('line 7: x');
  });
});

describe('groupByCell', () => {
  it('groups by cell, notebook-wide first, errors before warnings', () => {
    const a = diag({ cell: 3, severity: 'warning', message: 'a' });
    const b = diag({ cell: 1, message: 'b' });
    const c = diag({ cell: 3, message: 'c' });
    const d = diag({ cell: null, message: 'd' });
    const e = diag({ cell: 3, severity: 'warning', message: 'e' });
    expect(groupByCell([a, b, c, d, e])).toEqual([
      { cell: null, diagnostics: [d] },
      { cell: 1, diagnostics: [b] },
      { cell: 3, diagnostics: [c, a, e] }
    ]);
    expect(groupByCell([])).toEqual([]);
  });
});

describe('cellSeverities and summarize', () => {
  it('keeps the worst severity per cell', () => {
    const out = cellSeverities([
      diag({ cell: 2, severity: 'warning' }),
      diag({ cell: 2, severity: 'error' }),
      diag({ cell: 2, severity: 'warning' }),
      diag({ cell: 5, severity: 'warning' }),
      diag({ cell: null })
    ]);
    expect([...out.entries()]).toEqual([
      [2, 'error'],
      [5, 'warning']
    ]);
  });

  it('counts', () => {
    expect(summarize([])).toBe('no problems');
    expect(summarize([diag({}), diag({}), diag({ severity: 'warning' })])).toBe('2 errors, 1 warning');
    expect(summarize([diag({ severity: 'warning' })])).toBe('1 warning');
  });
});
