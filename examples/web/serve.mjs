// A static file server on 127.0.0.1 only: examples/ at /, a bundle folder at /bundle/.
//   import { serve } from './serve.mjs'; const { url, close } = await serve(bundleDir);
//   node examples/web/serve.mjs BUNDLE_DIR [PORT]     (then open the printed URL)
import { createReadStream, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const EXAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json',
  '.wasm': 'application/wasm', '.onnx': 'application/octet-stream', '.bin': 'application/octet-stream', '.png': 'image/png' };

function resolve(root, rel) {
  const file = path.resolve(root, '.' + path.posix.normalize('/' + rel));
  return file.startsWith(root + path.sep) || file === root ? file : null; // no escaping the root
}

export function serve(bundleDir, port = 0) {
  const bundleRoot = path.resolve(bundleDir);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const rel = decodeURIComponent(url.pathname);
    const file = rel.startsWith('/bundle/') ? resolve(bundleRoot, rel.slice('/bundle/'.length)) : resolve(EXAMPLES, rel);
    let stat = null;
    try { stat = file && statSync(file); } catch { stat = null; }
    if (!stat || !stat.isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`not found: ${rel}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'content-length': stat.size, 'cache-control': 'no-store' });
    createReadStream(file).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => {
      const { port: p } = server.address();
      ok({ url: `http://127.0.0.1:${p}`, close: () => new Promise((done) => server.close(done)) });
    });
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [dir, port] = process.argv.slice(2);
  if (!dir) {
    console.error('usage: node examples/web/serve.mjs BUNDLE_DIR [PORT]');
    process.exit(2);
  }
  const { url } = await serve(dir, Number(port || 8000));
  console.log(`open ${url}/web/index.html (bundle: ${path.resolve(dir)})`);
}
