// The real chat-server binary as a child process, for the Node-driven test
// suites (tests/browser, tests/socketio). No dependencies beyond Node.
//
// Environment:
//   CHAT_SERVER_BIN  the server binary (the Rust test that runs a suite
//                    passes the one cargo built; default target/debug)

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SERVER_BIN = process.env.CHAT_SERVER_BIN || path.join(repoRoot, 'target/debug/chat-server');

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

/**
 * A chat-server process on 127.0.0.1 with its own temporary data dir. It
 * can be stopped and started again on the same port and data, as an
 * operator's restart would.
 */
export class ChatServer {
  static async start(extraArgs = []) {
    const server = new ChatServer(mkdtempSync(path.join(tmpdir(), 'chat-test-')), extraArgs);
    await server.spawn('127.0.0.1:0');
    return server;
  }

  constructor(dataDir, extraArgs) {
    this.dataDir = dataDir;
    this.extraArgs = extraArgs;
    this.child = null;
    /** `http://127.0.0.1:PORT`, no trailing slash. */
    this.url = null;
    this.stderr = '';
  }

  spawn(listen) {
    const child = spawn(SERVER_BIN, ['--listen', listen, '--data-dir', this.dataDir, ...this.extraArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      this.stderr += chunk;
    });
    return new Promise((resolve, reject) => {
      const fail = (why) => {
        clearTimeout(timer);
        reject(new Error(`chat-server (${SERVER_BIN}) ${why}\nstderr:\n${this.stderr}`));
      };
      const timer = setTimeout(() => fail('printed no listening line in time'), START_TIMEOUT_MS);
      let stdout = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
        const match = /chat-server listening on (http:\/\/\S+)/.exec(stdout);
        if (match && this.url === null) {
          clearTimeout(timer);
          this.url = match[1].replace(/\/$/, '');
          resolve();
        }
      });
      child.on('error', (error) => fail(`could not start: ${error.message}`));
      child.on('exit', (code, signal) => {
        if (this.url === null) fail(`exited early (code ${code}, signal ${signal})`);
      });
    });
  }

  /** SIGTERM, as an operator would; waits for the process to be gone. */
  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  /**
   * Drains the server through `POST /api/admin/drain` (as a rolling
   * restart does) and waits for the process to exit; returns the answer's
   * status and body and the exit code.
   */
  async drain() {
    const child = this.child;
    const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const response = await fetch(`${this.url}/api/admin/drain`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    });
    const body = await response.json();
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    const code = await exited;
    clearTimeout(timer);
    return { status: response.status, body, code };
  }

  /** Starts the server again on the same address and data, once it has exited. */
  async startAgain() {
    const address = new URL(this.url).host;
    this.url = null;
    await this.spawn(address);
  }

  /** Stops the server and starts it again on the same address and data. */
  async restart() {
    await this.stop();
    await this.startAgain();
  }

  async close() {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
