// A Node subscriber over several logins: read StreamUpdate.login and resume with
// StreamUpdatesRequest.resume_from, loading the contract from protos/ alone.
//
//   node tests/contract/stream_logins.cjs PROTOS_DIR HOST:PORT LOGINS [RESUME_FROM_JSON]
//
// Opens StreamUpdates over every account (resume_from: a JSON array of
// {login, epoch, sequence}), reads until LOGINS logins sent their SnapshotComplete, then
// cancels and prints one JSON object: the opening status's login and, per login, the
// epoch, sequence and resync of its SnapshotComplete and its count of snapshot chunks.
"use strict";

const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const [protosDir, address, logins, resumeFrom] = process.argv.slice(2);
const definition = protoLoader.loadSync(["tradovate_gateway/v1/trading.proto"], {
  includeDirs: [path.resolve(protosDir)],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const loaded = grpc.loadPackageDefinition(definition);
const client = new loaded.tradovate_gateway.v1.TradingService(
  address,
  grpc.credentials.createInsecure(),
);
const request = { resume_from: resumeFrom ? JSON.parse(resumeFrom) : [] };
const result = { status_login: null, complete: {}, chunks: {} };
const call = client.StreamUpdates(request, { deadline: new Date(Date.now() + 20000) });
call.on("data", (update) => {
  if (update.payload === "subscription") {
    result.status_login = update.login;
  } else if (update.payload === "snapshot") {
    result.chunks[update.login] = (result.chunks[update.login] || 0) + 1;
  } else if (update.payload === "snapshot_complete") {
    result.complete[update.login] = {
      epoch: update.epoch,
      sequence: update.snapshot_complete.sequence,
      resync: update.snapshot_complete.resync,
    };
    if (Object.keys(result.complete).length === Number(logins)) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      call.cancel();
      client.close();
    }
  }
});
call.on("error", (error) => {
  if (error.code !== grpc.status.CANCELLED) {
    process.stderr.write(`${error.code} ${error.details}\n`);
    process.exit(1);
  }
});
