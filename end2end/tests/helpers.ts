import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { expect, type Page } from "@playwright/test";

const BIN = process.env.WEBHOOKS_BIN ?? "../target/debug/webhooks";

export interface Account {
  account_id: string;
  user_id: string;
  api_key: string;
  email: string;
  password: string;
}

/** Creates an account and its owner through the real CLI, as an operator would. */
export function createAccount(name = "Acme"): Account {
  const email = `owner-${randomUUID().slice(0, 8)}@acme.test`;
  const password = "correct horse battery";
  const out = execFileSync(
    BIN,
    ["account", "create", "--name", name, "--owner-email", email, "--owner-password", password],
    { env: { ...process.env, DATABASE_URL: process.env.E2E_DATABASE_URL, RUST_LOG: "warn" } },
  );
  return { ...JSON.parse(out.toString()), email, password };
}

/** Adds a user with a role to an account through the CLI's `user create`. */
export function createUser(account: Account, role: "owner" | "admin" | "member") {
  const email = `${role}-${randomUUID().slice(0, 8)}@acme.test`;
  const password = "correct horse battery";
  execFileSync(
    BIN,
    ["user", "create", "--account", account.account_id, "--email", email, "--role", role, "--password", password],
    { env: { ...process.env, DATABASE_URL: process.env.E2E_DATABASE_URL, RUST_LOG: "warn" } },
  );
  return { email, password };
}

/** Fails the test on any browser console error (a hydration panic shows up there). */
export function failOnConsoleErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(msg.text());
  });
  page.on("pageerror", (err) => errors.push(err.message));
  return errors;
}

export async function logIn(page: Page, email: string, password: string) {
  await page.goto("/login");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
}

/** Navigates and waits until the app has hydrated (the body gets `data-hydrated`). */
export async function gotoHydrated(page: Page, path: string) {
  await page.goto(path);
  await page.locator("body[data-hydrated=true]").waitFor();
}

export interface ReceivedRequest {
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A real HTTPS receiver on 127.0.0.1 presenting a certificate from the test CA. */
export async function startReceiver(initialStatus = 200) {
  let status = initialStatus;
  let retryAfter: string | undefined;
  const dir = process.env.E2E_CA_DIR!;
  const received: ReceivedRequest[] = [];
  const server = https.createServer(
    { key: readFileSync(`${dir}/leaf.key`), cert: readFileSync(`${dir}/leaf.pem`) },
    (req, res) => {
      let body = "";
      req.on("data", (chunk) => (body += chunk));
      req.on("end", () => {
        if (req.method === "POST") received.push({ headers: req.headers, body });
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (retryAfter !== undefined) headers["retry-after"] = retryAfter;
        res.writeHead(status, headers);
        res.end(JSON.stringify({ ok: true }));
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://localhost:${port}/hooks`,
    received,
    setStatus: (next: number) => {
      status = next;
    },
    /** A `Retry-After` header on every answer (seconds), or none. */
    setRetryAfter: (seconds: number | undefined) => {
      retryAfter = seconds === undefined ? undefined : String(seconds);
    },
    /** Stops listening and drops every connection: the server's client keeps connections
     * alive, and one it has just opened is not idle yet, so `close` alone could wait on it. */
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Creates an endpoint through the REST API, as an integration would. */
export async function createEndpoint(account: Account, url: string, eventTypes: string[], description = "") {
  const res = await fetch(`${process.env.E2E_BASE_URL}/api/v1/endpoints`, {
    method: "POST",
    headers: { authorization: `Bearer ${account.api_key}`, "content-type": "application/json" },
    body: JSON.stringify({ url, event_types: eventTypes, description }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; secret: string; url: string };
}

/** Publishes events through the ingest API; returns their ids. */
export async function publish(account: Account, events: unknown[]) {
  const res = await fetch(`${process.env.E2E_BASE_URL}/api/v1/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${account.api_key}`, "content-type": "application/json" },
    body: JSON.stringify({ events }),
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { ids: string[] }).ids;
}

/**
 * How many of an endpoint's deliveries have a recorded outcome (not pending), through the
 * REST API. A receiver has the request before the attempt is committed, so a page that is not
 * live (the health chart) waits for this, not for the receiver.
 */
export async function recordedDeliveries(account: Account, endpointId: string) {
  const res = await fetch(`${process.env.E2E_BASE_URL}/api/v1/endpoints/${endpointId}/deliveries`, {
    headers: { authorization: `Bearer ${account.api_key}` },
  });
  expect(res.status).toBe(200);
  const page = (await res.json()) as { data: { status: string }[] };
  return page.data.filter((d) => d.status !== "pending").length;
}
