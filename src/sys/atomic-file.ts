/**
 * Crash-safe file replacement: the new content is written and fsynced to a
 * temp file beside the target, renamed over it, and the directory is fsynced.
 * A reader sees the old file or the new one, never a mix; a crash leaves at
 * worst a stray temp file, never a torn target.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** Mode of the file, independent of the umask. */
  readonly mode: number;
  /** Mode of the parent directory when it has to be created. */
  readonly dirMode: number;
}

/** Replaces `path` with `content` atomically. Throws the file system's error on failure. */
export async function writeFileAtomic(path: string, content: string, options: AtomicWriteOptions): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  let tmpExists = false;
  try {
    await mkdir(dir, { recursive: true, mode: options.dirMode });
    handle = await open(tmp, 'wx', options.mode);
    tmpExists = true;
    await handle.writeFile(content, 'utf8');
    await handle.chmod(options.mode);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(tmp, path);
    tmpExists = false;
    await syncDirectory(dir);
  } catch (err) {
    if (handle !== undefined) await handle.close().catch(() => undefined);
    if (tmpExists) await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** fsync a directory so that a rename in it is durable; filesystems that cannot do it are skipped. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EISDIR') throw err;
  } finally {
    await handle.close();
  }
}
