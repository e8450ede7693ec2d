// A Foxglove client built from the ecosystem's own packages, driven by test_bridge_foxglove.py.
//
//   node client.mjs '<json options>'
//
// Options: url (with ?token=), subprotocol, seconds (how long to receive; without it the
// client leaves once every request is answered), topics (to subscribe to), getParameters,
// setParameters (protocol Parameter objects), services (names to call, each once). Prints one JSON object per line: open, serverInfo, status, parameterValues,
// serviceResponse, serviceCallFailure, close, error, and at the end `summary` with, per topic,
// the messages received, the ones that failed to decode and their header stamps [sec, nanosec].
// The three @foxglove packages are CommonJS: their exports come as one default object.
import wsProtocol from "@foxglove/ws-protocol";
import rosmsg from "@foxglove/rosmsg";
import serialization from "@foxglove/rosmsg2-serialization";
import WebSocket from "ws";

const { FoxgloveClient } = wsProtocol;
const { parse } = rosmsg;
const { MessageReader, MessageWriter } = serialization;

const options = JSON.parse(process.argv[2]);
const print = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const ws = new WebSocket(options.url, [options.subprotocol]);
const client = new FoxgloveClient({ ws });
const readers = new Map(); // subscription id -> { topic, reader }
const topics = {};
const services = new Map(); // call id -> { name, reader }
let nextCall = 1;
let unanswered =
  (options.getParameters ? 1 : 0) + (options.setParameters ? 1 : 0) +
  (options.services?.length ?? 0);

function answered() {
  unanswered -= 1;
  if (unanswered === 0 && options.seconds === undefined) client.close();
}

function decoder(schema) {
  return new MessageReader(parse(schema, { ros2: true }));
}

client.on("open", () => print({ event: "open", protocol: ws.protocol }));
client.on("error", (error) => print({ event: "error", message: String(error) }));
client.on("close", (event) => {
  print({ event: "close", code: event.code, reason: String(event.reason) });
  finish();
});
client.on("serverInfo", (info) => print({ event: "serverInfo", ...info }));
client.on("status", (status) => print({ event: "status", ...status }));
client.on("parameterValues", (values) => {
  print({ event: "parameterValues", ...values });
  answered();
});
client.on("serviceCallFailure", (failure) => {
  print({ event: "serviceCallFailure", ...failure });
  answered();
});

client.on("advertise", (channels) => {
  for (const channel of channels) {
    if (!options.topics?.includes(channel.topic)) continue;
    const reader = decoder(channel.schema);
    const id = client.subscribe(channel.id);
    readers.set(id, { topic: channel.topic, reader });
    topics[channel.topic] = { schemaName: channel.schemaName, encoding: channel.encoding,
                              received: 0, failed: 0, stamps: [], checks: [] };
  }
  if (options.getParameters) client.getParameters(options.getParameters, "get");
  if (options.setParameters) client.setParameters(options.setParameters, "set");
  if (options.seconds !== undefined) setTimeout(() => client.close(), options.seconds * 1000);
});

client.on("message", ({ subscriptionId, data }) => {
  const { topic, reader } = readers.get(subscriptionId);
  const record = topics[topic];
  record.received += 1;
  try {
    const message = reader.readMessage(data);
    record.stamps.push([message.header.stamp.sec, message.header.stamp.nanosec]);
    if (message.data !== undefined && record.checks.length < 3) {
      // Image: the pixels are all there, as the header says.
      record.checks.push({ width: message.width, height: message.height,
                           step: message.step, encoding: message.encoding,
                           bytes: message.data.length });
    } else if (message.wrench !== undefined && record.checks.length < 3) {
      record.checks.push({ frame_id: message.header.frame_id, fz: message.wrench.force.z });
    }
  } catch (error) {
    record.failed += 1;
    if (record.failed === 1) print({ event: "error", message: `${topic}: ${error}` });
  }
});

client.on("advertiseServices", (advertised) => {
  for (const service of advertised) {
    if (!options.services?.includes(service.name)) continue;
    const request = new MessageWriter(parse(service.request.schema, { ros2: true }));
    const callId = nextCall++;
    services.set(callId, { name: service.name, reader: decoder(service.response.schema) });
    client.sendServiceCallRequest({ serviceId: service.id, callId, encoding: "cdr",
                                    data: request.writeMessage({}) });
  }
});

client.on("serviceCallResponse", ({ callId, encoding, data }) => {
  const { name, reader } = services.get(callId);
  print({ event: "serviceResponse", name, encoding, response: reader.readMessage(data) });
  answered();
});

let finished = false;
function finish() {
  if (finished) return;
  finished = true;
  // Exit once the (large) line is written: a pipe takes it asynchronously.
  process.stdout.write(JSON.stringify({ event: "summary", topics }) + "\n", () => process.exit(0));
}
