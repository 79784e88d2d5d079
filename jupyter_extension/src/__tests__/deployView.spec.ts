import { copyText, INPUTS_SHOWN, joinUrl, renderDeployCalls } from '../deployView';
import { DeployCall, Deployment } from '../types';

function call(overrides: Partial<DeployCall> = {}): DeployCall {
  return {
    base_url: 'http://127.0.0.1:8080',
    predict_path: '/v1/models/cancer:predict',
    infer_path: '/v2/models/cancer/infer',
    metadata_path: '/v2/models/cancer',
    inputs: [
      { name: 'mean radius', type: 'double', datatype: 'FP64' },
      { name: 'age', type: 'long', datatype: 'INT64' }
    ],
    curl: `curl -s -X POST http://127.0.0.1:8080/v1/models/cancer:predict -H 'Content-Type: application/json' -d '{"instances": [[1.0, 2]]}'`,
    curl_note: null,
    ...overrides
  };
}

function deployment(c: DeployCall | null | undefined, service = 'cancer'): Deployment {
  return { service, model_uri: 'models:/cancer/3', target: 'local', url: c?.base_url ?? null, call: c };
}

function render(deployments: Deployment[]): HTMLElement {
  const box = document.createElement('div');
  document.body.appendChild(box);
  renderDeployCalls(box, deployments);
  return box;
}

describe('renderDeployCalls', () => {
  it('shows the service, its v1 and v2 URLs, the inputs and the curl', () => {
    const box = render([deployment(call())]);
    const card = box.querySelector('[data-nb2pipe-id="deploy-call"]')!;
    expect(card.getAttribute('data-service')).toBe('cancer');
    expect(card.textContent).toContain('cancer (local)');
    const links = [...card.querySelectorAll('a')].map(a => a.getAttribute('href'));
    expect(links).toEqual([
      'http://127.0.0.1:8080/v1/models/cancer:predict',
      'http://127.0.0.1:8080/v2/models/cancer/infer',
      'http://127.0.0.1:8080/v2/models/cancer'
    ]);
    const rows = [...card.querySelectorAll('[data-nb2pipe-id="deploy-inputs"] tr[data-input]')];
    expect(rows.map(r => [...r.querySelectorAll('td')].map(td => td.textContent))).toEqual([
      ['mean radius', 'double', 'FP64'],
      ['age', 'long', 'INT64']
    ]);
    expect((card.querySelector('details') as HTMLDetailsElement).open).toBe(true);
    expect(card.querySelector('[data-nb2pipe-id="deploy-curl"]')!.textContent).toBe(call().curl);
    expect(card.querySelector('[data-nb2pipe-id="deploy-curl-note"]')).toBeNull();
  });

  it('folds a wide input schema', () => {
    const inputs = Array.from({ length: INPUTS_SHOWN + 22 }, (_, i) => ({ name: `f${i}`, type: 'double', datatype: 'FP64' }));
    const box = render([deployment(call({ inputs }))]);
    const details = box.querySelector('details') as HTMLDetailsElement;
    expect(details.open).toBe(false);
    expect(details.querySelector('summary')!.textContent).toBe('30 inputs');
    expect(details.querySelectorAll('tr[data-input]')).toHaveLength(30);
  });

  it('says why there is no curl, and shows paths when there is no URL yet', () => {
    const note = 'no URL yet: the InferenceService is not ready';
    const box = render([{ ...deployment(call({ base_url: null, curl: null, curl_note: note })), target: 'cluster' }]);
    expect(box.querySelector('[data-nb2pipe-id="deploy-curl"]')).toBeNull();
    expect(box.querySelector('[data-nb2pipe-id="copy-curl"]')).toBeNull();
    const shown = box.querySelector('[data-nb2pipe-id="deploy-curl-note"]')!;
    expect(shown.textContent).toBe(note);
    expect(shown.className).toContain('nb2pipe-muted');
    expect(box.querySelectorAll('a')).toHaveLength(0);
    expect(box.textContent).toContain('/v2/models/cancer/infer');
  });

  it('skips deployments without call info and clears what it drew before', () => {
    const box = render([deployment(call())]);
    renderDeployCalls(box, [deployment(undefined, 'old'), deployment(null, 'older')]);
    expect(box.children).toHaveLength(0);
  });

  it('escapes nothing into HTML: a hostile curl stays text', () => {
    const box = render([deployment(call({ curl: '<img src=x onerror=alert(1)>' }))]);
    expect(box.querySelector('img')).toBeNull();
  });
});

describe('copying the curl', () => {
  const original = Object.getOwnPropertyDescriptor(navigator, 'clipboard');
  afterEach(() => {
    if (original) {
      Object.defineProperty(navigator, 'clipboard', original);
    } else {
      delete (navigator as unknown as Record<string, unknown>).clipboard;
    }
  });

  it('writes to the clipboard', async () => {
    const written: string[] = [];
    Object.defineProperty(navigator, 'clipboard', {
      configurable: true,
      value: { writeText: async (text: string) => void written.push(text) }
    });
    const box = render([deployment(call())]);
    (box.querySelector('[data-nb2pipe-id="copy-curl"]') as HTMLButtonElement).click();
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(written).toEqual([call().curl]);
    expect(box.textContent).toContain('Copied.');
  });

  it('selects the text when the clipboard refuses', async () => {
    Object.defineProperty(navigator, 'clipboard', {
      configurable: true,
      value: { writeText: () => Promise.reject(new Error('not allowed')) }
    });
    const code = document.createElement('code');
    code.textContent = 'curl x';
    document.body.appendChild(code);
    expect(await copyText('curl x', code)).toBe(false);
    expect(window.getSelection()!.toString()).toBe('curl x');
  });

  it('joins URLs with one slash', () => {
    expect(joinUrl('http://h:1/', '/v1/m')).toBe('http://h:1/v1/m');
    expect(joinUrl('http://h:1', 'v1/m')).toBe('http://h:1/v1/m');
    expect(joinUrl(null, '/v1/m')).toBeNull();
  });
});
