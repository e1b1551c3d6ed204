// Starts @vercel/cosmosdb-server for cosmobac on loopback, keeping connections alive.
// Usage: node launcher.js [--host 127.0.0.1] [--port 0] [--cert cert.pem --key key.pem]
// Prints one line when ready: {"host": "127.0.0.1", "port": 12345, "protocol": "http"}
"use strict";
const fs = require("fs");
const { createHttpServer, createHttpsServer } = require("@vercel/cosmosdb-server");

const args = { host: "127.0.0.1", port: 0 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  args[argv[i].replace(/^--/, "")] = argv[i + 1];
}
const tls = Boolean(args.cert && args.key);
const server = tls
  ? createHttpsServer({ keepAlive: true, cert: fs.readFileSync(args.cert), key: fs.readFileSync(args.key) })
  : createHttpServer({ keepAlive: true });
server.keepAliveTimeout = 120000;
server.listen(Number(args.port), args.host, () => {
  const { port } = server.address();
  process.stdout.write(JSON.stringify({ host: args.host, port, protocol: tls ? "https" : "http" }) + "\n");
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
