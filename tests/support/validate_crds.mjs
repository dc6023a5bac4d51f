// Validates Argo CD, Flux and Prometheus Operator objects against the JSON schemas of their
// projects' API types, offline, with the generated models of @kubernetes-models/argo-cd,
// @kubernetes-models/flux-cd and @kubernetes-models/prometheus-operator (`make tools` installs them
// into .tools/node). The schemas check types, required fields and
// enumerations; like the models, they let unknown field names through.
//
//   node tests/support/validate_crds.mjs MODULES_DIR < objects.json
//
// MODULES_DIR is the node_modules folder holding the models; stdin is a JSON array of objects.
// Prints a JSON array with, for each object in order, {"object": "Kind/name", "errors": [...]}.
// Exit status: 0 when every object is valid, 1 when one is not (an object of a kind without a
// model is invalid, never skipped), 2 when the arguments or the input are unusable.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// API group -> the package with its models, laid out as <package>/<group>/<version>/<Kind>.js.
const PACKAGES = {
  "argoproj.io": "@kubernetes-models/argo-cd",
  "source.toolkit.fluxcd.io": "@kubernetes-models/flux-cd",
  "kustomize.toolkit.fluxcd.io": "@kubernetes-models/flux-cd",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

function usage(message) {
  process.stderr.write(`validate_crds: ${message}\n`);
  process.exit(2);
}

async function errorsOf(modulesDir, object) {
  const [group, version] = String(object.apiVersion).split("/");
  const kind = String(object.kind);
  const file = PACKAGES[group] && join(modulesDir, PACKAGES[group], group, version ?? "", `${kind}.js`);
  if (!file || !existsSync(file)) {
    return [`no schema for apiVersion ${object.apiVersion} kind ${kind}`];
  }
  const { [kind]: Model } = await import(pathToFileURL(file).href);
  try {
    new Model(object).validate();
    return [];
  } catch (error) {
    if (!error.errors) throw error;
    return error.errors.map((e) => `${e.instancePath || "/"} ${e.message}`);
  }
}

const [modulesDir] = process.argv.slice(2);
if (!modulesDir || !existsSync(join(modulesDir, "@kubernetes-models"))) {
  usage(`no @kubernetes-models in ${modulesDir}: run \`make tools\``);
}
let objects;
try {
  objects = JSON.parse(readFileSync(0, "utf8"));
} catch (error) {
  usage(`stdin is not JSON: ${error.message}`);
}
if (!Array.isArray(objects)) usage("stdin must be a JSON array of objects");

const report = [];
for (const object of objects) {
  const name = object?.metadata?.name ?? "?";
  report.push({ object: `${object?.kind}/${name}`, errors: await errorsOf(modulesDir, object ?? {}) });
}
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
process.exit(report.some((entry) => entry.errors.length) ? 1 : 0);
