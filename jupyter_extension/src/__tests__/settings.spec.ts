import { SETTING_KEYS, readSettings, writeSetting, writeSettings } from '../settings';

describe('settings', () => {
  it('has the five keys of API.md', () => {
    expect([...SETTING_KEYS]).toEqual(['pipeline_name', 'experiment_name', 'image', 'kfp_host', 'mlflow_tracking_uri']);
  });

  it('reads strings and ignores the rest', () => {
    expect(readSettings(undefined)).toEqual({
      pipeline_name: '',
      experiment_name: '',
      image: '',
      kfp_host: '',
      mlflow_tracking_uri: ''
    });
    expect(readSettings({ pipeline_name: 'p', image: 3, kfp_host: 'http://h', deploy: {} })).toMatchObject({
      pipeline_name: 'p',
      image: '',
      kfp_host: 'http://h'
    });
    expect(readSettings(['x']).pipeline_name).toBe('');
  });

  it('sets a value and keeps the other keys', () => {
    const before = { deploy: { gpu: 1 }, steps_defaults: ['label:a:b'], image: 'python:3.12' };
    const after = writeSetting(before, 'kfp_host', ' http://localhost:8080 ');
    expect(after).toEqual({ deploy: { gpu: 1 }, steps_defaults: ['label:a:b'], image: 'python:3.12', kfp_host: 'http://localhost:8080' });
    expect(before).not.toHaveProperty('kfp_host');
  });

  it('removes an emptied key, and the section when nothing is left', () => {
    expect(writeSetting({ image: 'a', drift: { method: 'ks' } }, 'image', '  ')).toEqual({ drift: { method: 'ks' } });
    expect(writeSetting({ image: 'a' }, 'image', '')).toBeNull();
    expect(writeSetting(undefined, 'image', '')).toBeNull();
    expect(writeSetting(null, 'pipeline_name', 'p')).toEqual({ pipeline_name: 'p' });
  });

  it('writes several at once', () => {
    expect(writeSettings({ image: 'a', other: 1 }, { image: '', experiment_name: 'e' })).toEqual({ other: 1, experiment_name: 'e' });
    expect(writeSettings({ image: 'a' }, { image: '' })).toBeNull();
  });
});
