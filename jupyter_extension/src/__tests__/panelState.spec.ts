import { NotebookState, actionDisabled, runGoing, runningRunId } from '../panelState';
import { RunPoller } from '../runs';
import { Run } from '../types';

function going(): RunPoller {
  const poller = new RunPoller({
    fetchRun: () => new Promise<Run>(() => undefined), // a poll that never answers: still going
    onUpdate: () => undefined,
    setTimer: () => null,
    clearTimer: () => undefined
  });
  poller.start('r1');
  return poller;
}

describe('actionDisabled', () => {
  it('disables Run locally while a run of the notebook is followed, and only that button', () => {
    const state = new NotebookState();
    expect(actionDisabled('run', state, true)).toBe(false);
    state.poller = going();
    expect(runGoing(state)).toBe(true);
    expect(actionDisabled('run', state, true)).toBe(true);
    expect(actionDisabled('compile', state, true)).toBe(false);
    expect(actionDisabled('deploy', state, true)).toBe(false);
    state.poller.stop(); // the run ended (or following it failed): the button comes back
    expect(runGoing(state)).toBe(false);
    expect(actionDisabled('run', state, true)).toBe(false);
  });

  it('disables every button without a notebook and a busy action', () => {
    const state = new NotebookState();
    expect(actionDisabled('compile', null, false)).toBe(true);
    expect(runGoing(null)).toBe(false);
    state.busy.add('submit');
    expect(actionDisabled('submit', state, true)).toBe(true);
    expect(actionDisabled('run', state, true)).toBe(false);
  });
});

describe('runningRunId', () => {
  it('reads the running run from a 409 answer only', () => {
    const body = { message: 'run r7 of nb.ipynb is still running', diagnostics: [], run_id: 'r7' };
    expect(runningRunId(409, body)).toBe('r7');
    expect(runningRunId(422, body)).toBeNull();
    expect(runningRunId(409, { message: 'x', diagnostics: [] })).toBeNull();
    expect(runningRunId(409, null)).toBeNull();
    expect(runningRunId(409, { run_id: 7 })).toBeNull();
  });
});
