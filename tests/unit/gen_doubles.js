#!/usr/bin/env node
// Writes tests/unit/doubles.txt: the corpus for test_jsnum.c.  One line per
// double: its IEEE-754 bits as 16 lower-case hex digits, a TAB, String(x).
// Node is the reference for Number::toString; the output is deterministic
// (own seeded PRNG) so that regenerating it gives the same file.
//
//   node tests/unit/gen_doubles.js [out-path]
'use strict';
const fs = require('fs');
const path = require('path');

const out = process.argv[2] || path.join(__dirname, 'doubles.txt');

// sfc32, seeded by constants: a small, fast PRNG with a good spread.
let sa = 0x9e3779b9, sb = 0x243f6a88, sc = 0xb7e15162, sd = 1;
function rnd32() {
  sa >>>= 0; sb >>>= 0; sc >>>= 0; sd >>>= 0;
  const t = (sa + sb | 0) + sd | 0;
  sd = sd + 1 | 0;
  sa = sb ^ (sb >>> 9);
  sb = sc + (sc << 3) | 0;
  sc = (sc << 21) | (sc >>> 11);
  sc = sc + t | 0;
  return t >>> 0;
}
for (let i = 0; i < 20; i++) rnd32();
function rndInt(n) { return Math.floor(rnd32() / 4294967296 * n); } // [0,n)
function rndBits64() { return (BigInt(rnd32()) << 32n) | BigInt(rnd32()); }

const dv = new DataView(new ArrayBuffer(8));
function bitsOf(x) { dv.setFloat64(0, x); return dv.getBigUint64(0); }
function ofBits(b) { dv.setBigUint64(0, BigInt.asUintN(64, b)); return dv.getFloat64(0); }
function nextUp(x) { // toward +Infinity; x finite
  if (x === 0) return Number.MIN_VALUE;
  const b = bitsOf(x);
  return ofBits(x > 0 ? b + 1n : b - 1n);
}
function nextDown(x) { return -nextUp(-x); }

const lines = [];
const seen = new Set();
function add(x) {
  if (typeof x !== 'number') x = Number(x);
  const h = bitsOf(x).toString(16).padStart(16, '0');
  if (seen.has(h)) return;
  seen.add(h);
  lines.push(h + '\t' + String(x));
}
function addWithNeighbours(x) {
  add(x); add(-x);
  if (Number.isFinite(x)) {
    const u = nextUp(x), d = nextDown(x);
    if (Number.isFinite(u)) add(u);
    if (Number.isFinite(d)) add(d);
  }
}
function digits(n, firstNonZero) {
  let s = String(firstNonZero ? 1 + rndInt(9) : rndInt(10));
  for (let i = 1; i < n; i++) s += rndInt(10);
  return s;
}

// ---- Awkward values -------------------------------------------------------
[
  0, -0, NaN, Infinity, -Infinity,
  5e-324, -5e-324, 1e-323, 2.2250738585072014e-308, 2.225073858507201e-308,
  Number.MAX_VALUE, -Number.MAX_VALUE, Number.EPSILON,
  2 ** 53, 2 ** 53 - 1, 2 ** 53 + 2, -(2 ** 53), 2 ** 53 - 2, 2 ** 54, 2 ** 63,
  2 ** 64, 2 ** 52, 2 ** 52 + 0.5, 2 ** 31, 2 ** 32, -(2 ** 31),
  1e21, nextDown(1e21), nextUp(1e21), 999999999999999900000, 1e20,
  1e-6, 1e-7, nextDown(1e-6), nextUp(1e-6), 1.5e-7, 0.000001, 0.0000015,
  0.1, 0.2, 0.3, 0.1 + 0.2, 1 / 3, 2 / 3, -1 / 3, Math.PI, Math.E, Math.SQRT2,
  4755720007535669, 123456789012345680000, 1.5, -1.5, 123, -123, 0.5, 1,
  -1, 10, 100, 1e15, 1e16, 1e17, 9007199254740993, 1.7976931348623157e308,
  4.9406564584124654e-324, 1.2345e100, -1.2345e100, 1.2345e-100,
  9.999999999999999e22, 1e23, 8.41e21, 5e-7, 5e-8, 123e-20, 1e-8, 1e36, 1e37,
  9.5e36, 9.999999999999999e36, 1.0000000000000001e-8, 9.9999999999999e-9,
  0.30000000000000004, 1.0000000000000002, 0.9999999999999999,
  100000000000000000000, 12345678901234567890, 299792458, 6.02214076e23,
  1.602176634e-19, 6.62607015e-34, 1.7e308, 1e308, 1e-308, 1e-320, 3e-310,
  2.5, 0.125, 1e14 + 0.5, 1e15 - 0.5, 999999999999999.9, 99999999999999.99,
  7.0e-10, 5.551115123125783e-17, 1.1102230246251565e-16,
].forEach(addWithNeighbours);

// Powers of ten and their neighbours.
for (let e = -30; e <= 30; e++) addWithNeighbours(Number('1e' + e));
// Every power of two: the rounding interval below is half as wide as above.
for (let e = -1074; e <= 1023; e++) {
  const x = 2 ** e;
  add(x);
  if (e % 7 === 0) { add(nextDown(x)); add(nextUp(x)); add(-x); }
}
// Numbers with exactly 15, 16 and 17 significant digits, all magnitudes.
for (let i = 0; i < 3000; i++) {
  const n = 15 + (i % 3);
  const e = rndInt(620) - 310;
  const s = digits(n, true);
  add(Number((rndInt(2) ? '-' : '') + s[0] + '.' + s.slice(1) + 'e' + e));
}
// Around the edges of the plain notation and the 15-digit fast path.
for (const e of [-9, -8, -7, -6, -5, 13, 14, 15, 16, 20, 21, 22, 35, 36, 37]) {
  for (let i = 0; i < 30; i++) {
    const s = digits(1 + rndInt(17), true);
    add(Number(s[0] + '.' + s.slice(1) + 'e' + e));
    add(Number('9.' + '9'.repeat(rndInt(16)) + 'e' + e));
  }
}

// ---- Random bit patterns (finite only) ------------------------------------
for (let n = 0; n < 14000;) {
  const x = ofBits(rndBits64());
  if (!Number.isFinite(x)) continue;
  add(x); n++;
}
// Subnormals, which random bits almost never give.
for (let i = 0; i < 1000; i++) {
  const b = rndBits64() & ((1n << BigInt(1 + rndInt(52))) - 1n);
  add(ofBits(b | (BigInt(rndInt(2)) << 63n)));
}

// ---- Decimal-looking values -----------------------------------------------
for (let i = 0; i < 14000; i++) {
  const n = 1 + rndInt(18);
  const s = digits(n, false);
  // Mostly everyday magnitudes, some anywhere in the range.
  const e = rndInt(4) ? rndInt(50) - 20 : rndInt(660) - 340;
  const dot = rndInt(n + 1);
  const t = s.slice(0, dot) + '.' + s.slice(dot);
  add(Number((rndInt(4) ? '' : '-') + (t === '.' ? '0' : t) + 'e' + e));
}

// ---- Integers of varying size ----------------------------------------------
for (let i = 0; i < 4000; i++) {
  const bits = 1 + rndInt(80);
  let v = rndBits64() & ((1n << BigInt(Math.min(bits, 64))) - 1n);
  if (bits > 64) v <<= BigInt(bits - 64);
  add((rndInt(3) ? 1 : -1) * Number(v));
}
for (let i = 0; i < 300; i++) {
  const base = [2 ** 53, 1e15, 1e16, 1e21, 2 ** 63][i % 5];
  add(base + (rndInt(2001) - 1000) * (base >= 2 ** 53 ? 2 ** 11 : 1));
}

fs.writeFileSync(out, lines.join('\n') + '\n');
console.log(`${lines.length} values written to ${out}`);
