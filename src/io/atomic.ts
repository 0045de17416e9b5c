// Atomic file writes: a reader (or a crash) sees either the old file or the complete new
// one, never a half-written checkpoint. Used for model.safetensors, config.json and
// tokenizer.json alike.
//
// The recipe is the usual POSIX one: write to a temporary name in the SAME directory (a
// rename is only atomic within one file system), fsync the file so its bytes are on disk
// before the name points at them, rename over the target, then fsync the directory so the
// rename itself is durable.

import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Write `path` atomically. `contents` is either the bytes/text to write, or a callback that
 * writes through the open file handle (for large files written in pieces, so the caller
 * never has to hold the whole file in one buffer).
 */
export async function writeFileAtomic(
  path: string,
  contents: Uint8Array | string | ((file: FileHandle) => Promise<void>),
): Promise<void> {
  const dir = dirname(path);
  // A dot-prefixed, pid- and random-suffixed name: hidden from casual listings, and two
  // concurrent writers of the same target never share a temp file.
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const file = await open(tmp, 'wx', 0o644);
  try {
    if (typeof contents === 'function') await contents(file);
    else await file.writeFile(contents);
    await file.sync();
  } catch (err) {
    await file.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
  await file.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDirectory(dir);
}

/** fsync a directory so that renames and new entries in it survive a power cut. */
export async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    // Some platforms (Windows) and file systems cannot open or fsync a directory. The file
    // itself is complete and renamed by now, so durability of the rename is best effort.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES') throw err;
  } finally {
    await handle?.close();
  }
}
