// Bundles the browser entry points in service/static/src/ into service/static/build/ (one JS and
// one CSS file each; fonts copied beside them) so pages load them from 'self' under a strict CSP.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";

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

// Swagger UI for /api/docs ships prebuilt; it is copied beside the bundles so the docs page loads
// nothing from a CDN (the platform's network may be closed).
const swagger = "service/static/build/swagger-ui";
mkdirSync(swagger, { recursive: true });
for (const file of ["swagger-ui.css", "swagger-ui-bundle.js", "LICENSE"]) {
  copyFileSync(`node_modules/swagger-ui-dist/${file}`, `${swagger}/${file}`);
}

if (process.argv.includes("--watch")) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
