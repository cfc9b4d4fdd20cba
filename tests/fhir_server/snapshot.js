// A small snapshot generator for the plugin's constraint profiles.
//
// The profiles in fhir_profiles/ are published as differentials (what they
// change). Medplum's validator needs a snapshot (every element), so the test
// server derives one at start-up: the base R4 snapshot with each differential
// element merged into the element of the same id, and new elements (slices,
// children of a slice, children of a complex type) inserted after their
// parent, copied from the base resource or from the element's data type.
//
// It covers what constraint profiles of this plugin use (cardinality,
// fixed/pattern values, bindings, slicing by value/pattern, constraints,
// mustSupport); it is not a general FHIR snapshot generator.

'use strict';

function clone(x) {
  return JSON.parse(JSON.stringify(x));
}

/** Id of the element this id belongs under ("A.b:s.c" -> "A.b:s"). */
function parentId(id) {
  const i = id.lastIndexOf('.');
  return i < 0 ? undefined : id.slice(0, i);
}

function lastSegment(id) {
  return id.slice(id.lastIndexOf('.') + 1);
}

/** Index just after the element `id` and everything nested or sliced under it. */
function endOfSubtree(elements, id) {
  let i = elements.findIndex((e) => e.id === id);
  if (i < 0) throw new Error(`snapshot: no element ${id}`);
  i += 1;
  while (
    i < elements.length &&
    (elements[i].id.startsWith(id + '.') || elements[i].id.startsWith(id + ':'))
  ) {
    i += 1;
  }
  return i;
}

function merge(target, diff) {
  for (const [k, v] of Object.entries(diff)) {
    if (k === 'id' || k === 'path') continue;
    if (k === 'constraint') {
      target.constraint = [...(target.constraint ?? []), ...clone(v)];
    } else {
      target[k] = clone(v);
    }
  }
}

/** Finds the definition an element id without slice names would have in the base or its data type. */
function baseElementFor(elements, id, path, baseByType) {
  // 1. the unsliced element in the resource itself ("A.b:s" -> "A.b")
  const unsliced = id.replace(/:[^.]+/g, '');
  const own = elements.find((e) => e.id === unsliced);
  if (own) return own;
  // 2. a child of a complex-typed element: look it up in the type's definition
  const parent = elements.find((e) => e.id === parentId(unsliced)) ?? elements.find((e) => e.id === parentId(id));
  const typeCode = parent?.type?.[0]?.code;
  const typeSd = typeCode && baseByType.get(typeCode);
  if (!typeSd) throw new Error(`snapshot: cannot find a base for ${id} (${path})`);
  const child = typeSd.snapshot.element.find((e) => e.id === `${typeCode}.${lastSegment(unsliced)}`);
  if (!child) throw new Error(`snapshot: ${typeCode} has no element ${lastSegment(unsliced)}`);
  return child;
}

/**
 * Returns a copy of `sd` with a snapshot computed from its differential.
 * @param {object} sd - a constraint StructureDefinition (differential only)
 * @param {Map<string, object>} baseByType - base R4 StructureDefinitions by type
 */
function buildSnapshot(sd, baseByType) {
  const base = baseByType.get(sd.type);
  if (!base) throw new Error(`snapshot: unknown base type ${sd.type}`);
  const elements = clone(base.snapshot.element);
  for (const diff of sd.differential?.element ?? []) {
    const id = diff.id ?? diff.path;
    const existing = elements.find((e) => e.id === id);
    if (existing) {
      merge(existing, diff);
      continue;
    }
    const template = clone(baseElementFor(elements, id, diff.path, baseByType));
    delete template.slicing;
    template.id = id;
    template.path = diff.path;
    if (diff.sliceName) template.sliceName = diff.sliceName;
    merge(template, diff);
    const at = endOfSubtree(elements, parentId(id) && !diff.sliceName ? parentId(id) : id.replace(/:[^:.]+$/, ''));
    elements.splice(at, 0, template);
    const extProfile = diff.sliceName && template.type?.[0]?.code === 'Extension' && template.type[0].profile?.[0];
    if (extProfile && !(sd.differential.element ?? []).some((e) => e.id === `${id}.url`)) {
      // An extension slice is told apart by its url, which is the extension's
      // canonical URL (what a full snapshot generator copies from the
      // extension's own definition).
      const url = clone(baseByType.get('Extension').snapshot.element.find((e) => e.id === 'Extension.url'));
      Object.assign(url, { id: `${id}.url`, path: `${diff.path}.url`, fixedUri: extProfile });
      elements.splice(at + 1, 0, url);
    }
  }
  return { ...clone(sd), snapshot: { element: elements } };
}

module.exports = { buildSnapshot };
