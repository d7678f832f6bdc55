#!/usr/bin/env node
'use strict';
// Runs every compiled test file (dist/test/**/*.test.js) with node's test
// runner, one file at a time: end-to-end tests share this machine's two cores
// and would disturb each other. Arguments narrow the set: `node test/run.js unit e2e/overlay`.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..', 'dist', 'test');
if (!fs.existsSync(root)) {
  console.error('dist/test is missing: run `npm run build` first');
  process.exit(1);
}
const files = [];
(function walk(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full);
    else if (entry.name.endsWith('.test.js')) files.push(full);
  }
})(root);
// unit first, then integration, then e2e
const order = (f) => (f.includes(`${path.sep}unit${path.sep}`) ? 0 : f.includes(`${path.sep}integration${path.sep}`) ? 1 : 2);
files.sort((a, b) => order(a) - order(b) || a.localeCompare(b));
const filters = process.argv.slice(2);
const selected = filters.length === 0 ? files : files.filter((f) => filters.some((x) => path.relative(root, f).includes(x)));
if (selected.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...selected], { stdio: 'inherit' });
process.exit(result.status === null ? 1 : result.status);
