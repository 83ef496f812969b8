import { expect, test, type Page } from "@playwright/test";
import {
  type Account,
  createAccount,
  createEndpoint,
  createUser,
  failOnConsoleErrors,
  gotoHydrated,
  logIn,
  publish,
  recordedDeliveries,
  startReceiver,
} from "./helpers";

let account: Account;

test.beforeEach(async ({ page }) => {
  account = createAccount("Acme");
  await logIn(page, account.email, account.password);
  await expect(page).toHaveURL(/\/settings\/webhooks$/);
});

const fieldError = (page: Page, field: string) => page.locator(`#${field}-error`);

test("adding a webhook with grouped event selection", async ({ page }) => {
  const errors = failOnConsoleErrors(page);
  const receiver = await startReceiver();
  await gotoHydrated(page, "/settings/webhooks");
  await page.getByRole("link", { name: "Add webhook" }).first().click();
  await expect(page).toHaveURL(/\/settings\/webhooks\/new$/);
  await page.locator("body[data-hydrated=true]").waitFor();

  await page.getByLabel("Endpoint URL").fill(receiver.url);
  await page.getByLabel("Description").fill("CRM sync");
  const taskGroup = page.getByLabel("All Task events");
  await page.getByLabel("task.completed").check();
  await expect(taskGroup).toHaveJSProperty("indeterminate", true);
  await expect(page.getByText("1 of 19 events selected")).toBeVisible();
  await taskGroup.check();
  await expect(taskGroup).toHaveJSProperty("indeterminate", false);
  await expect(page.getByLabel("task.comment.added")).toBeChecked();
  await expect(page.getByText("6 of 19 events selected")).toBeVisible();
  await page.getByLabel("payment.failed").check();
  await expect(page.getByText("7 of 19 events selected")).toBeVisible();

  await page.getByRole("button", { name: "Create webhook" }).click();
  await expect(page).toHaveURL(/\/settings\/webhooks\/ep_[0-9a-z]+\?created=1$/);
  await expect(page.getByText("Webhook created.")).toBeVisible();
  // SPEC §5: shown once in full when created, masked when the page is opened again.
  await expect(page.getByTestId("secret-value")).toHaveText(/^whsec_[A-Za-z0-9+/=]{40,}$/);
  await gotoHydrated(page, new URL(page.url()).pathname);
  await expect(page.getByTestId("secret-value")).toHaveText(/^whsec_•+$/);

  await gotoHydrated(page, "/settings/webhooks");
  const row = page.getByRole("row").filter({ hasText: receiver.url });
  await expect(row).toContainText("CRM sync");
  await expect(row).toContainText("7 events");
  await expect(row).toContainText("healthy");
  expect(errors).toEqual([]);
  await receiver.close();
});

test("editing a webhook keeps it and shows the change", async ({ page }) => {
  const receiver = await startReceiver();
  await createEndpoint(account, receiver.url, ["task.created"], "Old name");
  await gotoHydrated(page, "/settings/webhooks");
  await page.getByRole("row").filter({ hasText: receiver.url }).getByRole("link", { name: "Edit" }).click();
  await page.locator("body[data-hydrated=true]").waitFor();
  await expect(page.getByRole("heading", { name: "Edit webhook" })).toBeVisible();
  await expect(page.getByLabel("task.created")).toBeChecked();

  await page.getByLabel("Description").fill("New name");
  await page.getByLabel("All Billing events").check();
  await page.getByRole("button", { name: "Save changes" }).click();
  await expect(page.getByText("Changes saved.")).toBeVisible();

  await gotoHydrated(page, "/settings/webhooks");
  const row = page.getByRole("row").filter({ hasText: receiver.url });
  await expect(row).toContainText("New name");
  await expect(row).toContainText("6 events");
  await receiver.close();
});

test("deleting a webhook asks for confirmation naming its URL", async ({ page }) => {
  const receiver = await startReceiver();
  await createEndpoint(account, receiver.url, ["task.created"]);
  await gotoHydrated(page, "/settings/webhooks");
  await page.getByRole("button", { name: "Delete" }).click();
  const dialog = page.getByRole("alertdialog");
  await expect(dialog).toContainText(receiver.url);
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await expect(page.getByRole("row").filter({ hasText: receiver.url })).toHaveCount(1);

  await page.getByRole("button", { name: "Delete" }).click();
  await page.getByRole("button", { name: "Delete webhook" }).click();
  await expect(page.getByRole("heading", { name: "No webhooks yet" })).toBeVisible();
  await receiver.close();
});

test("the enabled toggle takes effect at once and persists", async ({ page }) => {
  const receiver = await startReceiver();
  await createEndpoint(account, receiver.url, ["task.created"]);
  await gotoHydrated(page, "/settings/webhooks");
  const row = page.getByRole("row").filter({ hasText: receiver.url });
  const toggle = page.getByRole("switch", { name: `Enabled: ${receiver.url}` });
  await expect(toggle).toBeChecked();
  await toggle.uncheck();
  await expect(row).toContainText("disabled");
  await page.reload();
  await expect(page.getByRole("switch", { name: `Enabled: ${receiver.url}` })).not.toBeChecked();
  await page.locator("body[data-hydrated=true]").waitFor();
  await page.getByRole("switch", { name: `Enabled: ${receiver.url}` }).check();
  await expect(page.getByRole("row").filter({ hasText: receiver.url })).toContainText("healthy");
  await receiver.close();
});

test("a test send reaches a local HTTPS receiver, shows the outcome inline and is logged", async ({ page }) => {
  const receiver = await startReceiver();
  const endpoint = await createEndpoint(account, receiver.url, ["task.created"]);
  await gotoHydrated(page, "/settings/webhooks");
  await page.getByRole("button", { name: "Test" }).click();
  await page.getByLabel("Sample event").selectOption("payment.failed");
  await page.getByRole("button", { name: "Send test event" }).click();
  const outcome = page.getByTestId("test-outcome");
  await expect(outcome).toContainText("Delivered");
  await expect(outcome).toContainText(/HTTP 200 · \d+ ms/);
  await expect(outcome).toContainText('"ok":true');

  const sent = receiver.received.at(-1)!;
  expect(JSON.parse(sent.body).type).toBe("payment.failed");
  expect(sent.headers["webhook-signature"]).toMatch(/^v1,/);
  expect(sent.headers["x-webhook-signature"]).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
  // Logged: the endpoint's delivery log has it, marked as a test.
  await expect(outcome).toContainText(`Logged in the delivery log as a test of event ${JSON.parse(sent.body).id}`);
  await gotoHydrated(page, `/settings/webhooks/${endpoint.id}`);
  const row = page.getByRole("region", { name: "Delivery log" }).getByRole("row").nth(1);
  await expect(row).toContainText("payment.failed");
  await expect(row.locator(".badge.test")).toHaveText("test");
  await receiver.close();
});

test("regenerating the secret asks first, then shows a new secret", async ({ page }) => {
  const receiver = await startReceiver();
  const endpoint = await createEndpoint(account, receiver.url, ["task.created"]);
  await gotoHydrated(page, `/settings/webhooks/${endpoint.id}`);
  const secret = page.getByTestId("secret-value");
  await expect(secret).toHaveText(/^whsec_•+$/);
  await page.getByRole("button", { name: "Reveal" }).click();
  await expect(secret).toHaveText(endpoint.secret);

  await page.getByRole("button", { name: "Regenerate", exact: true }).click();
  await expect(page.getByRole("alertdialog")).toContainText("24 hours");
  await page.getByRole("button", { name: "Regenerate secret" }).click();
  await expect(page.getByText("New secret generated.")).toBeVisible();
  await expect(secret).toHaveText(/^whsec_[A-Za-z0-9+/=]{40,}$/);
  await expect(secret).not.toHaveText(endpoint.secret);
  await receiver.close();
});

test.describe("validation errors appear beside their field and keep the input", () => {
  async function openForm(page: Page) {
    await gotoHydrated(page, "/settings/webhooks/new");
    await page.getByLabel("Description").fill("Keep me");
  }

  test("an http:// URL", async ({ page }) => {
    await openForm(page);
    await page.getByLabel("Endpoint URL").fill("http://example.com/hook");
    await page.getByLabel("task.created").check();
    await page.getByRole("button", { name: "Create webhook" }).click();
    await expect(fieldError(page, "url")).toContainText("The URL must start with https://");
    await expect(page.getByLabel("Description")).toHaveValue("Keep me");
  });

  test("an unreachable URL", async ({ page }) => {
    await openForm(page);
    await page.getByLabel("Endpoint URL").fill("https://127.0.0.1:1/hook");
    await page.getByLabel("task.created").check();
    await page.getByRole("button", { name: "Create webhook" }).click();
    await expect(fieldError(page, "url")).toContainText("Connection refused");
    await expect(page.getByLabel("Description")).toHaveValue("Keep me");
    await expect(page.getByLabel("task.created")).toBeChecked();
  });

  test("a blocked address", async ({ page }) => {
    await openForm(page);
    await page.getByLabel("Endpoint URL").fill("https://169.254.169.254/latest/meta-data");
    await page.getByLabel("task.created").check();
    await page.getByRole("button", { name: "Create webhook" }).click();
    await expect(fieldError(page, "url")).toContainText(/metadata/i);
    await expect(page.getByLabel("Endpoint URL")).toHaveValue("https://169.254.169.254/latest/meta-data");
  });

  test("no events selected", async ({ page }) => {
    await openForm(page);
    await page.getByLabel("Endpoint URL").fill("https://localhost:9/hook");
    await page.getByRole("button", { name: "Create webhook" }).click();
    await expect(fieldError(page, "event_types")).toHaveText("Select at least one event.");
  });
});

test("at 390 px wide the list, an endpoint's page, the team and the API keys fit the screen", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  const receiver = await startReceiver();
  const endpoint = await createEndpoint(account, `${receiver.url}/webhooks/incoming/orders-and-invoices`, ["task.created"]);
  // A delivery in the log: its table is wider than the screen and must scroll inside its card.
  await publish(account, [{ type: "task.created", data: { object: { id: "tsk_1" } } }]);
  await expect.poll(() => recordedDeliveries(account, endpoint.id)).toBe(1);
  const fits = async () => {
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(width, "no sideways scrolling").toBeLessThanOrEqual(390);
  };
  await gotoHydrated(page, "/settings/webhooks");
  const url = page.locator(`tr[data-endpoint="${endpoint.id}"] a.url`);
  await expect(url).toBeVisible();
  await fits();
  // The URL wraps only where it must: a few lines, not a character column.
  const box = (await url.boundingBox())!;
  expect(box.width).toBeGreaterThan(250);
  expect(box.height).toBeLessThan(80);
  await gotoHydrated(page, `/settings/webhooks/${endpoint.id}`);
  await expect(page.getByRole("heading", { name: "Edit webhook" })).toBeVisible();
  await fits();
  // The team page, with a member row carrying the role select and Remove.
  createUser(account, "member");
  await gotoHydrated(page, "/settings/team");
  const member = page.locator("table.team-members tbody tr").nth(1);
  await expect(member.getByRole("button", { name: "Save role" })).toBeVisible();
  await expect(member.getByRole("button", { name: /^Remove / })).toBeVisible();
  await fits();
  await gotoHydrated(page, "/settings/api-keys");
  await expect(page.getByRole("button", { name: "Create API key" })).toBeVisible();
  await fits();
  await receiver.close();
});
