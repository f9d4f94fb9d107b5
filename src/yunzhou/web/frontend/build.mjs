// Copies the console's browser dependencies from node_modules into ../static/dist (gitignored).
// No bundler: htmx and ECharts ship ready-to-serve builds; our own app.js/app.css live in ../static.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "static", "dist");
const assets = {
  "htmx.min.js": "node_modules/htmx.org/dist/htmx.min.js",
  "echarts.min.js": "node_modules/echarts/dist/echarts.common.min.js",  // line charts with time axes, legend, tooltip, SVG
};

mkdirSync(dist, { recursive: true });
const manifest = {};
for (const [name, source] of Object.entries(assets)) {
  copyFileSync(join(here, source), join(dist, name));
  const pkg = JSON.parse(readFileSync(join(here, source.split("/dist/")[0], "package.json"), "utf8"));
  manifest[name] = `${pkg.name}@${pkg.version}`;
}
writeFileSync(join(dist, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`built ${Object.keys(assets).length} assets into ${dist}`);
