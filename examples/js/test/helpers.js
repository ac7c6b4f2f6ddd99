// Shared by the tests: where the Python side wrote its data, and a numpy.allclose-style check.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = process.env.RLEXPORT_ARTIFACTS || path.resolve(HERE, '../../artifacts');
/** examples/js/make_parity.py --out (default examples/artifacts/js-parity). */
export const PARITY_DIR = process.env.RLEXPORT_JS_PARITY || path.join(ARTIFACTS, 'js-parity');
/** A bundle to train from (default: make_parity.py's, CartPole PPO with a 50 000-step schedule). */
export const LEARN_BUNDLE = process.env.RLEXPORT_JS_BUNDLE || path.join(PARITY_DIR, 'bundle');

/** null when |a - e| <= atol + rtol |e| everywhere (exact for integer arrays), else a message. */
export function mismatch(name, actual, expected, rtol, atol) {
  if (actual.length !== expected.length) return `${name}: ${actual.length} values, expected ${expected.length}`;
  const exact = typeof expected[0] === 'bigint' || expected instanceof Uint8Array || expected instanceof Int32Array;
  let bad = 0;
  let first = -1;
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) {
    if (exact) {
      if (BigInt(actual[i]) !== BigInt(expected[i])) { bad++; if (first < 0) first = i; }
      continue;
    }
    const d = Math.abs(Number(actual[i]) - Number(expected[i]));
    maxAbs = Math.max(maxAbs, d);
    if (!(d <= atol + rtol * Math.abs(Number(expected[i])))) { bad++; if (first < 0) first = i; }
  }
  if (!bad) return null;
  return `${name}: ${bad}/${expected.length} differ (rtol ${rtol}, atol ${atol}); first at ${first}: got ${actual[first]}, expected ${expected[first]}; max abs err ${maxAbs}`;
}

export function maxAbsDiff(actual, expected) {
  let m = 0;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(Number(actual[i]) - Number(expected[i])));
  return m;
}
