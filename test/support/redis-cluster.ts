import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "./free-port.js";
import { spawnTracked, track, waitFor, type RunningProcess } from "./process.js";

const run = promisify(execFile);

export type ClusterNode = { port: number; busPort: number; dir: string; process: RunningProcess };
export type TestRedisCluster = Awaited<ReturnType<typeof startRedisCluster>>;

/** One redis-cli command against one node, its answer as text. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], { timeout: 30_000 });
  return stdout;
}

/** `CLUSTER INFO`'s fields, or undefined when the node does not answer. */
async function clusterInfo(port: number): Promise<Record<string, string> | undefined> {
  try {
    const text = await redisCli(port, "cluster", "info");
    return Object.fromEntries(
      text
        .split(/\r?\n/)
        .filter((l) => l.includes(":"))
        .map((l) => l.trim().split(":", 2) as [string, string]),
    );
  } catch {
    return undefined;
  }
}

/** Whether the node on `port` is a replica whose link to its master is up (its initial sync done). */
async function replicaLinkUp(port: number): Promise<boolean> {
  const text = await redisCli(port, "info", "replication").catch(() => "");
  return /^role:slave/m.test(text) && /^master_link_status:up/m.test(text);
}

/** `CLUSTER NODES` as a node sees it: address, role and whether it is marked failed. */
async function clusterNodes(port: number) {
  const text = await redisCli(port, "cluster", "nodes");
  return text
    .trim()
    .split(/\r?\n/)
    .map((line) => {
      const [id, address, flags, masterId, , , , linkState, ...slots] = line.split(" ");
      return {
        id: id ?? "",
        port: Number((address ?? "").split("@")[0]?.split(":")[1]),
        master: (flags ?? "").includes("master"),
        failed: /fail/.test(flags ?? ""),
        masterId: masterId ?? "-",
        connected: linkState === "connected",
        slots: slots.join(" "),
      };
    });
}

/**
 * A Redis Cluster of Debian's redis-server on loopback, as an operator runs one: three masters with
 * one replica each (`redis-cli --cluster create … --cluster-replicas 1`), each node in a temporary
 * directory of its own, no persistence (a failover promotes a replica from its replication stream),
 * and a short node timeout so that a stopped master is replaced within seconds, not 15 s.
 *
 * Ports are free loopback ports, the cluster bus on a second one (`cluster-port`: the default
 * port + 10000 may be past 65535 or held by someone else).
 */
export async function startRedisCluster(opts: { nodeTimeoutMs?: number } = {}) {
  const nodeTimeoutMs = opts.nodeTimeoutMs ?? 2_000;
  const nodes: ClusterNode[] = [];
  /** A new node on fresh ports and a temporary directory, or `again` restarted where it was. */
  const startNode = async (again?: Omit<ClusterNode, "process">): Promise<ClusterNode> => {
    const port = again?.port ?? (await freePort());
    const busPort = again?.busPort ?? (await freePort());
    const dir = again?.dir ?? (await mkdtemp(join(tmpdir(), `hanzo-redis-cluster-${port}-`)));
    const args = [
      ...["--port", String(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"],
      ...["--cluster-port", String(busPort), "--cluster-config-file", join(dir, "nodes.conf")],
      ...["--cluster-node-timeout", String(nodeTimeoutMs), "--dir", dir],
      ...["--save", "", "--appendonly", "no", "--enable-debug-command", "yes"],
      // A replica takes over however long its link had been down (Redis's default refuses past
      // 10 × the node timeout): the tests are about our processes through a failover, and on a
      // busy machine a link can stall that long without the cluster being broken.
      ...["--cluster-replica-validity-factor", "0"],
    ];
    const process = track(spawnTracked("redis-server", args), `redis-server (cluster) on ${port}`);
    await process.waitForLine(/Ready to accept connections/);
    return { port, busPort, dir, process };
  };
  const stopAll = async () => {
    await Promise.all(nodes.map((n) => n.process.stop("SIGKILL")));
    await Promise.all(nodes.map((n) => rm(n.dir, { recursive: true, force: true })));
  };
  try {
    // One at a time: two nodes asking freePort together could be handed the same port.
    for (let i = 0; i < 6; i++) nodes.push(await startNode());
    await run(
      "redis-cli",
      ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", "1", "--cluster-yes"],
      { timeout: 120_000 },
    );
    const cluster = {
      nodes,
      /** REDIS_URL for the processes: every node as a seed. */
      url: `redis-cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(",")}`,
      /**
       * Waits until every live node says cluster_state:ok and sees the same three masters, each with
       * its slots and a live link, and every live replica has synced with its master (a master
       * killed before that would leave nothing to fail over to).
       */
      async waitUntilHealthy(what = "cluster_state:ok on every live node", timeoutMs = 120_000) {
        await waitFor(
          async () => {
            const live = nodes.filter((n) => n.process.child.exitCode === null && n.process.child.signalCode === null);
            for (const n of live) {
              const info = await clusterInfo(n.port);
              if (info?.cluster_state !== "ok" || info.cluster_known_nodes !== "6") return false;
            }
            const view = await clusterNodes(live[0]!.port);
            const masters = view.filter((v) => v.master && !v.failed && v.slots !== "");
            if (masters.length !== 3) return false;
            const replicas = view.filter((v) => !v.master && !v.failed);
            for (const r of replicas) if (!(await replicaLinkUp(r.port))) return false;
            return true;
          },
          { timeoutMs, intervalMs: 250, what },
        );
      },
      /** The port of the master that serves `key`'s slot now. */
      async masterOf(key: string): Promise<number> {
        const live = nodes.find((n) => n.process.child.exitCode === null && n.process.child.signalCode === null)!;
        const slot = Number((await redisCli(live.port, "cluster", "keyslot", key)).trim());
        for (const v of await clusterNodes(live.port)) {
          if (!v.master || v.failed) continue;
          for (const range of v.slots.split(" ")) {
            const [from, to] = range.split("-").map(Number);
            if (from !== undefined && slot >= from && slot <= (to ?? from)) return v.port;
          }
        }
        throw new Error(`no live master serves slot ${slot}`);
      },
      /** The node on `port`, killed at once (SIGKILL: no goodbye to the cluster, as a crashed host). */
      async kill(port: number) {
        const node = nodes.find((n) => n.port === port);
        if (!node) throw new Error(`no node on ${port}`);
        await node.process.stop("SIGKILL");
      },
      /** Starts the stopped node on `port` again, with its nodes.conf: it rejoins the cluster (as a replica, once failed over). */
      async restart(port: number) {
        const i = nodes.findIndex((n) => n.port === port);
        if (i < 0) throw new Error(`no node on ${port}`);
        nodes[i] = await startNode(nodes[i]);
      },
      /** Waits until a replica has taken over the slots of the master that was on `port`. */
      async waitForFailover(port: number, timeoutMs = 120_000) {
        await waitFor(
          async () => {
            const live = nodes.filter((n) => n.port !== port && n.process.child.exitCode === null);
            for (const n of live) if ((await clusterInfo(n.port))?.cluster_state !== "ok") return false;
            const view = await clusterNodes(live[0]!.port);
            const old = view.find((v) => v.port === port);
            const masters = view.filter((v) => v.master && !v.failed && v.slots !== "" && v.port !== port);
            return !!old?.failed && masters.length === 3;
          },
          { timeoutMs, intervalMs: 250, what: `failover of the master on ${port}` },
        ).catch(async (err: Error) => {
          // Say what the cluster looked like, so that a failure here can be explained afterwards.
          const live = nodes.find((n) => n.port !== port && n.process.child.exitCode === null);
          const view = live
            ? await redisCli(live.port, "cluster", "nodes").catch((e: Error) => e.message)
            : "no live node";
          throw new Error(`${err.message}; CLUSTER NODES then:\n${view}`);
        });
      },
      stop: stopAll,
    };
    await cluster.waitUntilHealthy();
    return cluster;
  } catch (err) {
    await stopAll();
    throw err;
  }
}
