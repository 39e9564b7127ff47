// kavro-js's build, run from the toolchain folder so that esbuild,
// componentize-js and jco resolve from its node_modules.
//   node build.mjs SDK build PLUGIN.(js|ts) -o OUT.wasm
//   node build.mjs SDK types OUTDIR
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";

const [sdk, command, ...args] = process.argv.slice(2);
const caller = process.env.KAVRO_CALLER_DIR ?? process.cwd();
const fromCaller = (p) => path.resolve(caller, p);
const wit = path.resolve(sdk, "../../wit");
const PHASES = ["prime", "prepare", "present", "package", "post"];

function fail(message, hint) {
  console.error(`error: ${message}${hint ? `\n  hint: ${hint}` : ""}`);
  process.exit(1);
}

/** The phases the plugin object defines, read from its source (`directive` is present's). */
function phasesOf(source) {
  const text = fs.readFileSync(source, "utf8");
  const defines = (name) => new RegExp(`^\\s*(async\\s+)?${name}\\s*(\\(|:)`, "m").test(text);
  const found = PHASES.filter((p) => defines(p) || (p === "present" && defines("directive")));
  if (found.length === 0) {
    fail(`${source} defines none of ${PHASES.join(", ")} (or directive)`, "see sdk/js/README.md");
  }
  return found;
}

function worldDir(tmp, phases) {
  const deps = path.join(tmp, "wit", "deps", "kavro-plugin");
  fs.mkdirSync(deps, { recursive: true });
  for (const f of fs.readdirSync(wit).filter((f) => f.endsWith(".wit"))) {
    fs.copyFileSync(path.join(wit, f), path.join(deps, f));
  }
  const exports = phases
    .map((p) => `    export kavro:plugin/${p === "package" ? "%package" : p}@0.2.0;\n`)
    .join("");
  fs.writeFileSync(
    path.join(tmp, "wit", "world.wit"),
    `package kavro:js-plugin;\n\nworld plugin {\n    include kavro:plugin/base@0.2.0;\n${exports}}\n`,
  );
  return path.join(tmp, "wit");
}

/**
 * Trims the JS glue componentize-js 0.23 generates around every call, which
 * StarlingMonkey interprets on each phase call and host call:
 * - `_debugLog(...)` statements build one or two objects per call even
 *   with logging off;
 * - each borrowed request/response is registered with a
 *   FinalizationRegistry (and unregistered on each method call), though the
 *   borrow is dropped when the call returns; the registration is work, and
 *   a later cleanup would drop a handle that is gone. (Post's owned
 *   handles keep their registration; kavro.js drops them itself.)
 * Measured on a read-one-header, set-one-header plugin: 52 -> 39 us a call.
 * And a refused host call (host-error) throws an Error whose message is
 * the host's text, not "[object Object] (see error.payload)".
 * The glue is patched where componentize-js hands it to Wizer; code in
 * another shape (another version) is left as it is.
 */
async function leanBindings() {
  const main = import.meta.resolve("@bytecodealliance/componentize-js");
  const { splicer } = await import(new URL("../lib/spidermonkey-embedding-splicer.js", main).href);
  if (splicer.kavroLean) return;
  const splice = splicer.spliceBindings;
  splicer.spliceBindings = (...args) => {
    const r = splice(...args);
    const js = r.jsBindings
      .replace(/_debugLog\((?:'[^']*'|"[^"]*")(?:, \{[^{}]*\})?\);/g, "")
      .replace(
        /finalizationRegistry_[\w$]+\.register\((rsc\d+), handle\d+, \1\);(\s*curResourceBorrows\.push)/g,
        "$2",
      )
      .replace(/finalizationRegistry_[\w$]+\.unregister\(arg0\);/g, "")
      .replace(
        "super(enumerable ? `${String(value)} (see error.payload)` : value);",
        () => "super(typeof value?.val === 'string' ? value.val : enumerable ? `${String(value)} (see error.payload)` : value);",
      );
    return { ...r, jsBindings: js };
  };
  splicer.kavroLean = true;
}

async function build(source, out) {
  const phases = phasesOf(source);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "kavro-js-"));
  try {
    const witDir = worldDir(tmp, phases);
    const lines = [
      `import userPlugin from ${JSON.stringify(source)};`,
      `import { exportsFor } from "kavro";`,
      `const e = exportsFor(userPlugin);`,
      `export const plugin = e.plugin;`,
      ...phases.map((p) => `const ${p}_ = e.${p};\nexport { ${p}_ as ${p} };`),
    ];
    const entry = path.join(tmp, "entry.js");
    fs.writeFileSync(entry, lines.join("\n") + "\n");
    const bundle = path.join(tmp, "bundle.js");
    const { build: esbuild } = await import("esbuild");
    await esbuild({
      entryPoints: [entry],
      bundle: true,
      format: "esm",
      platform: "neutral",
      target: "es2022",
      outfile: bundle,
      external: ["kavro:plugin/*"],
      alias: { kavro: path.join(sdk, "kavro.js") },
      logLevel: "error",
    });
    await leanBindings();
    const { componentize } = await import("@bytecodealliance/componentize-js");
    const { component } = await componentize({
      sourcePath: bundle,
      witPath: witDir,
      worldName: "plugin",
      // No outbound HTTP or fetch-event handler: those would import wasi:http.
      disableFeatures: ["http", "fetch-event"],
    });
    fs.writeFileSync(out, component);
    console.log(`built ${out} (${phases.join(", ")})`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function types(outDir) {
  const jco = path.join(process.cwd(), "node_modules", ".bin", "jco");
  execFileSync(jco, ["types", wit, "--world-name", "kavro:plugin/host", "-o", outDir], {
    stdio: "inherit",
  });
}

if (command === "build") {
  const o = args.indexOf("-o");
  const source = args.find((a, i) => a !== "-o" && i !== o + 1);
  if (!source || o < 0 || !args[o + 1]) fail("usage: kavro-js build PLUGIN.(js|ts) -o OUT.wasm");
  await build(fromCaller(source), fromCaller(args[o + 1]));
} else if (command === "types") {
  types(fromCaller(args[0] ?? "types"));
} else {
  fail("usage: kavro-js build PLUGIN.(js|ts) -o OUT.wasm | kavro-js types OUTDIR");
}
