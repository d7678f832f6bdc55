/** What build of weft this is: the package version and the Node.js that runs it (weft_build_info, `weft status`). */
import * as path from 'node:path';
import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** weft's version from package.json (dist/src -> repository root). */
export function weftVersion(): string {
  cached ??= (JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  return cached;
}
