'use strict';
// The golden reader on hand-made files: every dtype of the format, C order, little-endian.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { loadGolden, mismatch } = require('../golden');

function le(bytesPer, values, write) {
  const b = Buffer.alloc(bytesPer * values.length);
  values.forEach((v, i) => write.call(b, v, i * bytesPer));
  return b;
}

test('reads float32, float64, float16, int64, int32, bool', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'golden-'));
  const g = path.join(dir, 'x.golden');
  fs.mkdirSync(path.join(g, 'c0'), { recursive: true });
  const files = {
    f32: le(4, [1.5, -2, 3.25, 0, 1e-3, 7], Buffer.prototype.writeFloatLE),
    f64: le(8, [Math.PI, -1e-300], Buffer.prototype.writeDoubleLE),
    i64: le(8, [-(2n ** 40n), 3n], Buffer.prototype.writeBigInt64LE),
    i32: le(4, [-7, 2 ** 30], Buffer.prototype.writeInt32LE),
    b: Buffer.from([1, 0, 1]),
    f16: le(2, [0x3c00, 0xc000, 0x3555], Buffer.prototype.writeUInt16LE), // 1, -2, 0.33325
  };
  for (const [k, v] of Object.entries(files)) fs.writeFileSync(path.join(g, 'c0', `${k}.bin`), v);
  const index = {
    format: 'rlexport-golden', version: 1, artifact: 'x.onnx', kind: 'forward', rtol: 1e-5, atol: 1e-6,
    cases: [{
      name: 'c0',
      inputs: {
        f32: { dtype: 'float32', shape: [2, 3], file: 'c0/f32.bin' },
        f64: { dtype: 'float64', shape: [2], file: 'c0/f64.bin' },
        i64: { dtype: 'int64', shape: [2], file: 'c0/i64.bin' },
        i32: { dtype: 'int32', shape: [1, 2], file: 'c0/i32.bin' },
      },
      outputs: {
        b: { dtype: 'bool', shape: [3], file: 'c0/b.bin' },
        f16: { dtype: 'float16', shape: [3], file: 'c0/f16.bin' },
      },
    }],
  };
  fs.writeFileSync(path.join(g, 'index.json'), JSON.stringify(index));
  const gold = loadGolden(g);
  assert.equal(gold.artifact, path.join(dir, 'x.onnx'));
  const { f32, f64, i64, i32 } = gold.cases[0].inputs;
  assert.deepEqual(Array.from(f32.data), [1.5, -2, 3.25, 0, Math.fround(1e-3), 7]);
  assert.deepEqual(f32.shape, [2, 3]);
  assert.deepEqual(Array.from(f64.data), [Math.PI, -1e-300]);
  assert.deepEqual(Array.from(i64.data), [-(2n ** 40n), 3n]);
  assert.deepEqual(Array.from(i32.data), [-7, 2 ** 30]);
  assert.deepEqual(Array.from(gold.cases[0].outputs.b.data), [1, 0, 1]);
  const f16 = gold.cases[0].outputs.f16;
  assert.deepEqual(Array.from(f16.data, (h) => require('../golden').halfToNumber(h)), [1, -2, 0.333251953125]);
  assert.equal(mismatch('f16', Uint16Array.from([0x3c00, 0xc000, 0x3555]), [3], f16, 0, 0), null);
  assert.match(mismatch('f16', Uint16Array.from([0x3c00, 0xc000, 0x3556]), [3], f16, 1e-5, 0), /1\/3 elements/);

  // Comparison: tolerance on floats, exact on integers and booleans, shapes must agree.
  assert.equal(mismatch('f32', Float32Array.from([1.5, -2, 3.25, 0, 1e-3, 7.00001]), [2, 3], f32, 1e-5, 1e-6), null);
  assert.match(mismatch('f32', Float32Array.from([1.5, -2, 3.25, 0, 1e-3, 7.1]), [2, 3], f32, 1e-5, 1e-6), /1\/6 elements/);
  assert.match(mismatch('f32', f32.data, [3, 2], f32, 1e-5, 1e-6), /shape/);
  assert.match(mismatch('i64', BigInt64Array.from([-(2n ** 40n), 4n]), [2], i64, 1, 1), /1\/2 elements/);
  assert.equal(mismatch('b', [true, false, true], [3], gold.cases[0].outputs.b, 0, 0), null);

  // A per-output "tolerance" entry replaces the sample's rtol/atol for that output.
  index.cases[0].outputs.f16.tolerance = { rtol: 0, atol: 1e-3 };
  fs.writeFileSync(path.join(g, 'index.json'), JSON.stringify(index));
  const tol = loadGolden(g).cases[0].outputs.f16;
  assert.deepEqual(tol.tolerance, { rtol: 0, atol: 1e-3 });
  assert.equal(mismatch('f16', Uint16Array.from([0x3c00, 0xc000, 0x3556]), [3], tol, 0, 0), null);
  assert.match(mismatch('f16', Uint16Array.from([0x3c00, 0xc000, 0x3600]), [3], tol, 1, 1), /atol=0.001/);

  // A file whose size disagrees with its shape is an error, not a silent truncation.
  fs.writeFileSync(path.join(g, 'c0', 'i32.bin'), Buffer.alloc(4));
  assert.throws(() => loadGolden(g), /has 4 bytes/);
  fs.rmSync(dir, { recursive: true, force: true });
});
