#!/usr/bin/env node
// Validates Kubernetes objects (multi-document YAML, e.g. `kubectl kustomize` output) offline
// against the JSON schemas that npm kubernetes-models bundles (built-in kinds) and
// @kubernetes-models/prometheus-operator bundles (ServiceMonitor, PrometheusRule, ... from the
// operator's CRDs).
//
//   node tests/deploy/validate_k8s.mjs rendered.yaml [more.yaml ...]   ("-" reads stdin)
//
// Prints one JSON line per object: {"apiVersion", "kind", "name", "errors": [...]}, and exits 1
// if any object has errors, 2 on usage or YAML problems.
//
// Two kinds of error:
//  - schema: types, required fields, enums and formats, as the API server checks them;
//  - unknown field: Kubernetes' OpenAPI schemas do not forbid extra properties, so a misspelt
//    key (`readinesProbe`) would pass the schema and be dropped by the API server. Each object
//    is validated through a Proxy that records which properties the compiled schema reads; a key
//    that the schema never looked at, in an object whose keys it never listed (a map such as
//    labels lists them), is unknown to the schema. Free-form objects (no schema beneath them)
//    are not descended into, so nothing inside them is reported.
//
// Packages: tests/deploy/package.json (npm ci --prefix tests/deploy). Nothing here uses the
// network.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const CORE_GROUPS = new Set([
  "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io", "apps",
  "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch", "certificates.k8s.io",
  "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io", "flowcontrol.apiserver.k8s.io",
  "networking.k8s.io", "node.k8s.io", "policy", "rbac.authorization.k8s.io", "resource.k8s.io",
  "scheduling.k8s.io", "storage.k8s.io", "storagemigration.k8s.io",
]);

async function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return null;
  let module;
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  try {
    if (group === "") {
      module = await import(`kubernetes-models/${apiVersion}`);
    } else if (CORE_GROUPS.has(group)) {
      module = await import(`kubernetes-models/${apiVersion}`);
    } else if (group === "monitoring.coreos.com") {
      module = await import(`@kubernetes-models/prometheus-operator/${apiVersion}`);
    } else {
      return null;
    }
  } catch (error) {
    if (error.code === "ERR_MODULE_NOT_FOUND" || error.code === "ERR_PACKAGE_PATH_NOT_EXPORTED") {
      return null;
    }
    throw error;
  }
  const model = module[kind];
  return typeof model === "function" && typeof model.prototype.validate === "function"
    ? model : null;
}

// Wraps `root` so that every property read and every key enumeration is recorded per path.
function tracked(root) {
  const seen = new Map(); // path -> {value, read: Set, enumerated: bool}
  const wrap = (value, path) => {
    let record = seen.get(path);
    if (!record) {
      record = { value, read: new Set(), enumerated: false };
      seen.set(path, record);
    }
    return new Proxy(value, {
      get(target, key, receiver) {
        const child = Reflect.get(target, key, receiver);
        if (typeof key !== "string") return child;
        record.read.add(key);
        if (child !== null && typeof child === "object") return wrap(child, `${path}/${key}`);
        return child;
      },
      has(target, key) {
        if (typeof key === "string") record.read.add(key);
        return Reflect.has(target, key);
      },
      ownKeys(target) {
        record.enumerated = true;
        return Reflect.ownKeys(target);
      },
    });
  };
  return { proxy: wrap(root, ""), seen };
}

function unknownFields(seen) {
  const unknown = [];
  for (const [path, record] of seen) {
    if (Array.isArray(record.value) || record.enumerated) continue;
    for (const key of Object.keys(record.value)) {
      if (!record.read.has(key)) unknown.push(`${path}/${key}`);
    }
  }
  return unknown.sort();
}

async function validateObject(object) {
  const result = {
    apiVersion: object?.apiVersion,
    kind: object?.kind,
    name: object?.metadata?.name,
    errors: [],
  };
  if (object === null || typeof object !== "object" || Array.isArray(object)) {
    result.errors.push("not an object");
    return result;
  }
  const model = await modelFor(object.apiVersion, object.kind);
  if (!model) {
    result.errors.push(`no schema for ${object.apiVersion} ${object.kind}`);
    return result;
  }
  const { proxy, seen } = tracked(object);
  try {
    model.prototype.validate.call(proxy);
  } catch (error) {
    result.errors.push(`schema: ${error.message}`);
    return result; // a failed validation stops early: unknown-field results would be partial
  }
  for (const path of unknownFields(seen)) {
    result.errors.push(`unknown field: ${path}`);
  }
  return result;
}

async function main(paths) {
  if (paths.length === 0) {
    console.error("usage: validate_k8s.mjs FILE.yaml... (- for stdin)");
    return 2;
  }
  let failed = false;
  for (const path of paths) {
    const text = readFileSync(path === "-" ? 0 : path, "utf8");
    const documents = parseAllDocuments(text);
    for (const document of documents) {
      if (document.errors.length > 0) {
        console.error(`${path}: ${document.errors.map((e) => e.message).join("; ")}`);
        return 2;
      }
      const object = document.toJS();
      if (object === null || object === undefined) continue;
      const objects = object.kind === "List" && Array.isArray(object.items) ? object.items : [object];
      for (const item of objects) {
        const result = await validateObject(item);
        failed ||= result.errors.length > 0;
        console.log(JSON.stringify(result));
      }
    }
  }
  return failed ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
