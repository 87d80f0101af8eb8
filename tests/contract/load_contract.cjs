// Load the gateway contract the way a Node team would (@grpc/proto-loader, @grpc/grpc-js),
// with the repository's protos/ as the only include path, and call the gateway.
//
//   node tests/contract/load_contract.cjs PROTOS_DIR [HOST:PORT]
//
// Prints one JSON object: the loaded TradingService methods and google.rpc types, and,
// with an address, what ListAccounts, GetPositions and a call for an unknown account
// returned. tests/contract/test_node_client.py runs it against the real gateway.
"use strict";

const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const [protosDir, address] = process.argv.slice(2);
const definition = protoLoader.loadSync(
  [
    "tradovate_gateway/v1/trading.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
  ],
  {
    includeDirs: [path.resolve(protosDir)],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  },
);

const service = definition["tradovate_gateway.v1.TradingService"];
const result = {
  methods: Object.values(service).map((m) => m.path),
  google_rpc_types: Object.keys(definition).filter((k) => k.startsWith("google.rpc.")).sort(),
};

function call(client, method, request) {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + 10000);
    client[method](request, { deadline }, (error, reply) => {
      if (error) {
        resolve({ code: error.code, details: error.details, has_status_details:
          error.metadata.get("grpc-status-details-bin").length > 0 });
      } else {
        resolve({ code: 0, reply });
      }
    });
  });
}

async function main() {
  if (address) {
    const loaded = grpc.loadPackageDefinition(definition);
    const Client = loaded.tradovate_gateway.v1.TradingService;
    const client = new Client(address, grpc.credentials.createInsecure());
    const accounts = await call(client, "ListAccounts", {});
    const first = accounts.reply.accounts[0];
    result.accounts = accounts.reply.accounts.map((a) => a.name);
    result.positions = await call(client, "GetPositions", {
      selector: { accounts: [first.name] },
      include_flat: true,
    });
    result.unknown = await call(client, "GetPositions", { selector: { accounts: ["NOSUCH1"] } });
    client.close();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
