// Checks the published contracts with tools nobody here wrote, as an integration team would:
// the AsyncAPI reference parser, ajv (JSON Schema 2020-12, strict, with ajv-formats) and the CloudEvents SDK.
// Usage: node check-contracts.mjs <published directory>. Prints one JSON report; exits 1 on any problem.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { Parser } from "@asyncapi/parser";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { HTTP, CloudEvent } from "cloudevents";

const published = process.argv[2];
const problems = [];
const counts = { schemas: 0, examples: 0, asyncapiMessages: 0, asyncapiExamples: 0 };

function jsonFiles(directory) {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) return jsonFiles(path);
    return name.endsWith(".json") ? [path] : [];
  });
}

// The project's own annotations; strict mode refuses any keyword it does not know.
export function contractValidator(extraKeywords = []) {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  for (const keyword of ["x-cloudevents-type", "x-routing-key", "x-sunset", "x-replaced-by", ...extraKeywords]) {
    ajv.addKeyword({ keyword, schemaType: "string" });
  }
  return ajv;
}

const ajv = contractValidator();
const files = jsonFiles(published).filter((path) => relative(published, path) !== "asyncapi.json");
const schemaFiles = files.filter((path) => !relative(published, path).startsWith("examples"));
const exampleFiles = files.filter((path) => relative(published, path).startsWith("examples"));
const validators = new Map();
for (const path of schemaFiles) {
  const name = relative(published, path);
  try {
    const schema = JSON.parse(readFileSync(path, "utf8"));
    validators.set(name, ajv.compile(schema));
    counts.schemas += 1;
  } catch (error) {
    problems.push(`${name}: does not compile in ajv strict mode: ${error.message}`);
  }
}

const envelope = validators.get("envelope.json");
for (const path of exampleFiles) {
  const name = relative(published, path);
  const message = JSON.parse(readFileSync(path, "utf8"));
  counts.examples += 1;
  if (envelope && !envelope(message)) problems.push(`${name}: envelope: ${ajv.errorsText(envelope.errors)}`);
  const [, service, event, version] = message.type.split(".");
  const data = validators.get(join(service, `${event}.${version}.json`));
  if (!data) problems.push(`${name}: no schema for ${message.type}`);
  else if (!data(message.data)) problems.push(`${name}: data: ${ajv.errorsText(data.errors)}`);
  try {
    // As a receiver would: the AMQP body in structured mode, through the SDK's own validation.
    const received = HTTP.toEvent({ headers: { "content-type": "application/cloudevents+json" }, body: JSON.stringify(message) });
    if (!(received instanceof CloudEvent) || received.id !== message.id) problems.push(`${name}: the CloudEvents SDK read another event`);
    else received.validate();
  } catch (error) {
    problems.push(`${name}: rejected by the CloudEvents SDK: ${error.message} ${JSON.stringify(error.errors ?? "")}`);
  }
}
for (const name of validators.keys()) {
  if (name === "envelope.json") continue;
  if (!exampleFiles.some((path) => relative(join(published, "examples"), path) === name)) problems.push(`${name}: no example`);
}

// The parser marks each schema it resolved with its own annotation.
const parsed = contractValidator(["x-parser-schema-id"]);
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(join(published, "asyncapi.json"), "utf8"));
// Errors and warnings are problems; information and hints (e.g. that a newer AsyncAPI version exists) are listed.
const notes = [];
for (const diagnostic of diagnostics) {
  (diagnostic.severity <= 1 ? problems : notes).push(`asyncapi.json: ${["error", "warning", "information", "hint"][diagnostic.severity]} ${diagnostic.code}: `
    + `${diagnostic.message} at /${diagnostic.path.join("/")}`);
}
if (!document) problems.push("asyncapi.json: the parser produced no document");
else {
  for (const message of document.allMessages()) {
    counts.asyncapiMessages += 1;
    const payload = message.payload().json();
    const check = parsed.compile(payload);
    const examples = message.examples().all();
    if (examples.length === 0) problems.push(`asyncapi.json: message ${message.id()} has no example`);
    for (const example of examples) {
      counts.asyncapiExamples += 1;
      if (!check(example.payload())) problems.push(`asyncapi.json: example of ${message.id()}: ${parsed.errorsText(check.errors)}`);
    }
  }
}

console.log(JSON.stringify({ counts, problems, notes }, null, 2));
process.exit(problems.length ? 1 : 0);
