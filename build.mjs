// Bundles the browser entry points in service/static/src/ into service/static/build/ (one JS and
// one CSS file each; fonts copied beside them) so pages load them from 'self' under a strict CSP.
import * as esbuild from "esbuild";
import { readdirSync } from "node:fs";

const src = "service/static/src";
const entryPoints = readdirSync(src).filter((f) => f.endsWith(".js")).map((f) => `${src}/${f}`);
const options = {
  entryPoints,
  bundle: true,
  minify: true,
  sourcemap: false,
  format: "iife",
  target: ["chrome100", "firefox100", "safari15"],
  outdir: "service/static/build",
  loader: { ".woff": "file", ".woff2": "file", ".ttf": "file", ".eot": "file", ".svg": "file" },
  logLevel: "info",
};

if (process.argv.includes("--watch")) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
