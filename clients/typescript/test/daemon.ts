/**
 * A real outcomed on a private temporary directory (socket, database, an
 * empty configuration), as tests/integration/harness.py runs it.
 *
 * The binary: $OUTCOMED_BIN (meson sets it), else build/daemon/outcomed
 * at the top of the source tree.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));          // dist/test
export const SOURCE_ROOT = resolve(HERE, "..", "..", "..", "..");
export const PACKAGE_ROOT = resolve(HERE, "..", "..");

export function daemonBinary(): string {
  return process.env.OUTCOMED_BIN || join(SOURCE_ROOT, "build", "daemon", "outcomed");
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll pred until it is truthy (bounded); its last value. */
export async function waitFor<T>(pred: () => Promise<T> | T, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    let v: T | undefined;
    try {
      v = await pred();
    } catch {
      v = undefined;
    }
    if (v || Date.now() > end) return v as T;
    await sleep(20);
  }
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ path });
    s.once("connect", () => { s.destroy(); res(true); });
    s.once("error", () => { s.destroy(); res(false); });
  });
}

export class Daemon {
  readonly tmpdir: string;
  readonly socketPath: string;
  readonly dbPath: string;
  readonly configPath: string;
  proc: ChildProcess | undefined;
  private runs = 0;

  constructor(config = "") {
    // /tmp explicitly: socket paths must stay under 107 bytes.
    this.tmpdir = mkdtempSync("/tmp/outcomed-ts-");
    this.socketPath = join(this.tmpdir, "outcomed.sock");
    this.dbPath = join(this.tmpdir, "outcomed.db");
    this.configPath = join(this.tmpdir, "outcomed.ini");
    writeFileSync(this.configPath, config);
  }

  static async start(config = ""): Promise<Daemon> {
    const d = new Daemon(config);
    await d.start();
    return d;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async start(timeoutMs = 10_000): Promise<void> {
    if (this.running) throw new Error("the daemon is already running");
    this.runs++;
    const log = openSync(join(this.tmpdir, `stderr.${this.runs}.log`), "w");
    const env = { ...process.env };
    delete env.OUTCOMED_SOCKET;
    const proc = spawn(daemonBinary(), ["--config", this.configPath, "--socket", this.socketPath,
      "--db", this.dbPath], { stdio: ["ignore", log, log], env });
    closeSync(log);
    this.proc = proc;
    const end = Date.now() + timeoutMs;
    while (!(await canConnect(this.socketPath))) {
      if (!this.running) throw new Error(`outcomed exited while starting:\n${this.stderr()}`);
      if (Date.now() > end) {
        this.kill();
        throw new Error(`outcomed did not accept connections within ${timeoutMs} ms:\n${this.stderr()}`);
      }
      await sleep(20);
    }
  }

  /** SIGTERM (or sig) and wait for the exit; the exit code must be 0 after SIGTERM. */
  async stop(sig: NodeJS.Signals = "SIGTERM", timeoutMs = 10_000): Promise<void> {
    const proc = this.proc;
    if (!proc || !this.running) return;
    const exited = new Promise<number | null>((res) => proc.once("exit", (code) => res(code)));
    proc.kill(sig);
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
    const code = await exited;
    clearTimeout(timer);
    if (sig === "SIGTERM" && code !== 0) {
      throw new Error(`outcomed exited with ${code} after SIGTERM:\n${this.stderr()}`);
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  kill(): void {
    if (this.running) this.proc!.kill("SIGKILL");
  }

  stderr(): string {
    try {
      return readFileSync(join(this.tmpdir, `stderr.${this.runs}.log`), "utf8");
    } catch {
      return "";
    }
  }

  async cleanup(): Promise<void> {
    await this.stop().catch(() => this.kill());
    rmSync(this.tmpdir, { recursive: true, force: true });
  }
}
