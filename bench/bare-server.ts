import http from "node:http";

/**
 * The floor for bench:floor: a bare node:http server answering the load generator's
 * authorize+settle pairs with the shapes it expects, no framework, no auth, no database. It
 * parses each body as JSON, as any server must. What this costs per pair is what HTTP alone
 * costs on this machine.
 */
let holds = 0;
const server = http.createServer((req, res) => {
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (chunk: string) => (body += chunk));
  req.on("end", () => {
    JSON.parse(body);
    const [status, out] =
      req.url === "/v1/billing/authorize"
        ? [201, JSON.stringify({ hold_id: `hold_${++holds}` })]
        : [200, JSON.stringify({ recorded: 1 })];
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(out) });
    res.end(out);
  });
});
server.listen(Number(process.env.PORT), "127.0.0.1", () => console.log("listening"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
