// The `io` object of loadBundle() for Node: files on disk.
import { readFile } from 'node:fs/promises';

export const nodeIO = {
  readText: (path) => readFile(path, 'utf8'),
  readBytes: async (path) => new Uint8Array(await readFile(path)),
};
