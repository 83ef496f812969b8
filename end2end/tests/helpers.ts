import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
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
