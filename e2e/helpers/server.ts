// Starts a `keta demo` clinic for the tests: a fresh database in a temp folder, on a free
// port, with a clock the tests can move forward (libfaketime reads the offset from a
// file on every clock read), so "discharge is accepted after the minimum monitoring
// time" can be tested without waiting two hours.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const repo = resolve(__dirname, '..', '..');

const FAKETIME_LIBS = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
];

/** The `keta` binary: $KETA_BIN, or built here with cargo (a no-op when up to date). */
export function ketaBinary(): string {
  if (process.env.KETA_BIN) return process.env.KETA_BIN;
  const r = spawnSync('cargo', ['build', '--locked', '-p', 'keta-cli', '--bin', 'keta'], { cwd: repo, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('cargo build of the keta binary failed');
  return join(repo, 'target', 'debug', 'keta');
}

export class KetaServer {
  url = '';
  /** How far the server's clock is ahead of real time, in seconds. */
  offsetSeconds = 0;
  private proc?: ChildProcess;
  private dir = mkdtempSync(join(tmpdir(), 'keta-e2e-'));
  private clockFile = join(this.dir, 'faketime');
  output = '';

  /** Starts `keta demo`; `extraArgs` are added to its command line (e.g. `--mllp-bind`). */
  async start(bin: string, extraArgs: string[] = []): Promise<void> {
    writeFileSync(this.clockFile, '+0\n');
    const lib = FAKETIME_LIBS.find((p) => existsSync(p));
    if (!lib) throw new Error('libfaketime is not installed (apt-get install -y faketime); .ci/run installs it');
    const env = {
      ...process.env,
      LD_PRELOAD: lib,
      FAKETIME_TIMESTAMP_FILE: this.clockFile,
      FAKETIME_NO_CACHE: '1',
      // Timers and timeouts keep real time; only the wall clock moves.
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
      KETA_LOG: process.env.KETA_LOG ?? 'warn',
    };
    this.proc = spawn(bin, ['demo', '--fresh', '--dir', join(this.dir, 'data'), '--bind', '127.0.0.1:0', ...extraArgs], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.url = await new Promise<string>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`keta demo did not start in time:\n${this.output}`)), 90_000);
      const read = (chunk: Buffer) => {
        this.output += chunk.toString();
        const m = this.output.match(/Serving on (http:\/\/127\.0\.0\.1:\d+)/);
        if (m) {
          clearTimeout(timer);
          ok(m[1]);
        }
      };
      this.proc!.stdout!.on('data', read);
      this.proc!.stderr!.on('data', read);
      this.proc!.on('exit', (code) => fail(new Error(`keta demo exited (${code}):\n${this.output}`)));
    });
  }

  /** Moves the server's wall clock to `minutes` ahead of real time. */
  setClockAhead(minutes: number) {
    this.offsetSeconds = Math.round(minutes * 60);
    writeFileSync(this.clockFile, `+${this.offsetSeconds}\n`);
  }

  /** Moves the server's clock forward by `minutes` more. */
  advance(minutes: number) {
    this.setClockAhead(this.offsetSeconds / 60 + minutes);
  }

  /** The server's idea of now, in Unix seconds. */
  nowSeconds(): number {
    return Math.floor(Date.now() / 1000) + this.offsetSeconds;
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null) {
      this.proc.kill('SIGKILL');
      await new Promise((r) => this.proc!.once('exit', r));
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
