import { RunPoller } from '../runs';
import { Run } from '../types';

function run(status: string, done: boolean, steps: Run['steps'] = []): Run {
  return { run_id: 'r1', notebook: 'nb.ipynb', status, done, steps, metrics: {}, failures: [], endpoints: [], log: null };
}

/** Let the awaited fetch resolve. */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await Promise.resolve();
  }
}

describe('RunPoller', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('polls every interval until the run is done, then stops', async () => {
    const answers = [
      run('starting', false),
      run('running', false, [{ name: 'load', status: 'running', seconds: null }]),
      run('succeeded', true, [{ name: 'load', status: 'succeeded', seconds: 1.2 }])
    ];
    const fetchRun = jest.fn(async (id: string) => {
      expect(id).toBe('r1');
      return answers.shift()!;
    });
    const updates: string[] = [];
    const onDone = jest.fn();
    const poller = new RunPoller({ fetchRun, interval: 1000, onUpdate: r => updates.push(r.status), onDone });
    poller.start('r1');
    expect(poller.isPolling).toBe(true);
    await flush();
    expect(fetchRun).toHaveBeenCalledTimes(1);
    expect(updates).toEqual(['starting']);

    jest.advanceTimersByTime(999);
    await flush();
    expect(fetchRun).toHaveBeenCalledTimes(1);
    jest.advanceTimersByTime(1);
    await flush();
    expect(updates).toEqual(['starting', 'running']);

    jest.advanceTimersByTime(1000);
    await flush();
    expect(updates).toEqual(['starting', 'running', 'succeeded']);
    expect(onDone).toHaveBeenCalledTimes(1);
    expect(onDone.mock.calls[0][0].steps[0].status).toBe('succeeded');
    expect(poller.isPolling).toBe(false);

    jest.advanceTimersByTime(10000);
    await flush();
    expect(fetchRun).toHaveBeenCalledTimes(3);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('surfaces an error and stops', async () => {
    const error = Object.assign(new Error('no such run'), { status: 404 });
    const fetchRun = jest
      .fn<Promise<Run>, [string]>()
      .mockResolvedValueOnce(run('running', false))
      .mockRejectedValueOnce(error);
    const onError = jest.fn();
    const onUpdate = jest.fn();
    const poller = new RunPoller({ fetchRun, onUpdate, onError });
    poller.start('r1');
    await flush();
    jest.advanceTimersByTime(1000);
    await flush();
    expect(onUpdate).toHaveBeenCalledTimes(1);
    expect(onError).toHaveBeenCalledWith(error);
    expect(poller.isPolling).toBe(false);
    jest.advanceTimersByTime(5000);
    await flush();
    expect(fetchRun).toHaveBeenCalledTimes(2);
  });

  it('stops on request and ignores an answer in flight', async () => {
    let resolve: (r: Run) => void = () => undefined;
    const fetchRun = jest.fn(() => new Promise<Run>(r => (resolve = r)));
    const onUpdate = jest.fn();
    const poller = new RunPoller({ fetchRun, onUpdate });
    poller.start('r1');
    poller.stop();
    resolve(run('running', false));
    await flush();
    expect(onUpdate).not.toHaveBeenCalled();
    expect(jest.getTimerCount()).toBe(0);
  });

  it('uses the injected timer', async () => {
    const timers: (() => void)[] = [];
    const fetchRun = jest.fn(async () => run('running', false));
    const poller = new RunPoller({
      fetchRun,
      onUpdate: () => undefined,
      interval: 250,
      setTimer: (cb, ms) => {
        expect(ms).toBe(250);
        timers.push(cb);
        return timers.length;
      },
      clearTimer: () => undefined
    });
    poller.start('r1');
    await flush();
    expect(timers).toHaveLength(1);
    timers.shift()!();
    await flush();
    expect(fetchRun).toHaveBeenCalledTimes(2);
    poller.stop();
  });

  it('restarting follows the new run only', async () => {
    const fetchRun = jest.fn(async (id: string) => ({ ...run('running', false), run_id: id }));
    const seen: string[] = [];
    const poller = new RunPoller({ fetchRun, onUpdate: r => seen.push(r.run_id) });
    poller.start('a');
    await flush();
    poller.start('b');
    await flush();
    jest.advanceTimersByTime(1000);
    await flush();
    expect(seen).toEqual(['a', 'b', 'b']);
    expect(poller.runId).toBe('b');
    poller.stop();
  });
});
