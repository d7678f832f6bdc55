/**
 * How long weft's CNI plugin takes per container, against the delegate it
 * calls: the measurement behind the choice of a compiled plugin
 * (native/cni) over a Node.js script, and the README's figures.
 *
 * Timed, each as a whole process run the way a runtime runs a plugin
 * (config on stdin, CNI_* environment), wall clock around spawnSync:
 *   node -e 0               the floor of any plugin written for Node.js: the
 *                           runtime starting it and it doing nothing, with this
 *                           process's environment and without NODE_EXTRA_CA_CERTS
 *                           (which makes Node load the CA bundle at start)
 *   weft-cni VERSION        weft's plugin starting and answering alone
 *   weft-cni ADD / DEL      the whole attachment: subnet.env, the saved record
 *                           (fsynced), and the bridge delegate it runs
 *   bridge ADD / DEL        the delegate alone with the config weft-cni renders
 * ADD and DEL alternate on one container namespace; weft-cni's and the
 * bridge's turns alternate too, so drift affects both alike. After every ADD
 * the container must have its address, or the run fails. The table gives the
 * median and the 90th percentile over the reps; "weft-cni's own time" is the
 * difference of the medians.
 *
 * Everything happens in two throwaway namespaces (wbench-cni-<random>-h/-c):
 * the benchmark re-executes itself inside the host one with `ip netns exec`
 * and deletes both on exit. Needs root, iproute2 and the reference plugins in
 * /usr/lib/cni (containernetworking-plugins).
 *
 *   node dist/bench/cni-latency.js [--reps N] [--cni-path DIR] [--json FILE]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '..', '..');
const PLUGIN = path.join(REPO, 'bin', 'weft-cni');
const CONTAINER_ID = 'benchcni0123456789abcdef';

interface Options {
  readonly reps: number;
  readonly cniPath: string;
  readonly json: string | undefined;
}

function parseArgs(argv: readonly string[]): Options & { inside: string | undefined } {
  let reps = 30;
  let cniPath = '/usr/lib/cni';
  let json: string | undefined;
  let inside: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--reps') reps = Number(next());
    else if (a === '--cni-path') cniPath = next();
    else if (a === '--json') json = next();
    else if (a === '--inside') inside = next();
    else throw new Error(`unknown argument ${a}; usage: cni-latency.js [--reps N] [--cni-path DIR] [--json FILE]`);
  }
  if (!Number.isInteger(reps) || reps < 3 || reps > 1000) throw new Error('--reps must be a whole number from 3 to 1000');
  return { reps, cniPath, json, inside };
}

interface Timed {
  readonly ms: number;
  readonly status: number | null;
  readonly stdout: string;
}

function timed(file: string, args: readonly string[], input: string, env: NodeJS.ProcessEnv): Timed {
  const start = process.hrtime.bigint();
  const r = spawnSync(file, args, { input, env, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  return { ms, status: r.status, stdout: r.stdout };
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (pos - lo);
}

/** Runs inside the host namespace: every figure. */
function measure(containerNs: string, options: Options): Record<string, number[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wbench-cni-'));
  try {
    const subnetFile = path.join(dir, 'subnet.env');
    writeFileSync(subnetFile, 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    const conf = JSON.stringify({
      cniVersion: '1.0.0',
      name: 'wbench',
      type: 'flannel',
      subnetFile,
      dataDir: path.join(dir, 'records'),
      ipam: { dataDir: path.join(dir, 'ipam') },
      delegate: { hairpinMode: true, isDefaultGateway: true },
    });
    const base: NodeJS.ProcessEnv = {
      ...process.env,
      CNI_CONTAINERID: CONTAINER_ID,
      CNI_NETNS: `/run/netns/${containerNs}`,
      CNI_IFNAME: 'eth0',
      CNI_PATH: options.cniPath,
    };
    const env = (command: string): NodeJS.ProcessEnv => ({ ...base, CNI_COMMAND: command });
    const bridge = path.join(options.cniPath, 'bridge');
    const must = (what: string, t: Timed): number => {
      if (t.status !== 0) throw new Error(`${what} failed (exit ${t.status}): ${t.stdout}`);
      return t.ms;
    };
    const hasAddress = (): void => {
      const out = execFileSync('ip', ['-n', containerNs, '-4', '-o', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' });
      if (!out.includes('10.244.7.')) throw new Error(`the container has no address after ADD: ${out}`);
    };

    // the delegate's config exactly as weft-cni renders it, from the record of a first ADD
    must('weft-cni ADD', timed(PLUGIN, [], conf, env('ADD')));
    const record = JSON.parse(readFileSync(path.join(dir, 'records', CONTAINER_ID), 'utf8')) as Record<string, unknown>;
    delete record['weftAttachment'];
    const delegateConf = JSON.stringify(record);
    must('weft-cni DEL', timed(PLUGIN, [], conf, env('DEL')));

    const noCa = { ...process.env };
    delete noCa['NODE_EXTRA_CA_CERTS'];
    const figures: Record<string, number[]> = {
      'node -e 0': [],
      'node -e 0 (no NODE_EXTRA_CA_CERTS)': [],
      'weft-cni VERSION': [],
      'weft-cni ADD': [],
      'bridge ADD': [],
      'weft-cni DEL': [],
      'bridge DEL': [],
    };
    const push = (key: string, ms: number): void => {
      (figures[key] as number[]).push(ms);
    };
    for (let i = 0; i < options.reps; i++) {
      push('node -e 0', must('node', timed(process.execPath, ['-e', '0'], '', process.env)));
      push('node -e 0 (no NODE_EXTRA_CA_CERTS)', must('node', timed(process.execPath, ['-e', '0'], '', noCa)));
      push('weft-cni VERSION', must('weft-cni VERSION', timed(PLUGIN, [], '{"cniVersion":"1.0.0"}', env('VERSION'))));
      const order = i % 2 === 0 ? ['weft-cni', 'bridge'] : ['bridge', 'weft-cni'];
      for (const who of order) {
        const file = who === 'weft-cni' ? PLUGIN : bridge;
        const input = who === 'weft-cni' ? conf : delegateConf;
        push(`${who} ADD`, must(`${who} ADD`, timed(file, [], input, env('ADD'))));
        hasAddress();
        push(`${who} DEL`, must(`${who} DEL`, timed(file, [], input, env('DEL'))));
      }
    }
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(figures: Record<string, number[]>, options: Options): void {
  const rows = Object.entries(figures).map(([name, values]) => ({
    name,
    median: quantile(values, 0.5),
    p90: quantile(values, 0.9),
  }));
  const median = (k: string): number => quantile(figures[k] as number[], 0.5);
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  process.stdout.write(`weft-cni latency: ${options.reps} reps, ${cpu}, ${os.cpus().length} cores, Linux ${os.release()}\n\n`);
  process.stdout.write('| process | median ms | p90 ms |\n|---|---|---|\n');
  for (const r of rows) process.stdout.write(`| ${r.name} | ${r.median.toFixed(2)} | ${r.p90.toFixed(2)} |\n`);
  const addOwn = median('weft-cni ADD') - median('bridge ADD');
  const delOwn = median('weft-cni DEL') - median('bridge DEL');
  process.stdout.write(
    `\nweft-cni's own time (medians, weft-cni minus the bridge alone): ADD ${addOwn.toFixed(2)} ms ` +
      `(${((100 * addOwn) / median('bridge ADD')).toFixed(0)} % of the delegate's), DEL ${delOwn.toFixed(2)} ms ` +
      `(${((100 * delOwn) / median('bridge DEL')).toFixed(0)} %)\n`,
  );
  if (options.json !== undefined) {
    let commit = 'unknown';
    try {
      commit = execFileSync('git', ['-C', REPO, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    } catch {
      // not a git checkout
    }
    writeFileSync(
      options.json,
      JSON.stringify({ date: new Date().toISOString(), commit, cpu, cores: os.cpus().length, kernel: os.release(), reps: options.reps, rows, ownMs: { add: addOwn, del: delOwn } }, null, 2),
    );
  }
}

function main(): void {
  const options = parseArgs(process.argv.slice(2));
  if (options.inside !== undefined) {
    const figures = measure(options.inside, options);
    process.stdout.write(`${JSON.stringify(figures)}\n`);
    return;
  }
  if (process.getuid?.() !== 0) throw new Error('cni-latency needs root (network namespaces)');
  const prefix = `wbench-cni-${randomBytes(3).toString('hex')}`;
  const hostNs = `${prefix}-h`;
  const containerNs = `${prefix}-c`;
  try {
    execFileSync('ip', ['netns', 'add', hostNs]);
    execFileSync('ip', ['netns', 'add', containerNs]);
    const out = execFileSync(
      'ip',
      ['netns', 'exec', hostNs, process.execPath, __filename, '--inside', containerNs, '--reps', String(options.reps), '--cni-path', options.cniPath],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const last = out.trim().split('\n').pop() as string;
    report(JSON.parse(last) as Record<string, number[]>, options);
  } finally {
    for (const ns of [containerNs, hostNs]) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // not created
      }
    }
  }
}

main();
