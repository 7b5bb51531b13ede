// What the library costs a web page: src/index.js bundled with esbuild (ES
// module, every export kept), as is and minified, and the minified bundle
// gzipped (node:zlib, level 9). Prints one line per figure, bytes, and
// the same for socket.io-client (a devDependency, bundled for browsers the
// same way) as a yardstick.
//
//   node scripts/size.mjs [--json]
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

async function bundle(minify, entry = join(root, 'src/index.js'), platform = 'neutral') {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform,
    target: 'es2022',
    minify,
    write: false,
    legalComments: 'none',
  });
  return result.outputFiles[0].contents;
}

const sources = readdirSync(join(root, 'src'))
  .filter((name) => name.endsWith('.js'))
  .reduce((sum, name) => sum + readFileSync(join(root, 'src', name)).length, 0);
const raw = await bundle(false);
const minified = await bundle(true);
const gzipped = gzipSync(minified, { level: 9 });

// socket.io-client's browser build (its `browser` field), every export kept.
const socketIoEntry = join(root, 'node_modules/socket.io-client/build/esm/index.js');
const socketIoMinified = await bundle(true, socketIoEntry, 'browser');

const figures = {
  sources,
  bundled: raw.length,
  minified: minified.length,
  gzipped: gzipped.length,
  socketIoClient: { minified: socketIoMinified.length, gzipped: gzipSync(socketIoMinified, { level: 9 }).length },
};
if (process.argv.includes('--json')) {
  console.log(JSON.stringify(figures));
} else {
  console.log(`src/*.js (with comments)  ${String(figures.sources).padStart(7)} bytes`);
  console.log(`bundled (esbuild, raw)    ${String(figures.bundled).padStart(7)} bytes`);
  console.log(`minified                  ${String(figures.minified).padStart(7)} bytes`);
  console.log(`minified + gzip -9        ${String(figures.gzipped).padStart(7)} bytes`);
  const { minified: sioMin, gzipped: sioGz } = figures.socketIoClient;
  console.log(`socket.io-client: minified ${sioMin} bytes, + gzip -9 ${sioGz} bytes`);
}
