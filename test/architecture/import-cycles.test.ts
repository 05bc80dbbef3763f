import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

/**
 * No import cycle under src/, type-only imports included: a cycle means neither module can be
 * read (or loaded, or moved) without the other, which is what the layout (http, workers → jobs,
 * billing → ledger → db) is there to prevent. Imports are read with TypeScript's parser:
 * `import`, `import type`, `export … from` and `import()` with a relative specifier.
 */
const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|tsx|mts)$/.test(name) && !name.endsWith(".d.ts") ? [path] : [];
  });
}

/** The relative module specifiers a file imports, resolved to files (`./x.js` is `./x.ts`). */
function importsOf(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
  const specifiers: string[] = [];
  const visit = (node: ts.Node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      if (ts.isStringLiteral(node.moduleSpecifier)) specifiers.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteralLike(arg)) specifiers.push(arg.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return specifiers
    .filter((s) => s.startsWith("."))
    .map((s) => {
      const target = resolve(dirname(file), s);
      const candidates = [
        target.replace(/\.(m?js|jsx)$/, ".ts"),
        target.replace(/\.jsx$/, ".tsx"),
        target,
        `${target}.ts`,
      ];
      candidates.push(join(target, "index.ts"));
      return candidates.find((c) => statSync(c, { throwIfNoEntry: false })?.isFile()) ?? target;
    });
}

/** Every cycle's modules (strongly connected components of more than one module, or a self-import), Tarjan's algorithm. */
function importCycles(dir: string): string[][] {
  const graph = new Map(sourceFiles(dir).map((f) => [f, importsOf(f)]));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const connect = (v: string) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string | undefined;
    do {
      w = stack.pop();
      if (w === undefined) break;
      onStack.delete(w);
      component.push(relative(dir, w));
    } while (w !== v);
    if (component.length > 1 || graph.get(v)?.includes(v)) cycles.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) connect(v);
  return cycles;
}

describe("imports under src/", () => {
  it("form no cycle", () => {
    expect(importCycles(SRC)).toEqual([]);
  });

  it("the check finds a cycle, through type-only imports, re-exports and import() too", () => {
    const dir = mkdtempSync(join(tmpdir(), "import-cycles-"));
    try {
      const write = (name: string, text: string) => writeFileSync(join(dir, name), text);
      write("a.ts", 'import { b } from "./b.js";\nexport const a = b;\n');
      write("b.ts", 'import type { C } from "./c.js";\nexport const b: C = 1;\n');
      write("c.ts", 'export type C = number;\nexport * from "./a.js";\n');
      write("d.ts", 'export const d = () => import("./e.js");\n');
      write("e.ts", 'import { d } from "./d.js";\nexport const e = d;\n');
      write("f.ts", 'import { a } from "./a.js";\nexport const f = a;\n');
      expect(importCycles(dir).sort()).toEqual([
        ["a.ts", "b.ts", "c.ts"],
        ["d.ts", "e.ts"],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
