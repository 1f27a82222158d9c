import { existsSync } from "node:fs";
import { join } from "node:path";
import { OutcomedConnectionError } from "./errors.js";

/** The environment variable that names the socket. */
export const SOCKET_ENV = "OUTCOMED_SOCKET";
/** The machine's daemon (the system service). */
export const SYSTEM_SOCKET = "/run/outcomed/outcomed.sock";
/** A user's own daemon: this name in `$XDG_RUNTIME_DIR`. */
export const USER_SOCKET_NAME = "outcomed.sock";
/** The bytes `sun_path` holds, the NUL aside: a longer path is refused, never cut short. */
export const SOCKET_PATH_MAX = 107;

/** `path` if it is a usable socket path; else a RangeError naming `source`. */
export function checkSocketPath(path: string, source = ""): string {
  if (!path) throw new RangeError(`the outcomed socket path${source} is empty`);
  const n = Buffer.byteLength(path, "utf8");
  if (n > SOCKET_PATH_MAX) {
    throw new RangeError(`the outcomed socket path${source} is ${n} bytes long, over the limit of ` +
      `${SOCKET_PATH_MAX} bytes: ${path}`);
  }
  return path;
}

/**
 * The socket to connect to, found as the protocol says: `path` when given;
 * else `$OUTCOMED_SOCKET` when set and not empty; else the first that exists
 * of `$XDG_RUNTIME_DIR/outcomed.sock` (a user's own daemon) and
 * `/run/outcomed/outcomed.sock` (the machine's). Throws
 * {@link OutcomedConnectionError} when none exists, a RangeError for a path
 * over 107 bytes.
 */
export function resolveSocket(path?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (path !== undefined) return checkSocketPath(path);
  const fromEnv = env[SOCKET_ENV];
  if (fromEnv) return checkSocketPath(fromEnv, ` from $${SOCKET_ENV}`);
  const tried: string[] = [];
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg) tried.push(join(xdg, USER_SOCKET_NAME));
  tried.push(SYSTEM_SOCKET);
  for (const p of tried) {
    if (existsSync(p)) return checkSocketPath(p);
  }
  throw new OutcomedConnectionError(`no outcomed socket: none of ${tried.join(", ")} exists ` +
    `(set $${SOCKET_ENV} or pass socketPath)`);
}
