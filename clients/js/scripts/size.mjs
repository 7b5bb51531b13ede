// What the library costs a web page: src/index.js bundled with esbuild (ES
// module, every export kept), as is and minified, and the minified bundle
// gzipped (node:zlib, level 9). Prints one line per figure, bytes.
//
//   node scripts/size.mjs [--json]
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

async function bundle(minify) {
  const result = await build({
    entryPoints: [join(root, 'src/index.js')],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
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

const figures = {
  sources,
  bundled: raw.length,
  minified: minified.length,
  gzipped: gzipped.length,
};
if (process.argv.includes('--json')) {
  console.log(JSON.stringify(figures));
} else {
  console.log(`src/*.js (with comments)  ${String(figures.sources).padStart(7)} bytes`);
  console.log(`bundled (esbuild, raw)    ${String(figures.bundled).padStart(7)} bytes`);
  console.log(`minified                  ${String(figures.minified).padStart(7)} bytes`);
  console.log(`minified + gzip -9        ${String(figures.gzipped).padStart(7)} bytes`);
}
