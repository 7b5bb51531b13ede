// Writes the package's type declarations (types/) from the sources' JSDoc
// with tsc, and copies the hand-written frame types beside them: run by
// `npm pack` (prepack), so the published package carries what CI checked.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
rmSync(join(root, 'types'), { recursive: true, force: true });
mkdirSync(join(root, 'types'));
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
copyFileSync(join(root, 'src/protocol.d.ts'), join(root, 'types/protocol.d.ts'));
