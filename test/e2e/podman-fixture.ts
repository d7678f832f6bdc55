/**
 * A private podman for an end-to-end test: podman 4.3 with the CNI network
 * backend, run once per lab host through `nsenter --net=/run/netns/<host>`
 * (`ip netns exec` mounts a fresh /sys that hides the cgroup mounts, and runc
 * then fails), with everything it writes kept out of the machine's own
 * podman state (see ../shared/docs/podman-cni.md for why each setting is
 * there):
 *
 *   <dir>/containers.conf   CONTAINERS_CONF: netns bridge, the ulimits the
 *                           machine allows, cgroupfs, a file events log, file
 *                           locks (no /dev/shm/libpod_lock), tmp_dir in <dir>,
 *                           runtime runc through <dir>/bin/runc (runc --root
 *                           <dir>/runc: no /run/runc), network_backend cni,
 *                           cni_plugin_dirs = [<dir>/plugins, /usr/lib/cni]
 *   <dir>/storage, run      --root and --runroot (overlay)
 *   <dir>/hosts/<ns>/net.d  --network-config-dir of host <ns>
 *   --cgroup-parent         /weft-e2e-<id> for every container (and conmon),
 *                           instead of the shared /libpod_parent
 *
 * conmon runs `podman container cleanup` (which calls the plugins' DEL) with
 * --root/--runroot/--tmpdir/--network-config-dir/--runtime on its command
 * line and CONTAINERS_CONF (and PATH) in its environment: that is how the
 * private settings reach the DEL. --runtime-flag would not: it is not passed
 * on, which is why runc's state directory is set by a wrapper instead.
 *
 * What cannot be made private, and is cleaned instead by teardown():
 *   /var/lib/cni/results/<network>-<container>-<ifname>   libcni's result
 *       cache (no setting in podman 4.3); DEL removes it; teardown removes
 *       what is left for this fixture's networks, and the empty directories
 *       when they did not exist before.
 *   /run/netns/netns-<uuid>   podman's container namespaces; DEL (cleanup)
 *       removes them; teardown removes those of this fixture's containers.
 *   the cgroup tree /weft-e2e-<id> in every hierarchy (podman leaves the
 *       parent and its `conmon` child behind).
 *   overlay mounts under <dir> (none are left after `rm -af`; teardown checks
 *       /proc/self/mounts and unmounts what it finds).
 * The image is imported inside a throwaway mount namespace with a tmpfs on
 * /var/lib, because c/image writes its blob-info cache to
 * /var/lib/containers/cache when root, with no setting for it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, unlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runResult, type RunResult } from '../../src/sys/exec';

/** The label every container started through the fixture carries: the lab host it runs on. */
export const HOST_LABEL = 'weft-e2e-host';

const CNI_PLUGIN_DIR = '/usr/lib/cni';
const CNI_CACHE_DIR = '/var/lib/cni';
const CNI_RESULTS_DIR = path.join(CNI_CACHE_DIR, 'results');
const CNI_HOST_LOCAL_DEFAULT_DIR = path.join(CNI_CACHE_DIR, 'networks');
const NETNS_DIR = '/run/netns';
const BUSYBOX = '/bin/busybox';

/** Why podman-backed tests cannot run here (not root, or podman not installed), or undefined. */
export function podmanSkipReason(): string | undefined {
  if (process.getuid === undefined || process.getuid() !== 0) return 'podman end-to-end tests need root (network namespaces, a rootful podman)';
  try {
    execFileSync('sh', ['-c', 'command -v podman'], { stdio: 'ignore' });
  } catch {
    return 'podman is not installed (apt-get install podman containernetworking-plugins runc conmon busybox-static)';
  }
  return undefined;
}

/** A podman command that failed: the command line, exit code and podman's stderr. */
export class PodmanError extends Error {
  readonly result: RunResult;

  constructor(what: string, result: RunResult) {
    super(`${what} failed (exit ${result.code ?? 'killed: timed out?'}):\n${result.stderr.trim() || '(no stderr)'}` +
      (result.stdout.trim() === '' ? '' : `\nstdout: ${result.stdout.trim()}`));
    this.name = 'PodmanError';
    this.result = result;
  }
}

/** What teardown had to clean up that podman or the plugins should have removed themselves. */
export interface PodmanTeardownReport {
  readonly forced: readonly string[];
}

export interface PodmanOptions {
  readonly timeoutMs?: number;
}

export class PodmanFixture {
  readonly id: string;
  /** The private directory holding everything (removed by teardown). */
  readonly dir: string;
  /** First of cni_plugin_dirs: the test's own plugins (then /usr/lib/cni). */
  readonly pluginDir: string;
  readonly image: string;
  readonly cgroupParent: string;
  private readonly confFile: string;
  private readonly storageRoot: string;
  private readonly runRoot: string;
  private readonly tmpFiles: string;
  private readonly hosts = new Set<string>();
  private readonly networks = new Set<string>();
  private readonly sandboxes = new Set<string>();
  private readonly cniCacheExisted: boolean;
  private readonly cniResultsExisted: boolean;
  private tornDown = false;

  private constructor() {
    this.id = randomBytes(4).toString('hex');
    this.dir = mkdtempSync(path.join(tmpdir(), 'weft-pm-'));
    this.pluginDir = path.join(this.dir, 'plugins');
    this.image = `localhost/weft-e2e-bb-${this.id}:1`;
    this.cgroupParent = `/weft-e2e-${this.id}`;
    this.confFile = path.join(this.dir, 'containers.conf');
    this.storageRoot = path.join(this.dir, 'storage');
    this.runRoot = path.join(this.dir, 'run');
    this.tmpFiles = path.join(this.dir, 'tmpfiles');
    this.cniCacheExisted = existsSync(CNI_CACHE_DIR);
    this.cniResultsExisted = existsSync(CNI_RESULTS_DIR);
  }

  /** Writes the private configuration and imports the busybox image. On failure, cleans up and throws. */
  static async create(): Promise<PodmanFixture> {
    const f = new PodmanFixture();
    try {
      f.writeConfig();
      await f.importImage();
    } catch (err) {
      await f.teardown().catch(() => undefined);
      throw err;
    }
    return f;
  }

  private writeConfig(): void {
    for (const d of [this.pluginDir, this.storageRoot, this.runRoot, this.tmpFiles, path.join(this.dir, 'bin'), path.join(this.dir, 'runc'),
      path.join(this.dir, 'libpod-tmp'), path.join(this.dir, 'net.d')]) {
      mkdirSync(d, { recursive: true });
    }
    let runc: string;
    try {
      runc = execFileSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).trim();
    } catch {
      throw new Error('runc is not installed (apt-get install runc): podman runs containers with runc here (crun refuses hybrid cgroups)');
    }
    const wrapper = path.join(this.dir, 'bin', 'runc');
    writeFileSync(wrapper, `#!/bin/sh\nexec ${shellQuote(runc)} --root ${shellQuote(path.join(this.dir, 'runc'))} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const toml = (s: string): string => JSON.stringify(s);
    writeFileSync(this.confFile, [
      '[containers]',
      'netns = "bridge"',
      'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
      '',
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      'lock_type = "file"',
      'runtime = "runc"',
      `tmp_dir = ${toml(path.join(this.dir, 'libpod-tmp'))}`,
      `image_copy_tmp_dir = ${toml(this.tmpFiles)}`,
      '',
      '[engine.runtimes]',
      `runc = [${toml(wrapper)}]`,
      '',
      '[network]',
      'network_backend = "cni"',
      `cni_plugin_dirs = [${toml(this.pluginDir)}, ${toml(CNI_PLUGIN_DIR)}]`,
      // every command names its host's directory; this one (empty) is never /etc/cni/net.d
      `network_config_dir = ${toml(path.join(this.dir, 'net.d'))}`,
      '',
    ].join('\n'));
  }

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, CONTAINERS_CONF: this.confFile, TMPDIR: this.tmpFiles };
  }

  private globalArgs(): string[] {
    return ['--root', this.storageRoot, '--runroot', this.runRoot];
  }

  /**
   * busybox-static installed into a directory (links made by the image's own
   * busybox, so they resolve inside the container), imported as a one-layer image.
   */
  private async importImage(): Promise<void> {
    if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: apt-get install busybox-static`);
    const rootfs = path.join(this.dir, 'rootfs');
    for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root']) mkdirSync(path.join(rootfs, d), { recursive: true });
    copyFileSync(BUSYBOX, path.join(rootfs, 'bin', 'busybox'));
    chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
    const install = await runResult('chroot', [rootfs, '/bin/busybox', '--install', '-s', '/bin']);
    if (install.code !== 0) {
      throw new Error(`chroot ${rootfs} /bin/busybox --install failed (is ${BUSYBOX} statically linked? apt-get install busybox-static): ${install.stderr}`);
    }
    const tarball = path.join(this.dir, 'rootfs.tar');
    const tar = await runResult('tar', ['-C', rootfs, '-cf', tarball, '.'], { timeoutMs: 30_000 });
    if (tar.code !== 0) throw new Error(`tar of the image's root failed: ${tar.stderr}`);
    // a private mount namespace with a tmpfs on /var/lib keeps c/image's blob-info cache off the machine
    // (mount -n: util-linux would otherwise create /run/mount for its utab)
    const args = ['--mount', '--', 'sh', '-c', 'mount -n -t tmpfs -o size=16m,mode=0755 weft-e2e /var/lib && exec "$@"', 'sh',
      'podman', ...this.globalArgs(), 'import', '--change', 'CMD ["/bin/sh"]', tarball, this.image];
    const r = await runResult('unshare', args, { env: this.env(), timeoutMs: 60_000 });
    if (r.code !== 0) throw new PodmanError(`podman import of ${this.image}`, r);
    rmSync(rootfs, { recursive: true, force: true });
    rmSync(tarball, { force: true });
  }

  /** Host `hostNs`'s own directory (network configs, plugin state); created on first use. */
  hostDir(hostNs: string): string {
    const d = path.join(this.dir, 'hosts', hostNs);
    mkdirSync(path.join(d, 'net.d'), { recursive: true });
    return d;
  }

  /** Writes a CNI network configuration list into host `hostNs`'s --network-config-dir. */
  addNetwork(hostNs: string, conflist: { readonly name: string } & Record<string, unknown>): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(conflist.name)) throw new Error(`bad network name ${conflist.name}`);
    this.networks.add(conflist.name);
    const file = path.join(this.hostDir(hostNs), 'net.d', `${conflist.name}.conflist`);
    writeFileSync(file, `${JSON.stringify(conflist, null, 2)}\n`);
    return file;
  }

  /**
   * `nsenter --net=/run/netns/<hostNs> podman --root .. --runroot .. --network-config-dir <host's> args...`;
   * `run` and `create` also get --cgroup-parent and the host label. Resolves with the result whatever the exit code.
   */
  async result(hostNs: string, args: readonly string[], options: PodmanOptions = {}): Promise<RunResult> {
    if (this.tornDown) throw new Error('podman fixture already torn down');
    this.hosts.add(hostNs);
    const sub = args[0];
    const full = (sub === 'run' || sub === 'create')
      ? [sub, '--cgroup-parent', this.cgroupParent, '--label', `${HOST_LABEL}=${hostNs}`, ...args.slice(1)]
      : [...args];
    return runResult('nsenter', [`--net=${path.join(NETNS_DIR, hostNs)}`, 'podman', ...this.globalArgs(),
      '--network-config-dir', path.join(this.hostDir(hostNs), 'net.d'), ...full], { env: this.env(), timeoutMs: options.timeoutMs ?? 30_000 });
  }

  /** Like result(), but resolves with stdout and throws PodmanError (with podman's stderr) on a non-zero exit. */
  async podman(hostNs: string, args: readonly string[], options: PodmanOptions = {}): Promise<string> {
    const r = await this.result(hostNs, args, options);
    if (r.code !== 0) throw new PodmanError(`on ${hostNs}: podman ${args.join(' ')}`, r);
    return r.stdout;
  }

  /** `podman inspect` of one container; also remembers its network namespace for teardown. */
  async inspect(hostNs: string, container: string): Promise<ContainerInspect> {
    const out = await this.podman(hostNs, ['inspect', '--type', 'container', container]);
    const info = (JSON.parse(out) as ContainerInspect[])[0];
    if (info === undefined) throw new Error(`podman inspect ${container} returned nothing`);
    const key = info.NetworkSettings?.SandboxKey;
    if (key !== undefined && key !== '') this.sandboxes.add(key);
    return info;
  }

  /**
   * Removes every container (from the host it runs on, so that DEL runs
   * there), the storage and every directory of the fixture, podman's leftovers
   * in /run/netns, /var/lib/cni and the cgroup tree; checks that no mount is
   * left under the fixture's directory. Safe to call twice. Throws when
   * something could not be removed; otherwise reports what it had to force.
   */
  async teardown(): Promise<PodmanTeardownReport> {
    if (this.tornDown) return { forced: [] };
    const forced: string[] = [];
    const problems: string[] = [];
    try {
      if (existsSync(this.storageRoot)) await this.removeContainers(forced, problems);
    } catch (err) {
      // the rest still goes: mounts, namespaces, cgroups, files
      problems.push(`removing the containers: ${err instanceof Error ? err.message : String(err)}`);
    }
    this.tornDown = true;

    for (const key of this.sandboxes) {
      if (!existsSync(key)) continue;
      forced.push(`network namespace ${key}`);
      try {
        execFileSync('umount', ['-n', key], { stdio: 'ignore' });
      } catch {
        // not mounted any more: the file alone is left
      }
      try {
        unlinkSync(key);
      } catch (err) {
        problems.push(`cannot remove ${key}: ${String(err)}`);
      }
    }

    const mounts = mountsUnder(this.dir);
    if (mounts.length > 0) {
      forced.push(`mounts: ${mounts.join(', ')}`);
      for (const m of mounts) {
        try {
          execFileSync('umount', ['-n', m], { stdio: 'ignore' });
        } catch {
          try {
            execFileSync('umount', ['-n', '-l', m], { stdio: 'ignore' });
          } catch (err) {
            problems.push(`cannot unmount ${m}: ${String(err)}`);
          }
        }
      }
    }

    await this.removeCgroups(forced, problems);
    this.removeCniCache(forced, problems);

    // runc's state lives in <dir>/runc: a container runc still knows is a leftover too
    const runcState = path.join(this.dir, 'runc');
    if (existsSync(runcState) && readdirSync(runcState).length > 0) forced.push(`runc state: ${readdirSync(runcState).join(', ')}`);
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch (err) {
      problems.push(`cannot remove ${this.dir}: ${String(err)}`);
    }
    const still = mountsUnder(this.dir);
    if (still.length > 0) problems.push(`still mounted: ${still.join(', ')}`);
    if (problems.length > 0) throw new Error(`podman teardown incomplete:\n${problems.join('\n')}\n(forced: ${forced.join('; ') || 'nothing'})`);
    return { forced };
  }

  private async removeContainers(forced: string[], problems: string[]): Promise<void> {
    const list = await this.listContainers();
    for (const c of list) {
      const key = c.NetworkSettings?.SandboxKey;
      if (key !== undefined && key !== '') this.sandboxes.add(key);
    }
    // each host removes its own containers, so that the plugins' DEL runs in that host's namespace
    for (const host of this.hosts) {
      const ids = list.filter((c) => c.Config?.Labels?.[HOST_LABEL] === host).map((c) => c.Id);
      if (ids.length === 0 || !existsSync(path.join(NETNS_DIR, host))) continue;
      const r = await this.result(host, ['rm', '-f', '-t', '0', ...ids], { timeoutMs: 60_000 });
      if (r.code !== 0) problems.push(`on ${host}: podman rm -f ${ids.join(' ')}: ${r.stderr.trim()}`);
    }
    // anything else (a host already gone, a container made without the label): from the root namespace
    const rest = await this.listContainers();
    if (rest.length > 0) {
      forced.push(`containers removed from the root namespace: ${rest.map((c) => c.Id.slice(0, 12)).join(', ')}`);
      const r = await runResult('podman', [...this.globalArgs(), 'rm', '-af', '-t', '0'], { env: this.env(), timeoutMs: 60_000 });
      if (r.code !== 0) problems.push(`podman rm -af: ${r.stderr.trim()}`);
    }
  }

  private async listContainers(): Promise<ContainerInspect[]> {
    const ps = await runResult('podman', [...this.globalArgs(), 'ps', '-aq', '--no-trunc'], { env: this.env() });
    if (ps.code !== 0) throw new PodmanError('podman ps -aq', ps);
    const ids = ps.stdout.split('\n').map((s) => s.trim()).filter((s) => s !== '');
    if (ids.length === 0) return [];
    const r = await runResult('podman', [...this.globalArgs(), 'inspect', '--type', 'container', ...ids], { env: this.env() });
    if (r.code !== 0) throw new PodmanError('podman inspect', r);
    return JSON.parse(r.stdout) as ContainerInspect[];
  }

  /** The cgroup tree under --cgroup-parent in every hierarchy: kills what is left in it (conmon), then removes it. */
  private async removeCgroups(forced: string[], problems: string[]): Promise<void> {
    const trees = cgroupMounts().map((m) => path.join(m, this.cgroupParent)).filter((d) => existsSync(d));
    const pids = new Set<number>();
    for (const t of trees) for (const d of dirsDeepestFirst(t)) for (const pid of readPids(d)) pids.add(pid);
    if (pids.size > 0) {
      forced.push(`processes killed in ${this.cgroupParent}: ${[...pids].join(', ')}`);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    const deadline = Date.now() + 5000;
    for (const t of trees) {
      for (const d of dirsDeepestFirst(t)) {
        for (;;) {
          try {
            rmdirSync(d);
            break;
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if (code === 'ENOENT') break;
            if (code !== 'EBUSY' || Date.now() > deadline) {
              problems.push(`cannot remove cgroup ${d}: ${String(err)}`);
              break;
            }
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      }
    }
  }

  /** libcni's cached results (and host-local's default directory) for this fixture's networks. */
  private removeCniCache(forced: string[], problems: string[]): void {
    if (existsSync(CNI_RESULTS_DIR)) {
      for (const name of readdirSync(CNI_RESULTS_DIR)) {
        if (![...this.networks].some((n) => name.startsWith(`${n}-`))) continue;
        forced.push(`cached CNI result ${path.join(CNI_RESULTS_DIR, name)}`);
        rmSync(path.join(CNI_RESULTS_DIR, name), { force: true });
      }
    }
    for (const n of this.networks) {
      const d = path.join(CNI_HOST_LOCAL_DEFAULT_DIR, n);
      if (!existsSync(d)) continue;
      forced.push(`host-local state in its default directory ${d} (the ipam dataDir was not used)`);
      rmSync(d, { recursive: true, force: true });
    }
    const removeIfEmpty = (d: string): void => {
      try {
        if (existsSync(d) && readdirSync(d).length === 0) rmdirSync(d);
      } catch (err) {
        // another user of CNI may have just written there: leave it
        if ((err as NodeJS.ErrnoException).code !== 'ENOTEMPTY') problems.push(`cannot remove ${d}: ${String(err)}`);
      }
    };
    if (!this.cniResultsExisted) removeIfEmpty(CNI_RESULTS_DIR);
    if (!this.cniCacheExisted) {
      removeIfEmpty(CNI_HOST_LOCAL_DEFAULT_DIR);
      removeIfEmpty(CNI_CACHE_DIR);
    }
  }
}

/** What the fixture and the tests read from `podman inspect`. */
export interface ContainerInspect {
  readonly Id: string;
  readonly Name?: string;
  readonly State?: { readonly Status?: string; readonly ExitCode?: number };
  readonly Config?: { readonly Labels?: Record<string, string> | null };
  readonly NetworkSettings?: {
    readonly SandboxKey?: string;
    readonly Networks?: Record<string, { readonly IPAddress?: string; readonly IPPrefixLen?: number; readonly Gateway?: string }>;
  };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`;
}

/** Mount points at or below `dir` in this process's mount namespace, deepest first. */
export function mountsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const point = line.split(' ')[1];
    if (point === undefined) continue;
    const decoded = point.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (decoded === dir || decoded.startsWith(`${dir}/`)) out.push(decoded);
  }
  return out.sort((a, b) => b.length - a.length);
}

function cgroupMounts(): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, point, type] = line.split(' ');
    if (point !== undefined && (type === 'cgroup' || type === 'cgroup2')) out.push(point);
  }
  return out;
}

function dirsDeepestFirst(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(path.join(d, e.name));
    out.push(d);
  };
  walk(root);
  return out;
}

function readPids(cgroupDir: string): number[] {
  try {
    return readFileSync(path.join(cgroupDir, 'cgroup.procs'), 'utf8').split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
  } catch {
    return [];
  }
}
