// Stele log explorer. Plain JavaScript, no dependencies, no build step.
// Everything shown as verified is checked here, in the browser, with
// WebCrypto: the checkpoint's Ed25519 signature (C2SP signed note) and the
// entry's RFC 9162 inclusion proof (SHA-256) up to the checkpoint's root.
"use strict";

const enc = new TextEncoder();
const $ = (id) => document.getElementById(id);

function b64dec(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
};
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
async function sha256(b) { return new Uint8Array(await crypto.subtle.digest("SHA-256", b)); }

class VerifyError extends Error {}

// A step list: each step is shown as it is checked; the first failure ends it.
class Steps {
  constructor(ol) { this.ol = ol; ol.replaceChildren(); this.ok = true; }
  pass(text) { this.add(text, true); }
  fail(text) { this.add(text, false); this.ok = false; throw new VerifyError(text); }
  check(cond, okText, failText) { cond ? this.pass(okText) : this.fail(failText); }
  add(text, ok) {
    const li = document.createElement("li");
    li.className = ok ? "ok" : "fail";
    li.textContent = (ok ? "✓ " : "✗ FAILED: ") + text;
    this.ol.append(li);
  }
}

// parseVerifierKey reads a signed-note Ed25519 verifier key name+hash+base64(0x01||key).
async function parseVerifierKey(vkey, steps) {
  // name+hash+key: the base64 key may itself hold '+'.
  const t = vkey.trim(), i = t.indexOf("+"), j = t.indexOf("+", i + 1);
  if (i < 0 || j < 0) steps.fail(`the log key ${JSON.stringify(vkey)} is not name+hash+key`);
  const name = t.slice(0, i), id = t.slice(i + 1, j);
  let raw;
  try { raw = b64dec(t.slice(j + 1)); } catch { steps.fail("the log key's base64 does not decode"); }
  steps.check(raw.length === 33 && raw[0] === 1, `log key ${name} is an Ed25519 key`, "the log key is not an Ed25519 (type 0x01) key");
  const want = hex((await sha256(concat(enc.encode(name + "\n"), raw))).slice(0, 4));
  steps.check(want === id, `the key's ID ${id} is SHA-256(name, key), as signed notes require`, `the key's ID ${id} is not its hash ${want}`);
  return { name, id, pub: raw.slice(1) };
}

// verifyNote checks a signed note's signature by vkey and returns its key,
// text and signature lines. what names the note in the steps.
async function verifyNote(raw, vkey, steps, what) {
  const key = await parseVerifierKey(vkey, steps);
  const split = raw.indexOf("\n\n");
  if (split < 0) steps.fail(`the ${what} is not a signed note (no blank line before the signatures)`);
  const text = raw.slice(0, split + 1);
  const sigLines = raw.slice(split + 2).split("\n").filter((l) => l !== "");
  let sig = null;
  for (const line of sigLines) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) steps.fail(`malformed signature line ${JSON.stringify(line)}`);
    if (m[1] !== key.name) continue;
    const b = b64dec(m[2]);
    if (b.length === 68 && hex(b.slice(0, 4)) === key.id) sig = b.slice(4);
  }
  steps.check(sig !== null, `found the log's signature line (${key.name}, key ID ${key.id}) among ${sigLines.length} signature(s)`,
    `no signature by ${key.name} with key ID ${key.id}`);
  const k = await crypto.subtle.importKey("raw", key.pub, { name: "Ed25519" }, false, ["verify"]);
  const ok = await crypto.subtle.verify({ name: "Ed25519" }, k, sig, enc.encode(text));
  steps.check(ok, `the Ed25519 signature over the ${enc.encode(text).length}-byte ${what} text verifies (WebCrypto)`,
    `the Ed25519 signature over the ${what} text does not verify`);
  return { key, text, sigLines };
}

// verifyCheckpoint checks a C2SP checkpoint's log signature and parses it.
async function verifyCheckpoint(raw, vkey, steps) {
  const { key, text, sigLines } = await verifyNote(raw, vkey, steps, "checkpoint");
  const lines = text.split("\n");
  steps.check(lines[0] === key.name, `the checkpoint's origin is the key's name, ${key.name}`, `the checkpoint's origin ${JSON.stringify(lines[0])} is not the key's name ${key.name}`);
  steps.check(/^(0|[1-9][0-9]*)$/.test(lines[1]), `tree size ${lines[1]}`, `bad tree size ${JSON.stringify(lines[1])}`);
  let root;
  try { root = b64dec(lines[2]); } catch { root = new Uint8Array(); }
  steps.check(root.length === 32, `root hash ${hex(root)}`, "the root hash is not 32 bytes of base64");
  return { origin: lines[0], size: BigInt(lines[1]), root, cosigners: sigLines.length - 1 };
}

// verifyFreeze checks a freeze statement (docs/decisions.md, "Freezing a
// log": stele.dev/freeze/v1, then origin, size, root and the optional
// successor, successor-key and successor-url lines, signed by the log key)
// and parses it.
async function verifyFreeze(raw, vkey, steps, whose) {
  const { key, text } = await verifyNote(raw, vkey, steps, `${whose} freeze statement`);
  const lines = text.slice(0, -1).split("\n");
  steps.check(lines[0] === "stele.dev/freeze/v1", `the ${whose} freeze statement is a stele.dev/freeze/v1 statement`,
    `the ${whose} freeze statement's first line is ${JSON.stringify(lines[0])}`);
  const f = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(" ");
    if (i <= 0) steps.fail(`freeze statement line ${JSON.stringify(l)} is not "key value"`);
    f[l.slice(0, i)] = l.slice(i + 1);
  }
  steps.check(f.origin === key.name, `it freezes log ${key.name}`, `it freezes log ${JSON.stringify(f.origin)}, not ${key.name}`);
  steps.check(/^(0|[1-9][0-9]*)$/.test(f.size || ""), `final size ${f.size}`, `bad final size ${JSON.stringify(f.size)}`);
  let root;
  try { root = b64dec(f.root || ""); } catch { root = new Uint8Array(); }
  steps.check(root.length === 32, `final root ${hex(root)}`, "the final root is not 32 bytes of base64");
  if (f.successor !== undefined) {
    steps.check((f["successor-key"] || "").split("+")[0] === f.successor, `its successor is ${f.successor}, with a key of that name`,
      `the successor key ${JSON.stringify(f["successor-key"])} is not named ${f.successor}`);
  }
  return { origin: f.origin, size: BigInt(f.size), root, successor: f.successor, successorKey: f["successor-key"], successorURL: f["successor-url"] };
}

// showChain shows, verified, that this log is frozen (its freeze statement,
// signed by the log key, names the verified checkpoint's tree and the
// successor) and the predecessor the server is configured with.
async function showChain(d, cp) {
  if (!d.frozen && !d.freeze_error && !d.predecessor) return;
  $("chain").hidden = false;
  const steps = new Steps($("chain-steps"));
  const fst = $("frozen-status");
  $("frozen-facts").replaceChildren(); $("pred-facts").replaceChildren();
  fst.replaceChildren(); fst.className = ""; $("pred-status").replaceChildren(); $("pred-status").className = "";
  if (d.freeze_error) {
    banner(fst, false, `The log's freeze statement does not verify: ${d.freeze_error}`);
  } else if (d.frozen) {
    try {
      const f = await verifyFreeze(d.frozen, logKey, steps, "log's");
      steps.check(cp && f.size === cp.size && equal(f.root, cp.root), `the final tree is the verified checkpoint's (size ${f.size})`,
        "the freeze statement's tree is not the verified checkpoint's");
      const succ = f.successor ? `Its successor is ${f.successor}${f.successorURL ? " at " + f.successorURL : ""}.` : "It names no successor.";
      banner(fst, true, `Frozen: verified, this log ends at size ${f.size} and takes no more entries. ${succ}`);
      const facts_ = { "Final size": f.size.toString(), "Final root": hex(f.root) };
      if (f.successor) {
        facts_["Successor origin"] = f.successor;
        facts_["Successor key"] = f.successorKey;
        if (f.successorURL) facts_["Successor URL"] = f.successorURL;
      }
      facts($("frozen-facts"), facts_);
    } catch (e) {
      banner(fst, false, `Freeze statement verification FAILED: ${e.message}`);
    }
  }
  const p = d.predecessor;
  if (p) {
    const pst = $("pred-status");
    const at = p.url ? ` at ${p.url}` : "";
    facts($("pred-facts"), Object.assign({ "Predecessor origin": p.origin, "Predecessor key": p.key }, p.url ? { "Predecessor URL": p.url } : {}));
    if (!p.frozen) {
      banner(pst, true, `Predecessor (as configured, not verified: ${p.error || "its freeze statement was not read"}): ${p.origin}${at}.`);
      return;
    }
    try {
      const f = await verifyFreeze(p.frozen, p.key, steps, "predecessor's");
      const me = logKey.trim();
      if (f.successorKey !== me) throw new VerifyError(`it names ${f.successor || "no successor"}, not this log`);
      banner(pst, true, `Predecessor: verified, ${p.origin}${at} is frozen at size ${f.size} and names this log as its successor.`);
    } catch (e) {
      banner(pst, false, `Predecessor ${p.origin}: verification FAILED: ${e.message}`);
    }
  }
}

// verifyInclusion checks an RFC 9162 inclusion proof of leaf at index in
// the tree of size with root, showing each hashing step.
async function verifyInclusion(index, size, leaf, proof, root, steps) {
  steps.check(index < size, `entry ${index} is inside the tree of size ${size}`, `entry ${index} is outside the tree of size ${size}`);
  let r = await sha256(concat(new Uint8Array([0]), leaf));
  steps.pass(`leaf hash SHA-256(0x00 ‖ ${leaf.length}-byte leaf) = ${hex(r)}`);
  let fn = index, sn = size - 1n;
  for (let i = 0; i < proof.length; i++) {
    const p = proof[i];
    if (p.length !== 32) steps.fail(`proof hash ${i} is ${p.length} bytes, not 32`);
    if (sn === 0n) steps.fail(`the proof is too long: hash ${i} is left over`);
    if ((fn & 1n) === 1n || fn === sn) {
      r = await sha256(concat(new Uint8Array([1]), p, r));
      steps.pass(`step ${i + 1}: sibling ${hex(p).slice(0, 16)}… on the left → ${hex(r)}`);
      if ((fn & 1n) === 0n) while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await sha256(concat(new Uint8Array([1]), r, p));
      steps.pass(`step ${i + 1}: sibling ${hex(p).slice(0, 16)}… on the right → ${hex(r)}`);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) steps.fail("the proof is too short for the tree size");
  steps.check(equal(r, root), `the computed root equals the checkpoint's root ${hex(root)}`,
    `the computed root ${hex(r)} differs from the checkpoint's root ${hex(root)}`);
}

// decodeLeaf reads leaf v1 (docs/leaf-v1.md) from the verified bytes.
function decodeLeaf(b) {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = 0;
  const u8 = () => dv.getUint8(o++);
  const str = (n) => { const s = new TextDecoder("utf-8", { fatal: true }).decode(b.slice(o, o + n)); o += n; return s; };
  const i64 = () => { const v = dv.getBigInt64(o); o += 8; return v; };
  const time = (ns) => new Date(Number(ns / 1000000n)).toISOString();
  if (u8() !== 1) throw new Error("not leaf v1");
  const source = str(u8());
  const seq = dv.getBigUint64(o); o += 8;
  const idLen = dv.getUint16(o); o += 2;
  const eventID = str(idLen);
  const kind = str(u8());
  const eventTime = time(i64()), admitted = time(i64());
  const digest = hex(b.slice(o, o + 32)); o += 32;
  const size = dv.getUint32(o); o += 4;
  const signed = u8() === 1;
  return { source, "source_seq": seq.toString(), "event_id": eventID, kind, "event_time": eventTime,
    "admitted_time": admitted, "payload_digest": digest, "payload_size": size, "producer_signed": signed ? "yes" : "no" };
}

function banner(el, ok, text) {
  el.className = "banner " + (ok ? "ok" : "fail");
  el.setAttribute("role", ok ? "status" : "alert");
  el.textContent = text;
}

function facts(dl, obj) {
  dl.replaceChildren();
  for (const [k, v] of Object.entries(obj)) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k; dd.textContent = v;
    dl.append(dt, dd);
  }
}

async function getJSON(url, headers) {
  const resp = await fetch(url, { headers: headers || {}, cache: "no-store" });
  const body = await resp.json().catch(() => ({ error: `HTTP ${resp.status}` }));
  if (!resp.ok) {
    const e = new Error(body.error || `HTTP ${resp.status}`);
    e.status = resp.status;
    throw e;
  }
  return body;
}

function rateChart(el, perMinute) {
  const ns = "http://www.w3.org/2000/svg";
  const W = 720, H = 160, pad = 30;
  const total = perMinute.reduce((n, m) => n + m.count, 0);
  const max = Math.max(1, ...perMinute.map((m) => m.count));
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Events admitted per minute over the last hour: ${total} in all, at most ${max} in one minute`);
  const slot = (W - pad) / perMinute.length;
  perMinute.forEach((m, i) => {
    const h = (H - pad) * m.count / max;
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", pad + i * slot + 1); r.setAttribute("width", Math.max(1, slot - 2));
    r.setAttribute("y", H - pad / 2 - h); r.setAttribute("height", h); r.setAttribute("fill", "#2b5d8a");
    const t = document.createElementNS(ns, "title");
    t.textContent = `${m.minute.slice(11, 16)} UTC: ${m.count}`;
    r.append(t); svg.append(r);
  });
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", 0); label.setAttribute("y", 12); label.setAttribute("font-size", 11);
  label.textContent = `max ${max}/min`;
  svg.append(label);
  const p = document.createElement("p");
  p.textContent = `${total} events in the last 60 minutes.`;
  el.replaceChildren(svg, p);
}

let logKey = "";

async function loadLog() {
  const st = $("cp-status");
  try {
    const d = await getJSON("api/log");
    // A key pinned in the page's address (?key=, the contents of log.pub)
    // is what everything is checked against; else the server's own.
    const pinned = (new URLSearchParams(location.search).get("key") || "").trim();
    logKey = pinned || d.verifier_key;
    $("origin").textContent = d.origin;
    $("cp-raw").textContent = d.checkpoint;
    const steps = new Steps($("cp-steps"));
    let cp = null;
    try {
      if (pinned) {
        steps.pass(pinned === d.verifier_key.trim() ? "the log key is the one pinned in this page's address (?key=), and the server reports the same"
          : "the log key is the one pinned in this page's address (?key=); the server reports another, which is not used");
      } else {
        steps.pass("the log key is the one the server reports: compare its key ID with your log.pub, or pin it by opening this page with ?key=<log.pub>");
      }
      cp = await verifyCheckpoint(d.checkpoint, logKey, steps);
      banner(st, true, `Checkpoint verified: ${cp.origin} holds ${cp.size} entries, signed by the log and cosigned ${cp.cosigners} time(s).`);
      facts($("cp-facts"), { "Tree size": cp.size.toString(), "Root hash": hex(cp.root), "Log key": logKey, "Log key from": pinned ? "this page's address (pinned)" : "the server (not pinned)" });
    } catch (e) {
      banner(st, false, `Checkpoint verification FAILED: ${e.message}`);
    }
    await showChain(d, cp);
    const tb = $("witnesses").tBodies[0];
    tb.replaceChildren();
    for (const w of d.witnesses) {
      const tr = tb.insertRow();
      tr.insertCell().textContent = w.name;
      tr.insertCell().textContent = w.cosigned_latest ? "yes" : "no";
      tr.insertCell().textContent = w.last_cosigned ? w.last_cosigned.replace("T", " ") : "not seen since the server started";
    }
    if (d.witnesses.length === 0) tb.insertRow().insertCell().textContent = "No witness policy: the log's checkpoints are not cosigned.";
    rateChart($("rate"), d.per_minute);
  } catch (e) {
    banner(st, false, `Could not load the log: ${e.message}`);
  }
}

function authHeaders() {
  const tok = $("token").value.trim();
  return tok ? { Authorization: `Bearer ${tok}` } : {};
}

// showEntry verifies entry n (the checkpoint's signature, then its
// inclusion proof), shows its leaf, then its payload when the caller may
// read it. found, when set, says how n was found.
async function showEntry(n, found) {
  const st = $("entry-status");
  $("leaf").replaceChildren(); $("event").replaceChildren();
  const steps = new Steps($("proof-steps"));
  const what = found ? `${found}, entry ${n}` : `entry ${n}`;
  try {
    if (!/^(0|[1-9][0-9]*)$/.test(n)) throw new VerifyError("the index must be a non-negative integer");
    st.className = ""; st.textContent = `Verifying ${what}…`;
    const d = await getJSON(`api/entry/${n}`);
    const cp = await verifyCheckpoint(d.checkpoint, logKey, steps);
    const leaf = b64dec(d.leaf);
    const proof = d.proof.map(b64dec);
    await verifyInclusion(BigInt(n), cp.size, leaf, proof, cp.root, steps);
    banner(st, true, `Verified: ${what} is in the log's tree of size ${cp.size}, whose checkpoint the log signed.`);
    try { facts($("leaf"), decodeLeaf(leaf)); } catch (e) { facts($("leaf"), { error: `the leaf is not leaf v1: ${e.message}` }); }
  } catch (e) {
    banner(st, false, `Verification FAILED for ${what}: ${e.message}`);
    return;
  }
  try {
    const evd = await getJSON(`api/event/${n}`, authHeaders());
    const out = [];
    if (evd.erased) {
      const p = document.createElement("p");
      p.textContent = `The payload was erased on ${evd.erased.erased_at} (reason: ${evd.erased.reason}; reference: ${evd.erased.request_reference}; erasure event ${evd.erased.erasure_index}). The leaf and its proof above remain valid.`;
      out.push(p);
    } else {
      for (const [title, body] of [["Normalised event", evd.normalized ? JSON.stringify(evd.normalized, null, 2) : "(none)"], [`Raw record (${evd.format})`, evd.record]]) {
        const h = document.createElement("h4"); h.textContent = title;
        const pre = document.createElement("pre"); pre.textContent = body;
        out.push(h, pre);
      }
    }
    $("event").replaceChildren(...out);
  } catch (e) {
    const p = document.createElement("p");
    p.textContent = `The event's payload is not shown: ${e.message}. Reading payloads needs the reader role: enter a reader token.`;
    $("event").replaceChildren(p);
  }
}

async function lookup(ev) {
  ev.preventDefault();
  await showEntry($("index").value.trim());
}

// lookupByID finds the entry of (source, event_id) through the server's
// dedup index, then verifies it exactly as a lookup by index does.
async function lookupByID(ev) {
  ev.preventDefault();
  const source = $("source").value.trim(), id = $("event-id").value.trim();
  const st = $("entry-status");
  $("leaf").replaceChildren(); $("event").replaceChildren(); $("proof-steps").replaceChildren();
  st.className = ""; st.textContent = `Looking up event ${id} of ${source}…`;
  let d;
  try {
    d = await getJSON(`api/lookup?source=${encodeURIComponent(source)}&event_id=${encodeURIComponent(id)}`, authHeaders());
  } catch (e) {
    if (e.status === 404) banner(st, false, `Not found: ${e.message.replace(/^NotFound: /, "")}`);
    else if (e.status === 401 || e.status === 403) banner(st, false, `Lookup refused: ${e.message}. Looking events up by event ID needs the reader role: enter a reader token.`);
    else banner(st, false, `Lookup failed: ${e.message}`);
    return;
  }
  $("index").value = d.index;
  await showEntry(String(d.index), `event ${id} of ${source}`);
}

// showTimeline lists a subject's events as the server's history index
// finds them, verifying the checkpoint and every inclusion proof here.
async function showTimeline(ev) {
  ev.preventDefault();
  const subject = $("subject").value.trim();
  const st = $("history-status"), table = $("timeline"), tb = table.tBodies[0];
  tb.replaceChildren(); table.hidden = true; $("history-note").textContent = "";
  st.className = ""; st.textContent = `Reading the timeline of ${subject}…`;
  let d;
  try {
    d = await getJSON(`api/history?subject=${encodeURIComponent(subject)}`, authHeaders());
  } catch (e) {
    banner(st, false, `No timeline: ${e.message}`);
    return;
  }
  let verified = 0;
  try {
    const cp = await verifyCheckpoint(d.checkpoint, logKey, new Steps(document.createElement("ol")));
    for (const e of d.events) {
      const tr = tb.insertRow();
      tr.insertCell().textContent = e.event_time.replace("T", " ");
      const a = document.createElement("a");
      a.href = `#entry=${e.index}`; a.textContent = `#${e.index}`;
      a.setAttribute("aria-label", `entry ${e.index}: verify and show`);
      tr.insertCell().append(a);
      tr.insertCell().textContent = e.kind;
      tr.insertCell().textContent = e.source;
      tr.insertCell().textContent = e.as.join("+");
      tr.insertCell().textContent = `${e.actor || ""} → ${(e.targets || []).join(", ")}`;
      tr.insertCell().textContent = [e.outcome, e.problem].filter(Boolean).join("; ");
      const pc = tr.insertCell();
      const proof = e.proof.inclusion.map((h) => Uint8Array.from(h.match(/../g) || [], (x) => parseInt(x, 16)));
      try {
        await verifyInclusion(BigInt(e.index), cp.size, b64dec(e.leaf), proof, cp.root, new Steps(document.createElement("ol")));
        pc.textContent = "✓ verified"; pc.className = "ok"; verified++;
      } catch (err) {
        pc.textContent = `✗ FAILED: ${err.message}`; pc.className = "fail";
      }
    }
  } catch (e) {
    banner(st, false, `Timeline verification FAILED: ${e.message}`);
    return;
  }
  table.hidden = d.events.length === 0;
  $("timeline-caption").textContent = `Events naming ${subject} (searched: ${d.searched.join(", ")}), oldest first`;
  const ok = verified === d.events.length;
  banner(st, ok, ok
    ? `Timeline of ${subject}: ${d.events.length} events, each inclusion proof verified in your browser against the checkpoint of size ${d.size}.`
    : `Timeline verification FAILED: ${d.events.length - verified} of ${d.events.length} inclusion proofs did not verify.`);
  let note = `Completeness: ${d.completeness}. This index was built by the server from entries [0, ${d.index_size}).`;
  if (d.unindexed.length > 0) note += ` ${d.unindexed.length} entries could not be indexed (erased or unreadable): ${d.unindexed.join(", ")}.`;
  $("history-note").textContent = note;
}

// A link #entry=N (from a timeline) verifies and shows entry N.
function followHash() {
  const m = /^#entry=(0|[1-9][0-9]*)$/.exec(location.hash);
  if (!m) return;
  $("index").value = m[1];
  $("h-lookup").scrollIntoView();
  showEntry(m[1]);
}

document.addEventListener("DOMContentLoaded", async () => {
  $("lookup").addEventListener("submit", lookup);
  $("lookup-id").addEventListener("submit", lookupByID);
  $("history").addEventListener("submit", showTimeline);
  window.addEventListener("hashchange", followHash);
  await loadLog();
  followHash();
});
