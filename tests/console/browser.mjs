// Real-browser check of the review console: Debian's chromium driven by playwright-core (never a
// downloaded browser). Started by tests/console/main.rs with the console already serving; prints one
// JSON line of results and exits non-zero on the first failed step.
//
// Env: CONSOLE_URL, CONSOLE_TOKEN (reviewer), CHROMIUM, OUT_DIR (screenshots), IMAGE_MSGID,
//      VOICE_MSGID, ROOM_ID, PHRASE (Chinese), EXPORT_CONV.
import { createRequire } from "node:module";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const require = createRequire(join(process.env.PLAYWRIGHT_DIR, "package.json"));
const { chromium } = require("playwright-core");

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing ${k}`);
  return v;
};
const base = env("CONSOLE_URL");
const out = env("OUT_DIR");
mkdirSync(out, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "console-chromium-"));
const results = {};
const seg = (s) => encodeURIComponent(s);

const context = await chromium.launchPersistentContext(profile, {
  executablePath: env("CHROMIUM"),
  headless: true,
  acceptDownloads: true,
  viewport: { width: 1280, height: 900 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(20000);
const step = async (name, fn) => {
  try {
    results[name] = (await fn()) ?? true;
  } catch (e) {
    results[name] = `FAILED: ${e.message}`;
    await page.screenshot({ path: join(out, `failed-${name}.png`), fullPage: true }).catch(() => {});
    console.log(JSON.stringify(results));
    await context.close();
    rmSync(profile, { recursive: true, force: true });
    process.exit(1);
  }
};

await step("login", async () => {
  await page.goto(`${base}/conversations`);
  if (!page.url().includes("/login")) throw new Error(`not sent to the sign-in form: ${page.url()}`);
  await page.fill("#token", env("CONSOLE_TOKEN"));
  await Promise.all([page.waitForURL(/\/conversations/), page.click("button[type=submit]")]);
  const rows = await page.locator("ul.conv-list a.conv").count();
  if (rows === 0) throw new Error("no conversation listed");
  await page.screenshot({ path: join(out, "01-conversations.png"), fullPage: false });
  return rows;
});

await step("room", async () => {
  await page.goto(`${base}/c/${seg(env("ROOM_ID"))}`);
  const n = await page.locator("article.msg").count();
  if (n === 0) throw new Error("the room shows no message");
  await page.screenshot({ path: join(out, "02-room.png"), fullPage: false });
  return n;
});

await step("image", async () => {
  await page.goto(`${base}/m/${seg(env("IMAGE_MSGID"))}`);
  const img = page.locator("article.msg img.thumb").first();
  await img.waitFor();
  await page.waitForFunction((el) => el.complete, await img.elementHandle());
  const width = await img.evaluate((el) => el.naturalWidth);
  if (!(width > 0)) throw new Error(`the picture did not render (naturalWidth ${width})`);
  await page.screenshot({ path: join(out, "03-image.png"), fullPage: false });
  return width;
});

await step("voice", async () => {
  await page.goto(`${base}/m/${seg(env("VOICE_MSGID"))}`);
  const audio = page.locator("article.msg audio").first();
  await audio.waitFor();
  const state = await audio.evaluate(async (el) => {
    if (el.readyState < 1) {
      await new Promise((resolve, reject) => {
        el.addEventListener("loadedmetadata", resolve, { once: true });
        el.addEventListener("error", () => reject(new Error(`media error ${el.error && el.error.code}`)), { once: true });
        el.load();
      });
    }
    await el.play();
    await new Promise((r) => setTimeout(r, 300));
    return { readyState: el.readyState, duration: el.duration, currentTime: el.currentTime };
  });
  if (!(state.readyState >= 1 && state.duration > 0)) throw new Error(`voice not playable: ${JSON.stringify(state)}`);
  await page.screenshot({ path: join(out, "04-voice.png"), fullPage: false });
  return state;
});

await step("search", async () => {
  await page.goto(`${base}/conversations`);
  await page.keyboard.press("/");
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  if (focused !== "q") throw new Error("'/' did not focus the search box");
  await page.keyboard.type(env("PHRASE"));
  await Promise.all([page.waitForURL(/\/search\?/), page.keyboard.press("Enter")]);
  const marks = await page.locator("section.results mark").allTextContents();
  if (marks.length === 0) throw new Error("no highlighted hit");
  const wrong = marks.filter((m) => m !== env("PHRASE"));
  if (wrong.length) throw new Error(`highlights other than the phrase: ${wrong.slice(0, 3)}`);
  await page.screenshot({ path: join(out, "05-search.png"), fullPage: false });
  return marks.length;
});

await step("export", async () => {
  await page.goto(`${base}/c/${seg(env("EXPORT_CONV"))}`);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-button")]);
  const path = join(out, download.suggestedFilename());
  await download.saveAs(path);
  const text = readFileSync(path, "utf8");
  const lines = text.split("\n").filter((l) => l.startsWith("["));
  if (lines.length === 0) throw new Error("the export has no message line");
  return { file: download.suggestedFilename(), lines: lines.length };
});

console.log(JSON.stringify(results));
await context.close();
rmSync(profile, { recursive: true, force: true });
