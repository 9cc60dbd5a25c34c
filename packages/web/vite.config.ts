// Builds the wizard into dist/: one HTML page and hashed assets under assets/. Paths are relative
// (base './') so the same build works served by Portage at /migrate/ and from any static host.
import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  plugins: [preact()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // No source maps in the shipped build: the page is small and readable in the browser's tools.
    sourcemap: false,
    assetsInlineLimit: 0,
  },
});
