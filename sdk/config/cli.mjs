// The `kavro` CLI (sdk/config/kavro runs it from the JS toolchain folder,
// where esbuild resolves):
//   kavro compile --config kavro.config.ts [--out .kavro/route-graph.json]
//   kavro validate kavro.config.ts | graph.json
//   kavro serve --config kavro.config.ts [kavro-host flags...]
// A TypeScript config is bundled with esbuild and run once, here; its
// default export (defineConfig's graph) goes to `kavro-host compile`, which
// checks it and prints the canonical JSON. Node is never in the request path.

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

import * as esbuild from "esbuild";

const [sdk, command, ...rest] = process.argv.slice(2);
const caller = process.env.KAVRO_CALLER_DIR ?? process.cwd();

function fail(message) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

function flag(args, name) {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const value = args[i + 1];
  if (value === undefined) fail(`${name} needs a value`);
  args.splice(i, 2);
  return value;
}

/** kavro-host: $KAVRO_HOST, on PATH, or the build this checkout makes. */
function hostBinary() {
  const candidates = [
    process.env.KAVRO_HOST,
    ...(process.env.PATH ?? "").split(":").map((d) => path.join(d, "kavro-host")),
    process.env.CARGO_TARGET_DIR && path.join(process.env.CARGO_TARGET_DIR, "release/kavro-host"),
    path.join(os.homedir(), ".cache/kavro/target/release/kavro-host"),
  ];
  const found = candidates.find((c) => c && fs.existsSync(c));
  if (!found) fail("kavro-host is not built: run ./dev.sh run once, or set KAVRO_HOST to it");
  return found;
}

/** Runs the config file and returns its graph, or stops naming the file and line. */
async function graphOf(file) {
  let bundle;
  try {
    bundle = await esbuild.build({
      entryPoints: [file],
      bundle: true,
      platform: "node",
      format: "esm",
      write: false,
      sourcemap: "inline",
      logLevel: "silent",
      alias: { "kavro/config": path.join(sdk, "index.ts") },
    });
  } catch (e) {
    const lines = (e.errors ?? []).map((m) =>
      m.location
        ? `${path.resolve(m.location.file)}:${m.location.line}:${m.location.column + 1}: ${m.text}`
        : m.text,
    );
    fail(lines.join("\n") || String(e));
  }
  const out = path.join(os.tmpdir(), `kavro-config-${process.pid}.mjs`);
  fs.writeFileSync(out, bundle.outputFiles[0].text);
  process.setSourceMapsEnabled(true);
  let mod;
  try {
    mod = await import(pathToFileURL(out).href);
  } catch (e) {
    // The config's own line, through the bundle's source map.
    const frame = (e.stack ?? "")
      .split("\n")
      .map((l) => /\(?([^\s()]+:\d+:\d+)\)?$/.exec(l.trim())?.[1])
      .find((l) => l && l.startsWith(file));
    fail(`${frame ?? file}: ${e.message}`);
  } finally {
    fs.rmSync(out, { force: true });
  }
  const graph = mod.default;
  if (!graph || typeof graph !== "object" || !Array.isArray(graph.routes)) {
    fail(`${file}: the default export is not a config: write export default defineConfig({ servers: [...] })`);
  }
  return graph;
}

/** The canonical graph of a config file (.ts through graphOf, .json/.toml as is). */
async function compile(file) {
  let input = file;
  let temp;
  if (/\.[cm]?[tj]s$/.test(file)) {
    const graph = await graphOf(file);
    // Beside the config: relative paths resolve against its folder.
    temp = path.join(path.dirname(file), `.kavro-graph-${process.pid}.json`);
    fs.writeFileSync(temp, JSON.stringify(graph, null, 2));
    input = temp;
  }
  const r = spawnSync(hostBinary(), ["compile", input], { encoding: "utf8" });
  if (temp) fs.rmSync(temp, { force: true });
  if (r.status !== 0) {
    const shown = temp ? r.stderr.split(temp).join(`${file} (compiled)`) : r.stderr;
    process.stderr.write(shown);
    process.exit(r.status ?? 1);
  }
  return r.stdout;
}

function absolute(p) {
  return path.resolve(caller, p);
}

async function main() {
  const args = [...rest];
  switch (command) {
    case "compile": {
      const config = flag(args, "--config") ?? args.shift() ?? "kavro.config.ts";
      const out = flag(args, "--out");
      const graph = await compile(absolute(config));
      if (out) {
        fs.mkdirSync(path.dirname(absolute(out)), { recursive: true });
        fs.writeFileSync(absolute(out), graph);
      } else {
        process.stdout.write(graph);
      }
      return;
    }
    case "validate": {
      const file = absolute(args.shift() ?? "kavro.config.ts");
      let graphFile = file;
      if (/\.[cm]?[tj]s$/.test(file)) {
        graphFile = path.join(path.dirname(file), ".kavro", "route-graph.json");
        fs.mkdirSync(path.dirname(graphFile), { recursive: true });
        fs.writeFileSync(graphFile, await compile(file));
      }
      const r = spawnSync(hostBinary(), ["validate", graphFile, ...args], {
        stdio: "inherit",
        cwd: caller,
      });
      process.exit(r.status ?? 1);
    }
    case "serve": {
      const config = absolute(flag(args, "--config") ?? "kavro.config.ts");
      const graphFile = path.join(path.dirname(config), ".kavro", "route-graph.json");
      fs.mkdirSync(path.dirname(graphFile), { recursive: true });
      fs.writeFileSync(graphFile, await compile(config));
      const host = spawn(hostBinary(), ["--config", graphFile, ...args], {
        stdio: "inherit",
        cwd: caller,
      });
      for (const signal of ["SIGINT", "SIGTERM"]) {
        process.on(signal, () => host.kill(signal));
      }
      host.on("exit", (code) => process.exit(code ?? 0));
      // A saved config is compiled again; kavro-host reloads the graph
      // when it changes (a config that does not compile changes nothing).
      let last = fs.statSync(config).mtimeMs;
      setInterval(async () => {
        const now = fs.statSync(config, { throwIfNoEntry: false })?.mtimeMs;
        if (now === undefined || now === last) return;
        last = now;
        const r = spawnSync(process.execPath, [process.argv[1], sdk, "compile", config], {
          encoding: "utf8",
          env: { ...process.env, KAVRO_CALLER_DIR: caller },
        });
        if (r.status === 0) {
          fs.writeFileSync(graphFile, r.stdout);
        } else {
          process.stderr.write(r.stderr);
        }
      }, 500);
      return;
    }
    default:
      fail("usage: kavro compile --config FILE [--out FILE] | validate FILE | serve --config FILE [kavro-host flags]");
  }
}

await main();
