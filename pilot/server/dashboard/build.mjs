// Rebuilds dist/ from src/: `npm ci && npm run build`. dist/ is committed,
// so building Bowline needs no npm; the admin server embeds it.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";

mkdirSync("dist", { recursive: true });
await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["chrome110", "firefox110", "safari16"],
  legalComments: "eof",
  outfile: "dist/dashboard.js",
});
await build({
  entryPoints: ["src/style.css"],
  bundle: true,
  minify: true,
  outfile: "dist/dashboard.css",
});
copyFileSync("src/index.html", "dist/index.html");
// The bundled library's licence travels with it.
const licence = readFileSync("node_modules/cytoscape/LICENSE", "utf8");
writeFileSync("dist/THIRD-PARTY-LICENSES.txt", `cytoscape ${JSON.parse(readFileSync("node_modules/cytoscape/package.json", "utf8")).version}\n\n${licence}`);
