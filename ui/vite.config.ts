import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// Output is committed (ui-dist/) and embedded in the binary, so the build must be
// deterministic: content-hashed names, no source maps, no timestamps.
export default defineConfig({
  plugins: [preact({ devToolsInProd: false, prefreshEnabled: false })],
  build: {
    outDir: '../ui-dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    target: 'es2020',
    modulePreload: { polyfill: false },
    cssCodeSplit: false,
    reportCompressedSize: false,
  },
  server: { proxy: { '/api': 'http://127.0.0.1:8090', '/v1': 'http://127.0.0.1:8090' } },
});
