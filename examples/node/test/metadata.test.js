'use strict';
// What a JavaScript program reads beside an artifact must be plain JSON (RFC 8259): JSON.parse
// rejects Python's Infinity/NaN extensions. An embedder reads X.json for the train step's
// "state" map, its hyper-parameter defaults and the input order.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { ARTIFACTS, manifest, golden } = require('../runner');

test('X.json and X.golden/index.json of every artifact are strict JSON', () => {
  const bad = [];
  for (const [role, entry] of Object.entries(manifest().artifacts)) {
    const stem = entry.artifact.replace(/\.[^.]+$/, '');
    for (const file of [`${stem}.json`, path.join(entry.golden, 'index.json')]) {
      const full = path.join(ARTIFACTS, file);
      if (!fs.existsSync(full)) {
        bad.push(`${role}: ${file} is missing`);
        continue;
      }
      try {
        JSON.parse(fs.readFileSync(full, 'utf8'));
      } catch (err) {
        bad.push(`${role}: ${file}: ${err.message.split('\n')[0]}`);
      }
    }
  }
  assert.deepEqual(bad, [], bad.join('\n'));
});

test('train step: X.json describes the graph the golden sample runs', () => {
  const { entry, golden: g } = golden('train_step_onnx');
  const meta = JSON.parse(fs.readFileSync(path.join(ARTIFACTS, entry.artifact.replace(/\.onnx$/, '.json')), 'utf8'));
  assert.equal(meta.kind, 'train_step');
  assert.deepEqual(meta.state, g.state, 'X.json "state" differs from the golden sample\'s');
  const stepInputs = Object.keys(g.cases[0].inputs).sort();
  assert.deepEqual([...meta.input_names].sort(), [...Object.keys(g.state), ...stepInputs].sort());
});
