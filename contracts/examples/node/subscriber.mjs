#!/usr/bin/env node
// A subscriber of the second-opinion events that uses nothing of the project's code: only the published
// JSON Schemas, an AMQP client (amqplib), a JSON Schema validator (ajv) and each service's catch-up feed.
// It does what docs/subscribing.md describes, in this order:
//   1. declare a durable quorum queue of its own (with a dead-letter queue of its own) and bind it;
//   2. catch up from each service's feed (GET /events) until nothing published before the binding is missing;
//   3. consume the queue. Every event, from the feed or the queue, is validated (envelope and data), skipped
//      when its id was processed already or when it is a deprecated copy of an event it also receives
//      (`supersededby`), then applied; the effect, the id and the feed positions are saved together before the
//      message is acknowledged.
// What it keeps of a case: its status and the ids that link it (appointment, invoice, report). On
// PersonalDataErased it purges what it holds about the patient (here: the sealed payer name); ids stay.
//
//   npm ci
//   AMQP_URL=amqp://user:password@127.0.0.1:15673/ FEED_TOKEN=<a token with the integration role> \
//   node subscriber.mjs --queue pharmacy.secondopinion --binding '#' --state state.json \
//     --schemas ../../secondopinion_contracts/published \
//     --feed http://127.0.0.1:8001 --feed http://127.0.0.1:8002 --feed http://127.0.0.1:8003 --feed http://127.0.0.1:8004
//
// One JSON line per event on stdout: {"outcome": "processed" | "duplicate" | "superseded" | "invalid", ...}.
import { existsSync, readFileSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import amqp from "amqplib";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const EXCHANGE = "secondopinion.events";
const TERMINAL = new Set(["CaseClosed", "CaseDeclined", "CaseWithdrawn"]);

const { values: options } = parseArgs({
  options: {
    url: { type: "string", default: process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672/" },
    queue: { type: "string", default: "example.secondopinion" },
    binding: { type: "string", multiple: true, default: ["#"] },
    schemas: { type: "string", default: "../../secondopinion_contracts/published" },
    state: { type: "string", default: "subscriber-state.json" },
    feed: { type: "string", multiple: true, default: [] },
    token: { type: "string", default: process.env.FEED_TOKEN ?? "" },
    "page-size": { type: "string", default: "100" },
    // For tests and demonstrations: stop once this many cases have ended.
    "exit-after-cases-ended": { type: "string" },
  },
});

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

// --- validation: the envelope schema, then the schema of the event's type ------------------------------------
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
for (const keyword of ["x-cloudevents-type", "x-routing-key", "x-sunset", "x-replaced-by"]) {
  ajv.addKeyword({ keyword, schemaType: "string" });
}
const validateEnvelope = ajv.compile(JSON.parse(readFileSync(join(options.schemas, "envelope.json"), "utf8")));
const dataValidators = new Map();  // by CloudEvents type
for (const service of readdirSync(options.schemas, { withFileTypes: true })) {
  if (!service.isDirectory() || service.name === "examples") continue;
  for (const file of readdirSync(join(options.schemas, service.name))) {
    const schema = JSON.parse(readFileSync(join(options.schemas, service.name, file), "utf8"));
    dataValidators.set(schema["x-cloudevents-type"], ajv.compile(schema));
  }
}

function problemsOf(event) {
  if (!validateEnvelope(event)) return `envelope: ${ajv.errorsText(validateEnvelope.errors)}`;
  const validateData = dataValidators.get(event.type);
  if (!validateData) return `unknown type ${event.type}`;
  if (!validateData(event.data)) return `data: ${ajv.errorsText(validateData.errors)}`;
  return null;
}

// --- state: processed ids, feed positions and what we keep of each case, saved atomically together ------------
const state = existsSync(options.state)
  ? JSON.parse(readFileSync(options.state, "utf8"))
  : { processed: {}, positions: {}, cases: {} };

function save() {
  writeFileSync(`${options.state}.tmp`, JSON.stringify(state));
  renameSync(`${options.state}.tmp`, options.state);
}

function routingKeyOf(type) {
  return type.replace(/^secondopinion\./, "");
}

// Would one of our bindings deliver this routing key? (AMQP topic matching: `*` one word, `#` zero or more.)
function bound(routingKey) {
  return options.binding.some((pattern) => {
    const regex = pattern.split(".").map((word) => (word === "#" ? "(?:[^.]+(?:\\.|$))*" : word === "*" ? "[^.]+(?:\\.|$)" : `${word}(?:\\.|$)`)).join("");
    return new RegExp(`^${regex}$`).test(routingKey);
  });
}

function apply(event) {
  const caseId = event.subject;
  const record = (state.cases[caseId] ??= { status: "open", events: [] });
  const name = event.type.split(".")[2];
  record.events.push(name);
  const data = event.data;
  if (data.appointment_id) record.appointment_id = data.appointment_id;
  if (data.invoice_id) record.invoice_id = data.invoice_id;
  if (data.report_id) record.report_id = data.report_id;
  if (name === "CaseSubmitted" && data.payer_name_sealed) record.payer_name_sealed = data.payer_name_sealed;
  if (name === "PersonalDataErased") {
    delete record.payer_name_sealed;  // everything personal goes; ids, codes and history stay
    record.erased_on = data.erased_on;
  }
  if (TERMINAL.has(name)) {
    record.status = { CaseClosed: "closed", CaseDeclined: "declined", CaseWithdrawn: "withdrawn" }[name];
    record.ended_by = event.type;
  }
  return record;
}

let endedCases = 0;
const stopAfter = options["exit-after-cases-ended"] ? Number(options["exit-after-cases-ended"]) : null;

// Handles one event, from the feed or the queue; returns true if it was acceptable (ack), false if not (reject).
function handle(event, via, position) {
  const base = { via, id: event?.id, type: event?.type, case: event?.subject };
  const problems = event && typeof event === "object" ? problemsOf(event) : "not a JSON object";
  if (problems) {
    emit({ outcome: "invalid", ...base, error: problems });
    return false;
  }
  let outcome = "processed";
  if (state.processed[event.id]) outcome = "duplicate";
  else if (event.supersededby && bound(routingKeyOf(event.supersededby))) outcome = "superseded";
  let record = null;
  if (outcome === "processed") {
    const wasOpen = state.cases[event.subject]?.status ?? "open";
    record = apply(event);
    if (wasOpen === "open" && record.status !== "open") endedCases += 1;
  }
  if (outcome !== "duplicate") state.processed[event.id] = true;
  if (position) state.positions[position.feed] = position.next;
  save();
  emit({ outcome, ...base, ...(record ? { status: record.status, links: linksOf(record) } : {}) });
  return true;
}

function linksOf(record) {
  const { appointment_id, invoice_id, report_id } = record;
  return { appointment_id, invoice_id, report_id };
}

// --- catching up from the feeds ----------------------------------------------------------------------------
const txidOf = (position) => BigInt(position.split(".")[0]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function catchUp(feed) {
  const limit = Number(options["page-size"]);
  let after = state.positions[feed] ?? "0";
  let target = null;  // the Head-Position of the first request, made after our queue was bound
  for (;;) {
    const response = await fetch(`${feed}/events?after=${after}&limit=${limit}`, {
      headers: { authorization: `Bearer ${options.token}`, accept: "application/cloudevents-batch+json" },
    });
    if (!response.ok) throw new Error(`${feed}/events: ${response.status} ${await response.text()}`);
    const events = await response.json();
    const next = response.headers.get("next-position");
    target ??= response.headers.get("head-position");
    for (const event of events) handle(event, "feed", { feed, next });
    state.positions[feed] = next;
    save();
    after = next;
    if (events.length < limit) {
      if (txidOf(response.headers.get("complete-before")) >= txidOf(target)) break;
      await sleep(200);  // a transaction older than our binding is still running: its events will follow
    }
  }
  emit({ outcome: "caught-up", feed, position: after });
}

// --- main ---------------------------------------------------------------------------------------------------
const connection = await amqp.connect(options.url, { clientProperties: { connection_name: options.queue } });
const channel = await connection.createChannel();
await channel.checkExchange(EXCHANGE);  // passively: the exchange is the publishers'
const deadLetters = `${options.queue}.dead`;
await channel.assertExchange(deadLetters, "fanout", { durable: true });
await channel.assertQueue(deadLetters, { durable: true, arguments: { "x-queue-type": "quorum" } });
await channel.bindQueue(deadLetters, deadLetters, "");
await channel.assertQueue(options.queue, {
  durable: true, arguments: { "x-queue-type": "quorum", "x-dead-letter-exchange": deadLetters },
});
for (const binding of options.binding) await channel.bindQueue(options.queue, EXCHANGE, binding);
emit({ outcome: "bound", queue: options.queue, bindings: options.binding });

// Bound first, then caught up: whatever is published from now on waits in the queue; the rest is in the feeds.
for (const feed of options.feed) await catchUp(feed);

let finishing = false;
async function finish() {
  if (finishing) return;
  finishing = true;
  emit({ outcome: "stopped", cases: state.cases });
  await channel.close();
  await connection.close();
}

if (stopAfter !== null && endedCases >= stopAfter) await finish();
else {
  await channel.prefetch(20);
  await channel.consume(options.queue, (message) => {
    let event = null;
    try {
      event = JSON.parse(message.content.toString("utf8"));
    } catch {
      event = null;
    }
    if (handle(event, "queue", null)) channel.ack(message);
    else channel.nack(message, false, false);  // to our own dead-letter queue
    if (stopAfter !== null && endedCases >= stopAfter) finish();
  });
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => finish().then(() => process.exit(0)));
}
