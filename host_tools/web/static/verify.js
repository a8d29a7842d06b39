// ChargeProof: the driver's check of one receipt bundle, entirely in this browser (WebCrypto).
// Plain JavaScript, no build step, no server trusted: the same checks, in the same order and
// with the same reasons, as the host light client (host_tools/lightclient/check.py; formats
// and pricing rules in docs/ledger.md). Integer money and energy in BigInt, never floats.
//
//   ChargeProofVerify.check(bundleText, pubkeyDer | null, {checkpoint, proof, consistency,
//                                                           witnesses: [vkey...], quorum})
//     -> Promise<{summary, receipt, tariff, checkpoint, notes}>, or rejects with Invalid(reason, detail)
"use strict";
const ChargeProofVerify = (() => {
  const BUNDLE_FORMAT = "chargeproof-receipt-bundle/1";
  const FIELDS = ["v", "charger", "seq", "index", "begin", "end", "charge_end", "energy_wh", "segments",
                  "tariff", "currency", "net", "tax", "price", "reason", "ocmf"];
  const TARIFF_KEYS = ["bands", "currency", "idle_grace_min", "idle_min_price_milli", "session_fee_minor",
                       "tax_bp", "utc_offset_min", "v"];
  const TARIFF_RANGES = [["v", 1, 1], ["utc_offset_min", -720, 840], ["session_fee_minor", 0, 1e8],
                         ["idle_min_price_milli", 0, 1e8], ["idle_grace_min", 0, 1440], ["tax_bp", 0, 10000]];
  // Version 2 (published tariffs, docs/ledger.md §5): a POSIX TZ rule, validity, slot prices.
  const TARIFF_KEYS_V2 = ["bands", "currency", "id", "idle_grace_min", "idle_min_price_milli", "session_fee_minor",
                          "tax_bp", "tz", "v", "valid_from"];
  const TARIFF_OPTIONAL_V2 = ["slot_s", "slots", "valid_until"];
  const TARIFF_RANGES_V2 = [["v", 2, 2], ["valid_from", 0, 4102444800], ["session_fee_minor", 0, 1e8],
                            ["idle_min_price_milli", 0, 1e8], ["idle_grace_min", 0, 1440], ["tax_bp", 0, 10000]];
  const P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551n;
  const DASH = "\u2014";
  const enc = new TextEncoder();

  class Invalid extends Error {
    constructor(reason, detail) { super(reason + ": " + detail); this.reason = reason; this.detail = detail; }
  }
  // A JSON number that is not a safe integer literal: kept as its source text (exact decimals).
  class JNum { constructor(src) { this.src = src; } toString() { return this.src; } }

  // ---- bytes and encodings ------------------------------------------------------------------
  function parseJson(text) {
    // Integer literals become Numbers; every other number stays exact (JNum), so 2.0 is not 2
    // and 1.283 kWh is not a binary fraction (needs JSON.parse source text access, Chromium 114+).
    return JSON.parse(text, function (key, value, ctx) {
      if (typeof value !== "number") return value;
      const src = ctx && ctx.source !== undefined ? ctx.source : String(value);
      return /^-?(0|[1-9][0-9]*)$/.test(src) && Number.isSafeInteger(value) ? value : new JNum(src);
    });
  }
  const isInt = (v) => typeof v === "number" && Number.isSafeInteger(v);
  const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof JNum);
  function b64decode(s, strict) {
    if (typeof s !== "string") throw new Error("not a base64 string");
    if (strict && (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4)) throw new Error("invalid base64 " + JSON.stringify(s.slice(0, 20)));
    const bin = atob(s);
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }
  function b64urlDecode(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    return b64decode(s, true);
  }
  function b64encode(bytes) { return btoa(String.fromCharCode(...bytes)); }
  function hexToBytes(h) {
    if (typeof h !== "string" || !/^([0-9a-fA-F]{2})*$/.test(h)) throw new Error("not hex");
    const out = new Uint8Array(h.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(2 * i, 2), 16);
    return out;
  }
  const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let i = 0;
    for (const p of parts) { out.set(p, i); i += p.length; }
    return out;
  };
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  async function sha256(bytes) { return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)); }

  // ---- ECDSA P-256 / SHA-256 -------------------------------------------------------------------
  // Strict DER ECDSA-Sig-Value (what the charger emits and OpenSSL accepts) -> raw r || s.
  function derToRaw(der) {
    const fail = () => { throw new Error("not a strict DER ECDSA signature"); };
    if (der.length < 8 || der[0] !== 0x30 || der[1] !== der.length - 2 || der[1] > 0x7f) fail();
    let i = 2;
    const ints = [];
    for (let k = 0; k < 2; k++) {
      if (der[i] !== 0x02) fail();
      const len = der[i + 1];
      if (len < 1 || len > 33 || i + 2 + len > der.length) fail();
      const v = der.subarray(i + 2, i + 2 + len);
      if (v[0] & 0x80) fail();                                   // negative
      if (len > 1 && v[0] === 0 && !(v[1] & 0x80)) fail();      // not minimal
      ints.push(v[0] === 0 && len > 1 ? v.subarray(1) : v);
      i += 2 + len;
    }
    if (i !== der.length) fail();
    const raw = new Uint8Array(64);
    for (let k = 0; k < 2; k++) {
      if (ints[k].length > 32) fail();
      raw.set(ints[k], 32 * k + 32 - ints[k].length);
    }
    return raw;
  }
  const bigOf = (b) => b.reduce((n, x) => (n << 8n) | BigInt(x), 0n);
  async function importP256(spki) {
    return crypto.subtle.importKey("spki", spki, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
  }
  async function verifyP256(key, message, der, lowS) {
    let raw;
    try { raw = derToRaw(der); } catch (e) { return false; }
    const r = bigOf(raw.subarray(0, 32)), s = bigOf(raw.subarray(32));
    if (r === 0n || s === 0n || r >= P256_N || s >= P256_N) return false;
    if (lowS && s > P256_N >> 1n) return false;                  // one encoding per receipt
    return crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, raw, message);
  }

  // ---- RFC 9162 Merkle proofs ------------------------------------------------------------------
  const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
  const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));
  async function verifyInclusion(leaf, index, size, proof, root) {
    if (!(index >= 0 && index < size)) throw new Error("leaf index " + index + " not below tree size " + size);
    let fn = BigInt(index), sn = BigInt(size - 1), r = leaf;
    for (const p of proof) {
      if (sn === 0n) throw new Error("inclusion proof too long");
      if (fn & 1n || fn === sn) {
        r = await nodeHash(p, r);
        if (!(fn & 1n)) while (!(fn & 1n) && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n; sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("inclusion proof too short");
    if (!equal(r, root)) throw new Error("inclusion proof does not lead to the root");
  }
  async function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) {
    if (!(0 <= oldSize && oldSize <= newSize)) throw new Error("old size greater than new size");
    if (oldSize === newSize) {
      if (proof.length) throw new Error("consistency proof must be empty for equal sizes");
      if (!equal(oldRoot, newRoot)) throw new Error("same size, different roots");
      return;
    }
    if (oldSize === 0) {
      if (proof.length) throw new Error("consistency proof from the empty tree must be empty");
      return;
    }
    if (!proof.length) throw new Error("empty consistency proof");
    const path = proof.slice();
    const m = BigInt(oldSize);
    if ((m & (m - 1n)) === 0n) path.unshift(oldRoot);
    let fn = m - 1n, sn = BigInt(newSize - 1);
    while (fn & 1n) { fn >>= 1n; sn >>= 1n; }
    let fr = path[0], sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0n) throw new Error("consistency proof too long");
      if (fn & 1n || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        if (!(fn & 1n)) while (!(fn & 1n) && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn >>= 1n; sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("consistency proof too short");
    if (!equal(fr, oldRoot)) throw new Error("consistency proof does not lead to the old root");
    if (!equal(sr, newRoot)) throw new Error("consistency proof does not lead to the new root");
  }

  // ---- C2SP checkpoint (signed note) -------------------------------------------------------------
  function parseCheckpoint(note) {
    const fail = (m) => { throw new Error(m); };
    if (typeof note !== "string") fail("a checkpoint is text");
    if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) fail("control character in note");
    const cut = note.lastIndexOf("\n\n");
    if (cut < 0 || !note.endsWith("\n")) fail("note has no signature block");
    const text = note.slice(0, cut + 1);
    const lines = text.slice(0, -1).split("\n");
    if (lines.length < 3 || !lines[0]) fail("checkpoint needs origin, size and root lines");
    if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) fail("tree size " + JSON.stringify(lines[1]) + " is not a decimal without leading zeros");
    const size = Number(lines[1]);
    if (!Number.isSafeInteger(size)) fail("tree size out of range");
    let root;
    try { root = b64decode(lines[2], true); } catch (e) { fail("root is not base64"); }
    if (root.length !== 32) fail("root is not 32 bytes");
    let time = null;
    for (const ext of lines.slice(3)) if (/^time [0-9]+$/.test(ext)) time = Number(ext.slice(5));
    const signatures = [];
    for (const line of note.slice(cut + 2, -1).split("\n")) {
      const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
      if (!m) fail("bad signature line " + JSON.stringify(line));
      let raw;
      try { raw = b64decode(m[2], true); } catch (e) { fail("signature is not base64"); }
      if (raw.length < 5) fail("signature too short");
      signatures.push({ name: m[1], keyId: raw.subarray(0, 4), sig: raw.subarray(4), raw });
    }
    return { note, text, origin: lines[0], size, root, time, extensions: lines.slice(3), signatures };
  }
  class WrongKey extends Error {}
  class BadSignature extends Error {}
  async function verifyCheckpoint(cp, key, spki) {
    const kid = (await sha256(spki)).subarray(0, 4);
    const mine = cp.signatures.filter((s) => s.name === cp.origin && equal(s.keyId, kid));
    if (!mine.length) throw new WrongKey("no signature by key " + toHex(kid) + " (" + cp.origin + ") on the checkpoint");
    for (const s of mine) {
      if (!(await verifyP256(key, enc.encode(cp.text), s.sig, false))) throw new BadSignature("checkpoint signature does not verify");
    }
  }

  // C2SP tlog-cosignature/v1 (witnesses, Ed25519; host: host_tools/verify/cosignature.py):
  // a line "— <name> base64(key ID[4] || time u64 BE[8] || Ed25519 signature[64])" under the
  // checkpoint; key ID = SHA-256(name || 0x0A || 0x04 || key)[:4]; signed message
  // "cosignature/v1\ntime <t>\n" + the checkpoint body. Witnesses are C2SP vkeys
  // "<name>+<key id hex>+base64(type || key)" (type 0x04, or 0x01 reused). Unknown lines are
  // ignored, a known line that fails refuses the note, distinct valid cosigners count to a quorum.
  class CosigError extends Error {}
  async function cosignKeyId(name, type, pub) {
    return (await sha256(concat(enc.encode(name), Uint8Array.of(0x0a, type), pub))).subarray(0, 4);
  }
  async function parseVkey(vkey) {
    const fail = (m) => { throw new Invalid("bad-witness-key", m); };
    const text = String(vkey).trim();
    const i = text.indexOf("+"), j = text.indexOf("+", i + 1);
    if (i < 0 || j < 0) fail("a vkey is <name>+<key id hex>+<base64 key>: " + text.slice(0, 80));
    const name = text.slice(0, i), kidHex = text.slice(i + 1, j);
    let raw, kid;
    try { raw = b64decode(text.slice(j + 1), true); kid = hexToBytes(kidHex); } catch (e) { fail("vkey key id or key material is not hex/base64"); }
    if (kid.length !== 4 || raw.length !== 33) fail("vkey needs a 4-byte key id and a type byte + 32-byte Ed25519 key");
    if (raw[0] !== 0x04 && raw[0] !== 0x01) fail("vkey signature type is not Ed25519 (0x01) or cosignature/v1 (0x04)");
    if (!equal(await cosignKeyId(name, raw[0], raw.subarray(1)), kid)) fail("vkey key id " + kidHex + " does not match its name and key");
    if (!/^[^\s+]+$/.test(name)) fail("bad cosigner name");
    const pub = raw.subarray(1);
    return { name, pub, keyId: await cosignKeyId(name, 0x04, pub) };
  }
  function noteWithLines(note, lines) {
    const have = new Set(note.slice(note.indexOf("\n\n") + 2, -1).split("\n"));
    const extra = [...new Set(lines.filter((l) => !have.has(l)))];
    return note + extra.map((l) => l + "\n").join("");
  }
  async function verifyCosignatures(note, witnesses, quorum) {
    if (quorum > witnesses.length) {
      throw new Invalid("missing-cosignatures", "quorum " + quorum + " is more than the " + witnesses.length + " witness key(s) given");
    }
    const cut = note.indexOf("\n\n");
    const body = enc.encode(note.slice(0, cut + 1));
    const valid = {};
    for (const text of note.slice(cut + 2, -1).split("\n")) {
      const m = /^\u2014 (\S+) ([A-Za-z0-9+/]+=*)$/.exec(text);
      let raw;
      try { raw = m && b64decode(m[2], true); } catch (e) { raw = null; }
      if (!raw || raw.length < 5) throw new Invalid("bad-cosignature", "not a signature line: " + text.slice(0, 120));
      const w = witnesses.find((x) => x.name === m[1] && equal(x.keyId, raw.subarray(0, 4)));
      if (!w) continue;                                          // the log's own line, or a stranger's
      if (raw.length !== 76) throw new Invalid("bad-cosignature", "not an Ed25519 cosignature/v1: " + (raw.length - 4) + " bytes after the key id");
      const t = bigOf(raw.subarray(4, 12));
      if (t > 2n ** 63n - 1n) throw new Invalid("bad-cosignature", "timestamp outside 0..2^63-1");
      let ok;
      try {
        const key = await crypto.subtle.importKey("raw", w.pub, { name: "Ed25519" }, false, ["verify"]);
        ok = await crypto.subtle.verify({ name: "Ed25519" }, key, raw.subarray(12),
                                        concat(enc.encode("cosignature/v1\ntime " + t + "\n"), body));
      } catch (e) {
        throw new Invalid("bad-cosignature", "this browser cannot check Ed25519 cosignatures: " + e.message);
      }
      if (!ok) throw new Invalid("bad-cosignature", "cosignature by " + w.name + " (" + toHex(w.keyId) + ") does not verify");
      valid[w.name] = Number(t);
    }
    const names = Object.keys(valid).sort();
    if (names.length < quorum) {
      throw new Invalid("missing-cosignatures", names.length + " valid cosignature(s) from known witnesses (" +
                        (names.join(", ") || "none") + "), quorum is " + quorum);
    }
    return names;
  }

  // ---- receipt record: <receipt JSON>|<DER signature hex> ----------------------------------------
  function parseReceipt(record) {
    const fail = (m) => { throw new Error(m); };
    if (typeof record !== "string") fail("a receipt is text");
    const bytes = enc.encode(record);
    const cut = record.lastIndexOf("|");
    const body = cut < 0 ? "" : record.slice(0, cut);
    if (cut < 0 || !body.startsWith("{")) fail("not '<receipt JSON>|<signature hex>'");
    let sigDer, f;
    try { sigDer = hexToBytes(record.slice(cut + 1)); f = parseJson(body); } catch (e) { fail("receipt is not JSON|hex: " + e.message); }
    if (!isObj(f) || Object.keys(f).join() !== FIELDS.join() || f.v !== 1) fail("receipt fields must be exactly " + FIELDS.join(", ") + " (v 1)");
    for (const k of ["seq", "index", "begin", "end", "charge_end", "energy_wh", "net", "tax", "price"]) {
      if (!isInt(f[k]) || f[k] < 0) fail(k + " must be a non-negative integer");
    }
    if (!Array.isArray(f.segments) || !f.segments.every((s) => Array.isArray(s) && s.length === 2 && s.every(isInt))) {
      fail("segments must be [[time, Wh], ...]");
    }
    return { record: bytes, body: enc.encode(body), sigDer, fields: f };
  }

  // ---- OCMF (S.A.F.E. e.V.) ----------------------------------------------------------------------
  // An exact decimal: {m: BigInt, e: exponent of ten}.
  function decimal(src) {
    const m = /^(-?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/.exec(String(src));
    if (!m) throw new Error("not a number: " + src);
    const frac = m[3] || "";
    const e = Number(m[4] || 0) - frac.length;
    if (!Number.isSafeInteger(e) || Math.abs(e) > 10000) throw new Error("number " + String(src).slice(0, 20) + " out of range");
    return { m: BigInt(m[1] + m[2] + frac), e };
  }
  function decSub(a, b) {
    const e = Math.min(a.e, b.e);
    return { m: a.m * 10n ** BigInt(a.e - e) - b.m * 10n ** BigInt(b.e - e), e };
  }
  function decEqualsInt(d, n) {
    return d.e >= 0 ? d.m * 10n ** BigInt(d.e) === BigInt(n) : d.m === BigInt(n) * 10n ** BigInt(-d.e);
  }
  function decText(d) {
    if (d.e >= 0) return String(d.m * 10n ** BigInt(d.e));
    const neg = d.m < 0n, s = (neg ? -d.m : d.m).toString().padStart(-d.e + 1, "0");
    const txt = s.slice(0, d.e) + "." + s.slice(d.e);
    return (neg ? "-" : "") + txt.replace(/\.?0+$/, "");
  }
  const TM = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d),(\d{3})([+-])(\d\d)(\d\d) ([UIRS])$/;
  function parseTime(tm) {   // -> epoch milliseconds (integer)
    const m = typeof tm === "string" ? TM.exec(tm) : null;
    if (!m) throw new Error("TM " + JSON.stringify(tm) + " is not 'YYYY-MM-DDThh:mm:ss,fff+zzzz S'");
    const [y, mo, d, h, mi, s, ms, oh, om] = [1, 2, 3, 4, 5, 6, 7, 9, 10].map((i) => Number(m[i]));
    const off = (oh * 60 + om) * (m[8] === "+" ? 1 : -1);
    const t = Date.UTC(y, mo - 1, d, h, mi, s);
    const back = new Date(t);
    if (y < 1 || back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d ||
        h > 23 || mi > 59 || s > 59 || Math.abs(off) >= 1440) {
      throw new Error("TM " + JSON.stringify(tm) + ": not a valid time");
    }
    return (t / 1000 - off * 60) * 1000 + ms;
  }
  function parseOcmf(text) {
    const fail = (m) => { throw new Error(m); };
    if (typeof text !== "string") fail("an OCMF record is text");
    const parts = text.split("|");
    if (parts.length !== 3 || parts[0] !== "OCMF") fail("not 'OCMF|<payload>|<signature>'");
    let p, sig;
    try { p = parseJson(parts[1]); sig = parseJson(parts[2]); } catch (e) { fail("section is not JSON: " + e.message); }
    if (!isObj(p) || !isObj(sig)) fail("sections must be JSON objects");
    const fv = "FV" in p ? p.FV : "1.0";
    if (typeof fv !== "string" || !/^\d+\.\d+$/.test(fv)) fail("FV must be '<major>.<minor>'");
    if (typeof p.PG !== "string" || !/^[TF][1-9][0-9]*$|^[TF]0$/.test(p.PG)) fail("PG must be T<n> or F<n>");
    if (typeof p.MS !== "string" && typeof p.GS !== "string") fail("a meter (MS) or gateway (GS) serial is mandatory");
    if (p.PG[0] === "T") {
      if (typeof p.IS !== "boolean" || typeof p.IT !== "string") fail("a transaction record needs IS (boolean) and IT");
      if ("IF" in p && (!Array.isArray(p.IF) || p.IF.length > 4)) fail("IF must be an array of at most 4 strings");
    }
    if (!Array.isArray(p.RD) || !p.RD.length) fail("RD must be a non-empty array of readings");
    let inherited = {};
    const readings = p.RD.map((r, i) => {
      if (!isObj(r)) fail("reading " + i + " is not an object");
      const full = Object.assign({}, inherited, r);
      inherited = full;
      for (const k of ["TM", "RV", "RU", "ST"]) if (!(k in full)) fail("reading " + i + " lacks " + k);
      if (!(isInt(full.RV) || full.RV instanceof JNum)) fail("reading " + i + ": RV must be a JSON number");
      if (full.RU !== "kWh" && full.RU !== "Wh") fail("reading " + i + ": unit " + JSON.stringify(full.RU) + " is not energy");
      const ms = parseTime(full.TM);
      const v = decimal(full.RV);
      return { ms, tm: full.TM, tx: "TX" in full ? full.TX : null, wh: full.RU === "kWh" ? { m: v.m, e: v.e + 3 } : v,
               ri: "RI" in full ? full.RI : null, st: full.ST, ef: full.EF };
    });
    if (sig.SA !== "ECDSA-secp256r1-SHA256") fail("SA must be ECDSA-secp256r1-SHA256");
    if (("SE" in sig ? sig.SE : "hex") !== "hex" || ("SM" in sig ? sig.SM : "application/x-der") !== "application/x-der") {
      fail("only hex-encoded DER signatures are supported");
    }
    let sigDer;
    try { sigDer = hexToBytes(sig.SD); } catch (e) { fail("SD must be the signature in hex"); }
    return { payloadText: parts[1], payload: p, readings, sigDer };
  }
  function beginEnd(rec) {
    if (rec.readings.length < 2) throw new Error("a session record needs a begin and an end reading");
    const b = rec.readings[0], e = rec.readings[rec.readings.length - 1];
    if (b.tx !== "B" || typeof e.tx !== "string" || !"ELRAP".includes(e.tx)) throw new Error("readings must run from TX B to an end (E, L, R, A, P)");
    for (const r of [b, e]) {
      if (r.ri === null || r.st !== "G" || (typeof r.ef === "string" && r.ef.includes("E"))) {
        throw new Error("a reading is not a usable register value (RI, ST G, EF)");
      }
    }
    return [b, e];
  }
  function checkAgainstOcmf(f, rec) {
    const [b, e] = beginEnd(rec);
    const p = rec.payload;
    if (b.ms > e.ms) throw new Invalid("begin-after-end", "OCMF begin reading " + b.tm + " is after the end reading " + e.tm);
    if (p.GS !== f.charger) throw new Invalid("charger-mismatch", "OCMF GS " + JSON.stringify(p.GS) + " is not charger " + JSON.stringify(f.charger));
    if (p.PG !== "T" + f.seq) throw new Invalid("pagination-mismatch", "OCMF PG " + p.PG + " is not receipt seq " + f.seq);
    if (b.ms !== f.begin * 1000 || e.ms !== f.end * 1000) throw new Invalid("time-mismatch", "receipt times " + f.begin + ".." + f.end + " are not OCMF's");
    const energy = decSub(e.wh, b.wh);
    if (!decEqualsInt(energy, f.energy_wh)) throw new Invalid("energy-mismatch", "receipt says " + f.energy_wh + " Wh, OCMF end - begin = " + decText(energy) + " Wh");
    if (f.segments.reduce((n, s) => n + s[1], 0) !== f.energy_wh) throw new Invalid("energy-mismatch", "tariff segments do not add up to the energy");
    return [b, e];
  }

  // ---- tariff and price (docs/ledger.md §5) --------------------------------------------------------
  function canonical(x) {
    if (Array.isArray(x)) return "[" + x.map(canonical).join(",") + "]";
    if (isObj(x)) {
      return "{" + Object.keys(x).sort().map((k) => canonical(k) + ":" + canonical(x[k])).join(",") + "}";
    }
    if (typeof x === "string") {
      if (/[^ -~]|["\\]/.test(x)) throw new Error("string " + JSON.stringify(x) + " not canonical ASCII");
      return JSON.stringify(x);
    }
    if (isInt(x)) return String(x);
    throw new Error("value " + String(x) + " not allowed (integers and ASCII strings only)");
  }
  // ---- POSIX TZ rules (IEEE 1003.1 TZ, RFC 8536 footer): the local clock of a version-2 tariff --
  function daysFromCivil(y, m, d) {          // days since 1970-01-01, proleptic Gregorian
    const a = new Date(0);
    a.setUTCFullYear(y, m - 1, d);
    a.setUTCHours(0, 0, 0, 0);
    return Math.round(a.getTime() / 86400000);
  }
  const isLeap = (y) => y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  function parseTz(text) {
    const fail = (m) => { throw new Error("tz: " + m); };
    if (typeof text !== "string" || text.length < 1 || text.length > 64) fail("a string of 1..64 characters");
    const NAME = "(?:[A-Za-z]{3,}|<[A-Za-z0-9+-]{3,}>)", HMS = "([+-]?)(\\d{1,3})(?::(\\d{1,3})(?::(\\d{1,3}))?)?";
    const DATE = "(M(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})|J(\\d{1,3})|(\\d{1,3}))(?:/" + HMS + ")?";
    const re = new RegExp("^" + NAME + HMS + "(?:" + NAME + "(?:" + HMS + ")?," + DATE + "," + DATE + ")?$");
    const m = re.exec(text);
    if (!m) fail(JSON.stringify(text) + " is not a POSIX TZ rule");
    const hms = (sign, h, mi, se, maxH) => {
      if (h === undefined) return undefined;
      const H = +h, M = mi === undefined ? 0 : +mi, S = se === undefined ? 0 : +se;
      if (H > maxH || M > 59 || S > 59) fail("time out of range");
      return (sign === "-" ? -1 : 1) * (H * 3600 + M * 60 + S);
    };
    const std = -hms(m[1], m[2], m[3], m[4], 24);
    if (m[5] === undefined && m[9] === undefined) return { std, dst: null };
    const dstOff = m[6] === undefined ? std + 3600 : -hms(m[5], m[6], m[7], m[8], 24);
    const date = (i) => {     // groups i..i+9: whole, Mm, w, d, Jn, n, sign, h, m, s
      let rule;
      if (m[i + 1] !== undefined) {
        const mo = +m[i + 1], w = +m[i + 2], d = +m[i + 3];
        if (mo < 1 || mo > 12 || w < 1 || w > 5 || d > 6) fail("bad Mm.w.d date");
        rule = ["M", mo, w, d];
      } else if (m[i + 4] !== undefined) {
        if (+m[i + 4] < 1 || +m[i + 4] > 365) fail("bad Jn date");
        rule = ["J", +m[i + 4]];
      } else {
        if (+m[i + 5] > 365) fail("bad n date");
        rule = ["n", +m[i + 5]];
      }
      const t = hms(m[i + 6], m[i + 7], m[i + 8], m[i + 9], 167);
      return [rule, t === undefined ? 7200 : t];
    };
    return { std, dst: dstOff, start: date(9), end: date(19) };
  }
  function ruleDay(y, rule) {
    if (rule[0] === "J") return daysFromCivil(y, 1, 1) + rule[1] - 1 + (isLeap(y) && rule[1] >= 60 ? 1 : 0);
    if (rule[0] === "n") return daysFromCivil(y, 1, 1) + rule[1];
    const [, mo, w, d] = rule;
    const first = daysFromCivil(y, mo, 1);
    const monthLen = daysFromCivil(mo === 12 ? y + 1 : y, mo === 12 ? 1 : mo + 1, 1) - first;
    const weekday = ((first + 4) % 7 + 7) % 7;               // 1970-01-01 was a Thursday
    let day = ((d - weekday) % 7 + 7) % 7 + (w - 1) * 7;
    while (day >= monthLen) day -= 7;
    return first + day;
  }
  function tzChanges(tz, t) {                   // [[instant, offset after], ...] of the years around t
    const y = new Date((t + tz.std) * 1000).getUTCFullYear(), out = [];
    for (const yy of [y - 1, y, y + 1]) {
      out.push([ruleDay(yy, tz.start[0]) * 86400 + tz.start[1] - tz.std, tz.dst]);
      out.push([ruleDay(yy, tz.end[0]) * 86400 + tz.end[1] - tz.dst, tz.std]);
    }
    return out.sort((a, b) => a[0] - b[0]);
  }
  function tzOffset(tz, t) {
    if (tz.dst === null) return tz.std;
    let off = null;
    for (const [when, after] of tzChanges(tz, t)) {
      if (when <= t) off = after;
      else if (off === null) off = after === tz.dst ? tz.std : tz.dst;
    }
    return off;
  }
  function tzNextChange(tz, t) {
    if (tz.dst === null) return null;
    const cur = tzOffset(tz, t);
    for (let k = 0; k < 3; k++, t += 365 * 86400) {
      for (const [when, after] of tzChanges(tz, t)) if (when > t && after !== cur) return when;
    }
    return null;
  }
  function parseTariffV2(doc, fail) {
    const keys = Object.keys(doc);
    if (!TARIFF_KEYS_V2.every((k) => keys.includes(k)) || !keys.every((k) => TARIFF_KEYS_V2.includes(k) || TARIFF_OPTIONAL_V2.includes(k)) ||
        keys.includes("slots") !== keys.includes("slot_s")) {
      fail("tariff v2 keys must be " + TARIFF_KEYS_V2.join(", ") + " and optionally " + TARIFF_OPTIONAL_V2.join(", "));
    }
    for (const [k, lo, hi] of TARIFF_RANGES_V2) if (!isInt(doc[k]) || doc[k] < lo || doc[k] > hi) fail(k + " must be an integer in " + lo + ".." + hi);
    if (typeof doc.id !== "string" || !/^[A-Za-z0-9._-]{1,32}$/.test(doc.id)) fail("id must be 1..32 of A-Z a-z 0-9 . _ -");
    if ("valid_until" in doc && (!isInt(doc.valid_until) || doc.valid_until <= doc.valid_from || doc.valid_until > 4102444800)) {
      fail("valid_until must be an integer after valid_from");
    }
    const tz = parseTz(doc.tz);
    let slots = [], slotS = 0;
    if ("slots" in doc) {
      slotS = doc.slot_s;
      if (!isInt(slotS) || slotS < 60 || slotS > 86400) fail("slot_s must be an integer in 60..86400");
      if (!Array.isArray(doc.slots) || doc.slots.length < 1 || doc.slots.length > 200) fail("slots must be a list of 1..200");
      for (const sl of doc.slots) {
        if (!Array.isArray(sl) || sl.length !== 2 || !sl.every(isInt) || sl[0] < 0 || sl[0] > 4102444800 - 86400 || sl[1] < 0 || sl[1] > 1e8) {
          fail("a slot is [start_utc, kwh_price_milli], integers in range");
        }
      }
      slots = doc.slots.map((x) => [x[0], x[1]]);
      if (slots.some((x, i) => i && x[0] < slots[i - 1][0] + slotS)) fail("slots must increase and not overlap");
      if (slots[slots.length - 1][0] + slotS - slots[0][0] > 7 * 86400) fail("slots span more than 7 days");
    }
    return { tz, slots, slotS };
  }
  async function parseTariff(doc) {
    const fail = (m) => { throw new Error(m); };
    let v2 = null;
    if (isObj(doc) && doc.v === 2) v2 = parseTariffV2(doc, fail);
    else if (!isObj(doc) || Object.keys(doc).sort().join() !== TARIFF_KEYS.join()) fail("tariff keys must be exactly " + TARIFF_KEYS.join(", "));
    if (!v2) for (const [k, lo, hi] of TARIFF_RANGES) if (!isInt(doc[k]) || doc[k] < lo || doc[k] > hi) fail(k + " must be an integer in " + lo + ".." + hi);
    if (typeof doc.currency !== "string" || !/^[A-Z]{3}$/.test(doc.currency)) fail("currency must be an ISO 4217 code");
    const bands = doc.bands;
    if (!Array.isArray(bands) || bands.length < 1 || bands.length > 48) fail("bands must be a list of 1..48 bands");
    for (const b of bands) {
      if (!isObj(b) || Object.keys(b).sort().join() !== "kwh_price_milli,start_min" || !Object.values(b).every(isInt)) {
        fail("a band is {start_min, kwh_price_milli}, integers");
      }
      if (b.start_min < 0 || b.start_min >= 1440 || b.kwh_price_milli < 0 || b.kwh_price_milli > 1e8) fail("band out of range");
    }
    const hash = toHex(await sha256(enc.encode(canonical(doc))));
    if (bands[0].start_min !== 0 || bands.some((b, i) => i && bands[i - 1].start_min >= b.start_min)) fail("bands must start at 0 and increase");
    const tar = { doc, hash, currency: doc.currency, v2, bands: bands.map((b) => [b.start_min, b.kwh_price_milli]) };
    tar.offsetAt = v2 ? (t) => tzOffset(v2.tz, t) : () => doc.utc_offset_min * 60;
    tar.off = v2 ? null : doc.utc_offset_min * 60;
    return tar;
  }
  const floorDiv = (a, b) => Math.floor(a / b);
  function localMinute(tar, t) { return floorDiv((((t + tar.offsetAt(t)) % 86400) + 86400) % 86400, 60); }
  function slotAt(tar, t) {
    const v2 = tar.v2;
    if (!v2 || !v2.slots.length) return null;
    for (let i = v2.slots.length - 1; i >= 0; i--) {
      if (v2.slots[i][0] <= t) return t < v2.slots[i][0] + v2.slotS ? v2.slots[i] : null;
    }
    return null;
  }
  function bandAt(tar, t) {            // [label minute or "slot", price per kWh (1/1000 minor)]
    const slot = slotAt(tar, t);
    if (slot) return ["slot", slot[1]];
    const minute = localMinute(tar, t);
    return tar.bands.filter(([s]) => s <= minute).pop();
  }
  const rateAt = (tar, t) => bandAt(tar, t)[1];
  function changesV2(tar, begin, end) {
    // Every instant in (begin, end] where the price per kWh changes: candidates are band starts
    // on the local clock, offset changes and slot edges; kept where the price differs from the
    // second before.
    const v2 = tar.v2, cand = new Set();
    for (const [s] of v2.slots) { cand.add(s); cand.add(s + v2.slotS); }
    let t = begin;
    for (let n = 0; n < 100000 && t < end; n++) {
      const off = tar.offsetAt(t), local = t + off, sod = ((local % 86400) + 86400) % 86400;
      const next = tar.bands.map(([s]) => s * 60).find((s) => s > sod);
      let c = local - sod + (next === undefined ? 86400 : next) - off;
      const ch = tzNextChange(v2.tz, t);
      if (ch !== null && ch < c) c = ch;
      cand.add(c);
      t = c;
    }
    const out = [...cand].filter((c) => c > begin && c <= end).sort((a, b) => a - b)
      .filter((c) => rateAt(tar, c) !== rateAt(tar, c - 1));
    if (out.length > 64) throw new Error("session crosses more than 64 price changes");
    return out;
  }
  function boundaries(tar, begin, end) {
    if (tar.v2) return changesV2(tar, begin, end);
    const out = [];
    let day = floorDiv(begin + tar.off, 86400) * 86400 - tar.off;
    for (let n = 0; n < 100000; n++, day += 86400) {
      for (const [start] of tar.bands) {
        const s = day + start * 60;
        if (s > end) return out;
        if (s > begin) out.push(s);
      }
    }
    throw new Error("session spans too many days");
  }
  function price(tar, f) {
    const starts = f.segments.map((s) => s[0]);
    const crossed = boundaries(tar, f.begin, f.end);
    const expected = [f.begin].concat(crossed.filter((b) => b < f.end));
    const alt = crossed.includes(f.end) ? expected.concat([f.end]) : expected;
    if (starts.join() !== expected.join() && starts.join() !== alt.join()) {
      throw new Error("segments " + JSON.stringify(starts) + " do not follow the band starts " + JSON.stringify(expected));
    }
    if (f.segments.some((s) => s[1] < 0)) throw new Error("negative segment energy");
    if (!(f.begin <= f.charge_end && f.charge_end <= f.end)) throw new Error("charge end outside the session");
    const d = tar.doc;
    let micro = BigInt(d.session_fee_minor) * 1000000n;                 // 10^-6 minor units
    const lines = f.segments.map(([t, wh], i) => {
      const [bandStart, rate] = bandAt(tar, t);
      const amount = BigInt(wh) * BigInt(rate);
      micro += amount;
      return { start: t, end: i + 1 < f.segments.length ? f.segments[i + 1][0] : f.end, wh, bandStart, rate, micro: amount };
    });
    const idleMin = Math.max(0, floorDiv(f.end - f.charge_end, 60) - d.idle_grace_min);
    const idleMicro = BigInt(idleMin) * BigInt(d.idle_min_price_milli) * 1000n;
    micro += idleMicro;
    const net = (micro + 500000n) / 1000000n;                           // half up, once
    const tax = (net * BigInt(d.tax_bp) + 5000n) / 10000n;
    return { net, tax, total: net + tax, lines, idleMin, idleMicro, feeMinor: BigInt(d.session_fee_minor) };
  }

  // ---- the check, step by step as the host light client -------------------------------------------
  async function check(bundleText, pubDer, opts) {
    opts = opts || {};
    const notes = [];
    const witnesses = [];                    // as the host CLI: the driver's witness keys come first
    for (const v of opts.witnesses || []) witnesses.push(await parseVkey(v));
    let bundle, note, proof, consistency, tariffDoc, record;
    try {
      bundle = parseJson(bundleText);
      if (!isObj(bundle) || bundle.format !== BUNDLE_FORMAT) throw new Error("not a " + BUNDLE_FORMAT + " file");
      const need = (k) => { if (!(k in bundle)) throw new Error("missing " + k); return bundle[k]; };
      const incl = "inclusion_proof" in bundle ? bundle.inclusion_proof : [];
      if (!Array.isArray(incl)) throw new Error("inclusion_proof must be a list");
      const inclusion = incl.map((h) => b64decode(h, true));
      note = opts.checkpoint != null ? opts.checkpoint : need("checkpoint");
      if (opts.proof == null) {
        proof = { index: need("index"), tree_size: need("tree_size"), inclusion_proof: inclusion };
      } else {
        const p = typeof opts.proof === "string" ? parseJson(opts.proof) : opts.proof;
        proof = { index: p.index, tree_size: p.tree_size, inclusion_proof: p.inclusion_proof.map((h) => b64decode(h, true)) };
      }
      if (opts.consistency != null) {
        const c = typeof opts.consistency === "string" ? parseJson(opts.consistency) : opts.consistency;
        consistency = { old_size: c.old_size, new_size: c.new_size, proof: c.proof.map((h) => b64decode(h, true)) };
      }
      tariffDoc = opts.tariff != null ? opts.tariff : need("tariff");
      record = need("receipt");
    } catch (e) {
      throw new Invalid("malformed-bundle", e.message);
    }
    let spki = pubDer;
    let keySource = "given";
    if (spki == null && typeof bundle.pubkey === "string") {
      keySource = "bundle";
      try { spki = hexToBytes(bundle.pubkey); } catch (e) { spki = new Uint8Array(0); }
    }
    if (spki == null) throw new Invalid("bad-public-key", "no charger public key given");
    let key;
    try { key = await importP256(spki); } catch (e) { throw new Invalid("bad-public-key", "not a P-256 SubjectPublicKeyInfo"); }
    const fingerprint = toHex((await sha256(spki)).subarray(0, 4));
    notes.push(keySource === "bundle"
      ? "charger key " + fingerprint + " taken from the bundle: compare it with the key id on the charger or the operator's list"
      : "charger key " + fingerprint + " given by you");

    // 1. The checkpoint: signed by this charger's key.
    let cp;
    try { cp = parseCheckpoint(note); } catch (e) { throw new Invalid("malformed-checkpoint", e.message); }
    try { await verifyCheckpoint(cp, key, spki); } catch (e) {
      if (e instanceof WrongKey) throw new Invalid("wrong-key", e.message);
      if (e instanceof BadSignature) throw new Invalid("bad-checkpoint-signature", e.message);
      throw e;
    }
    if (opts.checkpoint != null && bundle.checkpoint != null && bundle.checkpoint !== opts.checkpoint) {
      await checkHistory(bundle.checkpoint, cp, key, spki, consistency);
      notes.push("the newer checkpoint (size " + cp.size + ") extends the bundle's");
    } else if (opts.checkpoint == null && isObj(bundle.consistency) && typeof bundle.consistency.old_checkpoint === "string") {
      // A proof server's answer to ?old_size=M: the bundle's checkpoint extends the driver's older one.
      let c;
      try {
        c = { old_size: bundle.consistency.old_size, new_size: bundle.consistency.new_size,
              proof: bundle.consistency.proof.map((h) => b64decode(h, true)) };
      } catch (e) { throw new Invalid("malformed-bundle", "consistency: " + e.message); }
      const older = bundle.consistency.old_checkpoint;
      await checkHistory(older, cp, key, spki, c, true);
      notes.push("the checkpoint extends the older one of size " + c.old_size);
    }
    // Witnesses the driver trusts (vkeys) and how many of them must have cosigned; the bundle's
    // cosignature lines belong to the bundle's checkpoint, a replacement brings its own lines.
    const quorum = opts.quorum != null ? opts.quorum : witnesses.length;
    if (quorum < 0) throw new Invalid("missing-cosignatures", "quorum must be >= 0");
    let cosigned = [];
    if (witnesses.length || quorum) {
      const lines = opts.checkpoint == null && Array.isArray(bundle.cosignatures) ? bundle.cosignatures.map(String) : [];
      cosigned = await verifyCosignatures(noteWithLines(note, lines), witnesses, quorum);
      if (cosigned.length) notes.push("cosigned by " + cosigned.join(", "));
    }

    // 2. The receipt: signed by the same key, and a leaf of the log the checkpoint commits to.
    let rc;
    try { rc = parseReceipt(record); } catch (e) { throw new Invalid("malformed-receipt", e.message); }
    if (!(await verifyP256(key, rc.body, rc.sigDer, true))) throw new Invalid("bad-receipt-signature", "receipt signature does not verify with this key");
    const f = rc.fields;
    if (proof.tree_size !== cp.size || proof.index !== f.index) {
      throw new Invalid("not-included", "proof is for leaf " + proof.index + " of " + proof.tree_size + ", need leaf " + f.index + " of " + cp.size);
    }
    try { await verifyInclusion(await leafHash(rc.record), f.index, cp.size, proof.inclusion_proof, cp.root); } catch (e) {
      throw new Invalid("not-included", e.message);
    }

    // 3. The OCMF record inside: a valid OCMF signature and the same session.
    let rec;
    try { rec = parseOcmf(f.ocmf); beginEnd(rec); } catch (e) { throw new Invalid("malformed-ocmf", e.message); }
    if (!(await verifyP256(key, enc.encode(rec.payloadText), rec.sigDer, false))) throw new Invalid("bad-ocmf-signature", "OCMF signature does not verify with this key");
    const [b, e] = checkAgainstOcmf(f, rec);

    // 4. The price: the tariff is the one named, and it gives the same amount.
    let tar;
    try { tar = await parseTariff(tariffDoc); } catch (err) { throw new Invalid("bad-tariff", err.message); }
    if (tar.hash !== f.tariff) throw new Invalid("tariff-hash-mismatch", "receipt names tariff " + f.tariff + ", given " + tar.hash);
    if (tar.currency !== f.currency) throw new Invalid("price-mismatch", "currency " + f.currency + " is not the tariff's " + tar.currency);
    let pr;
    try { pr = price(tar, f); } catch (err) { throw new Invalid("price-mismatch", "segments do not fit the tariff: " + err.message); }
    if (pr.net !== BigInt(f.net) || pr.tax !== BigInt(f.tax) || pr.total !== BigInt(f.price)) {
      throw new Invalid("price-mismatch", "receipt says net " + f.net + " + tax " + f.tax + " = " + f.price +
                        ", tariff gives " + pr.net + " + " + pr.tax + " = " + pr.total);
    }
    const kwh = Math.floor(f.energy_wh / 1000) + "." + String(f.energy_wh % 1000).padStart(3, "0");
    const summary = "receipt " + f.index + " (session T" + f.seq + ") of " + f.charger + identification(rec.payload) + ": " + kwh + " kWh, " +
      Math.floor(f.price / 100) + "." + String(f.price % 100).padStart(2, "0") + " " + f.currency +
      " incl. tax, leaf " + f.index + " of " + cp.size + " in " + cp.origin +
      (cosigned.length ? ", cosigned by " + cosigned.join(", ") : "");
    return { summary, receipt: f, tariff: tar, price: pr, checkpoint: cp, readings: [b, e], ocmf: rec.payload,
             notes, cosigned, fingerprint };
  }

  // Who charged, as the driver looks for it (host_tools/lightclient/check.py identification):
  // a card by its pseudonym (OCMF IT LOCAL, docs/security.md "Card privacy").
  function identification(p) {
    if (!p.ID) return "";
    if (p.IT === "LOCAL") return ", card " + p.ID;
    return ", id " + p.ID + " (" + p.IT + ")";
  }

  async function checkHistory(oldNote, cp, key, spki, consistency, fromBundle) {
    const pre = fromBundle ? "older checkpoint: " : "bundle checkpoint: ";
    let old;
    try { old = parseCheckpoint(oldNote); } catch (e) { throw new Invalid("malformed-checkpoint", pre + e.message); }
    try { await verifyCheckpoint(old, key, spki); } catch (e) {
      if (e instanceof WrongKey) throw new Invalid("wrong-key", pre + e.message);
      if (e instanceof BadSignature) throw new Invalid("bad-checkpoint-signature", pre + e.message);
      throw e;
    }
    if (consistency == null) {
      if (old.size === cp.size && !equal(old.root, cp.root)) {
        throw new Invalid("inconsistent-checkpoints", "two signed roots for tree size " + cp.size + ": the log was rewritten (the pair is the proof)");
      }
      return;
    }
    const lo = Math.min(old.size, cp.size), hi = Math.max(old.size, cp.size);
    if (consistency.old_size !== lo || consistency.new_size !== hi) {
      throw new Invalid("inconsistent-checkpoints", "consistency proof is for sizes " + consistency.old_size + ".." +
                        consistency.new_size + ", checkpoints have " + old.size + " and " + cp.size);
    }
    if (old.origin !== cp.origin) throw new Invalid("inconsistent-checkpoints", "checkpoints of different logs: " + old.origin + ", " + cp.origin);
    const [a, z] = old.size > cp.size ? [cp, old] : [old, cp];
    try { await verifyConsistency(a.size, z.size, a.root, z.root, consistency.proof); } catch (e) {
      throw new Invalid("inconsistent-checkpoints", "signed checkpoints " + a.size + " and " + z.size + " are not consistent: " + e.message);
    }
  }

  return { check, Invalid, parseJson, b64urlDecode, b64decode, b64encode, hexToBytes, toHex, sha256, derToRaw,
           verifyInclusion, verifyConsistency, parseCheckpoint, parseOcmf, parseTariff, price, canonical };
})();
if (typeof window !== "undefined") window.ChargeProofVerify = ChargeProofVerify;
