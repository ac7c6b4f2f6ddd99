// Tensors in the golden format (docs/design.md, "Golden sample format"; docs/bundle.md):
// an index entry {dtype, shape, file} names a raw little-endian, C-order file with no header.
// No dependency: works in Node and in the browser on the bytes the host's `io` read.

// dtype -> [TypedArray constructor, bytes per element]; bool is one byte (0/1).
export const DTYPES = {
  float32: [Float32Array, 4],
  float64: [Float64Array, 8],
  int64: [BigInt64Array, 8],
  int32: [Int32Array, 4],
  bool: [Uint8Array, 1],
};

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function numel(shape) {
  return shape.reduce((n, d) => n * d, 1);
}

/** {dtype, shape, data: TypedArray} from an index entry and the file's bytes (Uint8Array). */
export function tensorFromBytes(entry, bytes, name = entry.file) {
  const spec = DTYPES[entry.dtype];
  if (!spec) throw new Error(`${name}: unsupported dtype ${JSON.stringify(entry.dtype)} (expected one of ${Object.keys(DTYPES).join(', ')})`);
  const [Ctor, size] = spec;
  const n = numel(entry.shape);
  if (bytes.length !== n * size) {
    throw new Error(`${name}: ${entry.file} has ${bytes.length} bytes, shape [${entry.shape}] of ${entry.dtype} needs ${n * size}`);
  }
  const copy = new Uint8Array(bytes.length); // aligned, and ours to keep
  copy.set(bytes);
  if (!LITTLE_ENDIAN && size > 1) {
    for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  }
  return { dtype: entry.dtype, shape: entry.shape.slice(), data: new Ctor(copy.buffer) };
}

/** Read every tensor of an index map {name: entry} under `dir` with `io.readBytes`. */
export async function readTensorMap(io, dir, entries) {
  const names = Object.keys(entries);
  const tensors = await Promise.all(names.map((n) => io.readBytes(`${dir}/${entries[n].file}`).then((b) => tensorFromBytes(entries[n], b, n))));
  return Object.fromEntries(names.map((n, i) => [n, tensors[i]]));
}

/** A golden-format folder's index.json (format and version checked). */
export async function readGoldenIndex(io, dir) {
  const index = JSON.parse(await io.readText(`${dir}/index.json`));
  if (index.format !== 'rlexport-golden') throw new Error(`${dir}: format ${JSON.stringify(index.format)}, expected "rlexport-golden"`);
  if (index.version !== 1) throw new Error(`${dir}: golden version ${index.version}, this reader knows version 1`);
  return index;
}
