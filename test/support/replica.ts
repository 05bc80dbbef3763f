import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile, appendFile, chown } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import postgres from "postgres";
import { freePort } from "./free-port.js";
import { TEST_PG_URL } from "./services.js";

const run = promisify(execFile);

/** Replication slots of this helper: `hanzo_test_replica_<pid of the test worker>_<random>`. */
const SLOT_PREFIX = "hanzo_test_replica_";
const HBA_LINE = "host replication all 127.0.0.1/32 trust # hanzo tests: pg_basebackup (test/support/replica.ts)";

/** A hot-standby second cluster streaming from the test PostgreSQL, on its own loopback port. */
export type StreamingReplica = {
  port: number;
  /** `primaryUrl` (a database on the test server, any user) on the replica's port. */
  urlFor(primaryUrl: string): string;
  /** The replica's replay position reached `lsn` (a pg_lsn text), polled: waits on readiness, not time. */
  waitForReplay(lsn: string, timeoutMs?: number): Promise<void>;
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  /** Stops the server (fast shutdown); `start` brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it, drops its replication slot on the primary and removes its directory; safe to call twice. */
  destroy(): Promise<void>;
};

/**
 * Makes a streaming replica of the test server: `pg_basebackup` (with a replication slot, so it
 * cannot fall irrecoverably behind, dropped at destroy) into a temp dir owned by `postgres`,
 * started with that version's `pg_ctl` as `postgres` (PostgreSQL refuses to run as root, and
 * tests run as root here). Needs a local server whose pg_hba.conf allows replication from
 * loopback: when it does not, one trust line for replication on 127.0.0.1 is appended and the
 * configuration reloaded (idempotent; README, "Tests").
 */
export async function startStreamingReplica(): Promise<StreamingReplica> {
  const primary = postgres(TEST_PG_URL, { max: 1, onnotice: () => {} });
  const slot = `${SLOT_PREFIX}${process.pid}_${randomBytes(4).toString("hex")}`;
  let dir: string | undefined;
  let data = "";
  let bin = "";
  let port = 0;
  let admin: postgres.Sql | undefined;
  let destroyed = false;

  const asPostgres = (cmd: string, args: string[]) =>
    run("runuser", ["-u", "postgres", "--", join(bin, cmd), ...args], { maxBuffer: 16 * 1024 * 1024 });

  async function start() {
    try {
      await asPostgres("pg_ctl", ["-D", data, "-l", join(dir ?? "", "server.log"), "-w", "-t", "120", "start"]);
    } catch (err) {
      const log = await readFile(join(dir ?? "", "server.log"), "utf8").catch(() => "");
      throw new Error(`the replica did not start: ${(err as Error).message}\n${log.slice(-4000)}`);
    }
    admin = postgres({ host: "127.0.0.1", port, user: "postgres", database: "postgres", max: 1, onnotice: () => {} });
  }

  async function stop(mode: "fast" | "immediate" = "fast") {
    await admin?.end({ timeout: 1 }).catch(() => {});
    admin = undefined;
    await asPostgres("pg_ctl", ["-D", data, "-m", mode, "-w", "stop"]);
  }

  async function destroy() {
    if (destroyed) return;
    destroyed = true;
    try {
      if (data) await stop("immediate").catch(() => {});
      await dropSlot(primary, slot);
    } finally {
      if (dir) await rm(dir, { recursive: true, force: true });
      await primary.end({ timeout: 1 });
    }
  }

  try {
    const [version] = await primary<{ n: string }[]>`select current_setting('server_version_num') as n`;
    bin = `/usr/lib/postgresql/${Math.floor(Number(version?.n) / 10_000)}/bin`;
    await allowReplicationFromLoopback(primary);
    await dropAbandonedSlots(primary);
    const settings = await primary<{ name: string; setting: string }[]>`
      select name, setting from pg_settings where name in
        ('max_connections', 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions', 'max_locks_per_transaction')`;
    const [uid, gid] = await Promise.all([run("id", ["-u", "postgres"]), run("id", ["-g", "postgres"])]);
    dir = await mkdtemp(join(tmpdir(), "hanzo-replica-"));
    await chown(dir, Number(uid.stdout), Number(gid.stdout));
    data = join(dir, "data");
    port = await freePort();
    const primaryUrl = new URL(TEST_PG_URL);
    await asPostgres("pg_basebackup", [
      "-h",
      primaryUrl.hostname,
      "-p",
      primaryUrl.port || "5432",
      "-U",
      decodeURIComponent(primaryUrl.username || "postgres"),
      "-D",
      data,
      "-X",
      "stream",
      "-c",
      "fast",
      "--no-sync",
      "-C",
      "-S",
      slot,
      "-R",
    ]);
    // Debian keeps postgresql.conf and pg_hba.conf in /etc: the copy has neither. A hot standby
    // needs these limits at least as high as its primary's.
    await writeFile(
      join(data, "postgresql.conf"),
      [
        `port = ${port}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${dir}'`,
        "hot_standby = on",
        `primary_slot_name = '${slot}'`,
        "shared_buffers = 32MB",
        "fsync = off",
        "logging_collector = off",
        ...settings.map((s) => `${s.name} = ${s.setting}`),
        "",
      ].join("\n"),
    );
    await writeFile(join(data, "pg_hba.conf"), "local all all trust\nhost all all 127.0.0.1/32 trust\n");
    await writeFile(join(data, "pg_ident.conf"), "");
    await run("chown", ["-R", "postgres:postgres", dir]);
    await start();
  } catch (err) {
    await destroy().catch(() => {});
    throw err;
  }

  const replicaAdmin = () => {
    if (!admin) throw new Error("the replica is stopped");
    return admin;
  };

  return {
    port,
    urlFor(url) {
      const u = new URL(url);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    async waitForReplay(lsn, timeoutMs = 60_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const [row] = await replicaAdmin()<{ ok: boolean }[]>`select pg_last_wal_replay_lsn() >= ${lsn}::pg_lsn as ok`;
        if (row?.ok) return;
        if (Date.now() > until) throw new Error(`the replica did not replay up to ${lsn} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async pauseReplay() {
      await replicaAdmin()`select pg_wal_replay_pause()`;
      for (;;) {
        const [row] = await replicaAdmin()<{ state: string }[]>`select pg_get_wal_replay_pause_state() as state`;
        if (row?.state === "paused") return;
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async resumeReplay() {
      await replicaAdmin()`select pg_wal_replay_resume()`;
    },
    stop: () => stop("fast"),
    start,
    destroy,
  };
}

/**
 * Lets pg_basebackup in: when a replication connection from loopback is refused, appends one trust
 * line for replication on 127.0.0.1 to the server's pg_hba.conf (once) and reloads.
 */
async function allowReplicationFromLoopback(primary: postgres.Sql) {
  if (await replicationAllowed()) return;
  const [file] = await primary<{ path: string }[]>`select current_setting('hba_file') as path`;
  if (!file) throw new Error("no hba_file");
  const text = await readFile(file.path, "utf8");
  if (!text.includes(HBA_LINE)) await appendFile(file.path, `${text.endsWith("\n") ? "" : "\n"}${HBA_LINE}\n`);
  await primary`select pg_reload_conf()`;
  // The postmaster reloads on SIGHUP, asynchronously: wait until a replication connection is let in.
  const until = Date.now() + 10_000;
  while (!(await replicationAllowed())) {
    if (Date.now() > until) throw new Error(`replication from 127.0.0.1 is still refused after adding to ${file.path}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function replicationAllowed(): Promise<boolean> {
  const url = new URL(TEST_PG_URL);
  url.searchParams.set("replication", "true");
  try {
    await run("psql", [url.toString(), "-Atc", "IDENTIFY_SYSTEM"]);
    return true;
  } catch {
    return false;
  }
}

/** Slots a crashed test worker left behind (its pid gone) would hold WAL on the primary forever. */
async function dropAbandonedSlots(primary: postgres.Sql) {
  const slots = await primary<{ slot_name: string }[]>`
    select slot_name from pg_replication_slots where slot_name like ${`${SLOT_PREFIX}%`} and not active`;
  for (const { slot_name } of slots) {
    const pid = Number(slot_name.slice(SLOT_PREFIX.length).split("_")[0]);
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) continue;
    await primary`select pg_drop_replication_slot(${slot_name}) where exists
      (select 1 from pg_replication_slots where slot_name = ${slot_name} and not active)`.catch(() => {});
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Drops the slot once its walsender has gone (a stopped standby's connection ends a moment later). */
async function dropSlot(primary: postgres.Sql, slot: string) {
  const until = Date.now() + 30_000;
  for (;;) {
    const [row] = await primary<
      { active: boolean }[]
    >`select active from pg_replication_slots where slot_name = ${slot}`;
    if (!row) return;
    if (!row.active) {
      await primary`select pg_drop_replication_slot(${slot})`;
      return;
    }
    if (Date.now() > until) throw new Error(`replication slot ${slot} is still active`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
