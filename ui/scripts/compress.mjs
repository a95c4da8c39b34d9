// Writes .gz and .br next to every text file in ui-dist/ so the server sends them
// precompressed. zlib's output is deterministic (gzip header mtime 0), so the committed
// files only change when the sources do.
import { readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';

const root = new URL('../../ui-dist/', import.meta.url).pathname;
let total = 0;
function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) { walk(p); continue; }
    if (!/\.(js|css|html|svg|json)$/.test(name)) continue;
    const raw = readFileSync(p);
    const gz = gzipSync(raw, { level: 9 });
    writeFileSync(p + '.gz', gz);
    writeFileSync(p + '.br', brotliCompressSync(raw, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length },
    }));
    total += gz.length;
    console.log(`${p.slice(root.length)}: ${raw.length} B, gzip ${gz.length} B`);
  }
}
walk(root);
console.log(`total gzipped: ${(total / 1024).toFixed(1)} KiB`);
