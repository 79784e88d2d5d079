/**
 * The pod-field checks of podChecks.ts that the shared cases (tag_problems.json, in tags.spec.ts)
 * do not reach: GPU types' edge cases and the look-alikes of Python's repr, isprintable, difflib
 * and normpath that keep the form's words the same as tags.py's.
 */
import { formFrom } from '../tags';
import { validateForm } from '../tagChecks';
import { gpuProductLabel, isPrintable, mountPathProblem, pyRepr, shown, similarity } from '../podChecks';

describe('GPU types', () => {
  const gpuType = (type: string) => validateForm(formFrom({ gpu: '1', gpuType: type })).gpuType;

  it('accepts a GPU product with spaces, as nvidia-smi prints it', () => {
    expect(gpuType('NVIDIA H100 80GB HBM3')).toBeUndefined();
    expect(gpuProductLabel(' NVIDIA H100 80GB HBM3 ')).toBe('NVIDIA-H100-80GB-HBM3');
  });

  it("checks a name with '/' as an extended resource", () => {
    const longestDomain = 'a'.repeat(244); // "requests." + the domain: 253 characters
    for (const ok of ['nvidia.com/gpu', 'nvidia.com/mig-1g.10gb', 'amd.com/gpu', 'example.com/accel.big', `${longestDomain}/gpu`]) {
      expect(gpuType(ok)).toBeUndefined();
    }
    expect(gpuType('nvidia.com/')).toMatch(/the part after '\/' is empty/);
    expect(gpuType('.nvidia.com/gpu')).toMatch(/the part before '\/' must be lowercase letters, digits/);
    expect(gpuType(`a${longestDomain}/gpu`)).toMatch(/the part before '\/' has more than 244 characters/);
  });
});

describe('Python look-alikes', () => {
  it("quotes as Python's repr does", () => {
    expect(pyRepr('a')).toBe("'a'");
    expect(pyRepr("it's")).toBe('"it\'s"');
    expect(pyRepr('both \' and "')).toBe("'both \\' and \"'");
    expect(pyRepr('tab\there')).toBe("'tab\\there'");
    expect(pyRepr('\u0007')).toBe("'\\x07'");
    expect(shown('x'.repeat(41))).toBe(`'${'x'.repeat(37)}...'`);
  });

  it("tells printable text as Python's isprintable does", () => {
    expect(isPrintable('a b/ü')).toBe(true);
    expect(isPrintable('a\u00a0b')).toBe(false);
    expect(isPrintable('a\u200bb')).toBe(false);
    expect(isPrintable('a\nb')).toBe(false);
  });

  it("scores similarity as difflib's SequenceMatcher.ratio", () => {
    // values printed by Python's difflib.SequenceMatcher(None, a, b).ratio()
    expect(similarity('NoExecut', 'NoExecute')).toBeCloseTo(0.9411764705882353);
    expect(similarity('Never', 'NoExecute')).toBeCloseTo(0.42857142857142855);
    expect(similarity('abcd', 'bcda')).toBeCloseTo(0.75);
    expect(similarity('', '')).toBe(1);
  });

  it('finds a mount path that normpath would change', () => {
    for (const bad of ['/a//b', '/a/./b', '/a/', '//a', '/a/..']) {
      expect(mountPathProblem(bad)).toMatch(/plainly/);
    }
    expect(mountPathProblem('/a/b.c/..d')).toBe('');
  });
});
