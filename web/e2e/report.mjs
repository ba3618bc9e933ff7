// Opens an `eval --report` HTML file in Debian's headless Chromium (playwright-core) and checks
// that it renders from disk with no console error and no network request, within 2 s (times
// IGCAM_TIME_SCALE), at most 10 MB, with the summary table, a chart per metric, the deletion
// and insertion curves and the MPRT sanity plots, the comparisons and a gallery whose images
// all decode. Keeps a full-page screenshot as ARTIFACT_DIR/report.png.
// Usage: node report.mjs REPORT_HTML ARTIFACT_DIR METRIC_COUNT
import { chromium } from "playwright-core";
import { statSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [report, artifacts] = process.argv.slice(2, 4).map((p) => resolve(p));
const metrics = Number(process.argv[4]);
const SCALE = Number(process.env.IGCAM_TIME_SCALE || 1);
mkdirSync(artifacts, { recursive: true });
const failures = [];
const check = (ok, what) => { console.log(`${ok ? "ok  " : "FAIL"} report: ${what}`); if (!ok) failures.push(what); };

const bytes = statSync(report).size;
check(bytes <= 10 * 1024 * 1024, `size ${(bytes / 1048576).toFixed(2)} MB <= 10 MB`);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"], headless: true });
try {
  const page = await browser.newPage({ viewport: { width: 1250, height: 900 } });
  const errors = [];
  const requests = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => { if (!r.url().startsWith("file:") && !r.url().startsWith("data:")) requests.push(r.url()); });
  const t0 = Date.now();
  await page.goto(pathToFileURL(report).href, { waitUntil: "load" });
  const ms = Date.now() - t0;
  check(ms < 2000 * SCALE, `opened in ${ms} ms (< ${2000 * SCALE})`);
  const seen = await page.evaluate(() => ({
    summaryRows: document.querySelectorAll("#summary tr").length - 1,
    metricCharts: document.querySelectorAll("svg.chart.metric").length,
    curves: [...document.querySelectorAll("svg.chart.curve")].map((s) => s.dataset.curve),
    comparisons: document.querySelectorAll("#comparisons tr").length - 1,
    images: [...document.images].map((i) => i.complete && i.naturalWidth > 0),
  }));
  check(seen.summaryRows >= 1, `summary table with ${seen.summaryRows} methods`);
  check(seen.metricCharts === metrics, `${seen.metricCharts} metric charts (${metrics} expected)`);
  const curves = "deletion,insertion,mprt_spearman,mprt_ssim";
  check(seen.curves.join(",") === curves, `curves: ${seen.curves.join(", ")} (${curves} expected)`);
  check(seen.comparisons >= 1, `${seen.comparisons} paired comparisons`);
  check(seen.images.length > 0 && seen.images.every(Boolean), `${seen.images.length} gallery images decoded`);
  check(errors.length === 0, `no console error${errors.length ? ": " + errors.join("; ") : ""}`);
  check(requests.length === 0, `no network request${requests.length ? ": " + requests.join(", ") : ""}`);
  await page.screenshot({ path: join(artifacts, "report.png"), fullPage: true });
} finally {
  await browser.close();
}
if (failures.length) {
  console.log(`report: ${failures.length} check(s) failed`);
  process.exit(1);
}
