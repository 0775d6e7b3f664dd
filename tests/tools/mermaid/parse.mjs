// Reads a Mermaid diagram on stdin and parses it with Mermaid's own parser (`mermaid.parse`),
// under jsdom: exit 0 with the diagram type, 1 with Mermaid's error.
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
globalThis.DOMPurify = undefined;

const { default: mermaid } = await import("mermaid");
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const text = Buffer.concat(chunks).toString("utf8");
try {
  mermaid.initialize({ startOnLoad: false });
  const result = await mermaid.parse(text);
  console.log(`ok ${result.diagramType}`);
} catch (e) {
  console.error(`mermaid: ${e.message ?? e}`);
  process.exit(1);
}
