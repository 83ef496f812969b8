import { expect, test } from "@playwright/test";
import { createAccount, createEndpoint, createUser, failOnConsoleErrors, gotoHydrated, logIn, startReceiver } from "./helpers";

test("an owner creates a key (shown once), sees it listed and revokes it", async ({ page }) => {
  const errors = failOnConsoleErrors(page);
  const account = createAccount("Acme");
  await logIn(page, account.email, account.password);
  await gotoHydrated(page, "/settings/api-keys");
  await expect(page.getByRole("heading", { name: "API keys", level: 1 })).toBeVisible();
  const rows = page.locator("table.api-keys tbody tr");
  await expect(rows).toHaveCount(1); // the key the CLI created with the account

  await page.getByRole("button", { name: "Create API key" }).click();
  const shown = page.getByTestId("new-key");
  await expect(shown).toContainText("shown only this once");
  const key = (await shown.locator("code").textContent())!.trim();
  expect(key).toMatch(/^whk_[A-Za-z0-9_-]{43}$/);
  await expect(rows).toHaveCount(2);
  const row = rows.filter({ hasText: key.slice(0, 12) });
  await expect(row).toContainText("Never");
  await expect(row).toContainText("Active");

  // The new key works against the REST API, and its first use is shown.
  const list = () =>
    fetch(`${process.env.E2E_BASE_URL}/api/v1/endpoints`, { headers: { authorization: `Bearer ${key}` } });
  expect((await list()).status).toBe(200);
  await expect
    .poll(async () => {
      await gotoHydrated(page, "/settings/api-keys");
      return rows.filter({ hasText: key.slice(0, 12) }).locator('[data-label="Last used"]').textContent();
    })
    .not.toBe("Never");

  await row.getByRole("button", { name: "Revoke" }).click();
  await row.getByRole("button", { name: "Revoke key" }).click();
  await expect(rows.filter({ hasText: key.slice(0, 12) })).toContainText("Revoked");
  // Revoked means refused at once (every process drops it from its key cache).
  expect((await list()).status).toBe(401);
  expect(errors).toEqual([]);
});

test("a member sees no secret and no API keys", async ({ page }) => {
  const account = createAccount("Acme");
  const receiver = await startReceiver();
  const endpoint = await createEndpoint(account, receiver.url, ["task.created"]);
  const member = createUser(account, "member");
  await logIn(page, member.email, member.password);

  await gotoHydrated(page, "/settings/api-keys");
  await expect(page.getByText("Only owners and admins of the account can see and manage API keys.")).toBeVisible();
  await expect(page.getByRole("button", { name: "Create API key" })).toHaveCount(0);

  await gotoHydrated(page, `/settings/webhooks/${endpoint.id}`);
  const panel = page.getByRole("region", { name: "Signing secret" });
  await expect(panel).toContainText("Only owners and admins of the account can see it.");
  await expect(panel.getByRole("button", { name: "Reveal" })).toHaveCount(0);
  await expect(page.getByTestId("secret-value")).toHaveCount(0);
  await receiver.close();
});
