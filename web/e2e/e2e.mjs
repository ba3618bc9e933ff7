// End-to-end test of the web page in Debian's headless Chromium (playwright-core):
// serves dist/ on 127.0.0.1, runs IG-CAM (m = 16) on the bundled cat photo with WebGPU on and
// with WebGPU off, and compares the layer-resolution map with the native CLI's --json map
// (relative L2 <= 1e-3). Also: three methods side by side, a non-image drop, a non-CNN .onnx.
// Usage: node e2e.mjs DIST_DIR CLI_JSON ARTIFACT_DIR
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { readFileSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";

const [dist, cliJson, artifacts] = process.argv.slice(2).map((p) => resolve(p));
mkdirSync(artifacts, { recursive: true });
const reference = JSON.parse(readFileSync(cliJson, "utf8"))[0].cam.values;
const PORT = 18000 + Math.floor(Math.random() * 1000);
let passed = 0, failed = 0;

function relL2(a, b) {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num / den);
}

async function check(name, fn) {
  try { await fn(); passed++; console.log(`ok   ${name}`); }
  catch (e) { failed++; console.log(`FAIL ${name}: ${e.message}`); }
}

function assert(cond, msg) { if (!cond) throw new Error(msg); }

const server = spawn("python3", ["-m", "http.server", String(PORT), "--bind", "127.0.0.1", "--directory", dist], { stdio: "ignore" });
await new Promise((r) => setTimeout(r, 1000));

async function withPage(webgpu, fn) {
  // playwright gives each launch a fresh temporary profile.
  const args = ["--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"];
  if (webgpu) args.push("--enable-unsafe-webgpu");
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args, headless: true });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("console", (m) => { if (m.type() === "error") console.log(`  [page] ${m.text()}`); });
  try {
    await page.goto(`http://127.0.0.1:${PORT}/index.html`);
    await page.waitForFunction(() => document.body.dataset.ready === "1" && window.igcamModel, null, { timeout: 120000 });
    await fn(page);
  } finally {
    await browser.close();
  }
}

async function explainCat(page, method, steps) {
  await page.click('img.sample[data-name="chelsea.png"]');
  await page.waitForFunction(() => !document.getElementById("run").disabled, null, { timeout: 60000 });
  await page.selectOption("#method", method);
  await page.$eval("#steps", (el, v) => { el.value = String(v); el.dispatchEvent(new Event("input")); }, steps);
  await page.evaluate(() => { window.igcamResult = undefined; });
  const t0 = Date.now();
  await page.click("#run");
  await page.waitForFunction(() => window.igcamResult !== undefined, null, { timeout: 600000 });
  const wall = Date.now() - t0;
  return { result: await page.evaluate(() => window.igcamResult), wall };
}

for (const webgpu of [true, false]) {
  const path = webgpu ? "webgpu" : "cpu";
  await check(`IG-CAM m=16 on the ${path} path matches the CLI`, async () => {
    await withPage(webgpu, async (page) => {
      const backend = await page.evaluate(() => window.igcamBackend);
      if (webgpu) assert(backend.startsWith("WebGPU"), `page reports ${backend}, expected WebGPU`);
      else {
        assert(backend === "CPU", `page reports ${backend}, expected CPU`);
        assert(await page.isVisible("#notice"), "no CPU fallback notice");
        assert((await page.textContent("#notice")).includes("running on the CPU"), "notice text");
      }
      const { result, wall } = await explainCat(page, "igcam", 16);
      assert(result.height === 7 && result.width === 7, `map is ${result.height}x${result.width}`);
      const err = relL2(result.values, reference);
      console.log(`     ${backend}: rel L2 ${err.toExponential(2)}, ${result.ms.toFixed(0)} ms in the page, ${wall} ms wall`);
      assert(err <= 1e-3, `relative L2 ${err} > 1e-3`);
      await page.screenshot({ path: join(artifacts, `igcam_${path}.png`), fullPage: true });
      const m50 = await explainCat(page, "igcam", 50);
      console.log(`     m=50 on ${backend}: ${m50.result.ms.toFixed(0)} ms in the page`);
      if (webgpu) {
        await explainCat(page, "compare", 16);
        const shown = await page.$$eval("figure.result", (fs) => fs.map((f) => f.dataset.method));
        assert(shown.join(",") === "igcam,gradcam,gradcampp", `compare shows ${shown}`);
        await page.screenshot({ path: join(artifacts, "compare.png"), fullPage: true });
      }
    });
  });
}

await check("a non-image and a non-CNN model show errors, then a valid photo works", async () => {
  await withPage(false, async (page) => {
    await page.setInputFiles("#file", { name: "notes.png", mimeType: "image/png", buffer: Buffer.from("not an image") });
    await page.waitForSelector("#error:not([hidden])", { timeout: 30000 });
    assert((await page.textContent("#error")).includes("cannot decode image"), await page.textContent("#error"));
    const conv = readFileSync(resolve(dist, "../tests/fixtures/ops/conv_bias_pads.onnx"));
    await page.setInputFiles("#file", { name: "conv.onnx", mimeType: "application/octet-stream", buffer: conv });
    await page.waitForFunction(() => document.getElementById("error").textContent.includes("not a CNN classifier"), null, { timeout: 30000 });
    // The default model is gone only if the bad one loaded; it must still be there.
    const { result } = await explainCat(page, "gradcam", 1);
    assert(result.height === 7, "gradcam after errors");
    assert(await page.isHidden("#error"), "error cleared");
  });
});

server.kill();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
