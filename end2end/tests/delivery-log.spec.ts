import { expect, test } from "@playwright/test";
import { createAccount, createEndpoint, gotoHydrated, logIn, publish, recordedDeliveries, startReceiver } from "./helpers";

test("the delivery log shows real deliveries, filters them, and retries and replays with new attempts", async ({ page }) => {
  const account = createAccount("Acme");
  const receiver = await startReceiver();
  const endpoint = await createEndpoint(account, receiver.url, ["task.created", "payment.failed"]);
  const [taskId, paymentId] = await publish(account, [
    { type: "task.created", data: { object: { id: "tsk_1", title: "Ship it" } } },
    { type: "payment.failed", data: { object: { id: "pay_1", amount: 1200 } } },
  ]);
  await expect.poll(() => receiver.received.length).toBe(2);

  await logIn(page, account.email, account.password);
  await gotoHydrated(page, `/settings/webhooks/${endpoint.id}`);
  const log = page.getByRole("region", { name: "Delivery log" });
  await expect(log.getByRole("row")).toHaveCount(3); // header + 2 deliveries
  await expect(log.getByRole("row").nth(1)).toContainText("payment.failed");
  await expect(log.getByRole("row").nth(1)).toContainText("HTTP 200");

  await log.getByLabel("Event type", { exact: true }).selectOption("task.created");
  await expect(log.getByRole("row")).toHaveCount(2);
  await expect(log.getByRole("row").nth(1)).toContainText("task.created");

  await log.getByRole("button", { name: "Details" }).click();
  const detail = page.getByTestId("delivery-detail");
  await expect(detail).toContainText(`webhook-id ${taskId}`);
  await expect(detail).toContainText("Attempt 1");
  await expect(detail).toContainText('"title": "Ship it"'); // the request body, pretty-printed
  await expect(detail).toContainText('"ok": true'); // the response body

  await detail.getByRole("button", { name: "Replay" }).click();
  await expect.poll(() => receiver.received.length).toBe(3);
  expect(receiver.received[2].headers["webhook-id"]).toBe(taskId);
  await log.getByRole("button", { name: "Refresh" }).click();
  await log.getByRole("button", { name: "Details" }).click();
  await expect(page.getByTestId("delivery-detail")).toContainText("Attempt 2");

  // Search by event id: that event's delivery only.
  await log.getByLabel("Event type", { exact: true }).selectOption("");
  await log.getByLabel("Event id").fill(paymentId);
  await log.getByLabel("Event id").press("Enter");
  await expect(log.getByRole("row")).toHaveCount(2);
  await expect(log.getByRole("row").nth(1)).toContainText("payment.failed");
  await receiver.close();
});

test("a failed delivery can be retried from the log", async ({ page }) => {
  const account = createAccount("Acme");
  const receiver = await startReceiver();
  const endpoint = await createEndpoint(account, receiver.url, ["task.created"]);
  receiver.setStatus(500);
  await publish(account, [{ type: "task.created", data: { object: { id: "tsk_9" } } }]);
  await expect.poll(() => receiver.received.length).toBe(2); // first attempt + the one retry

  await logIn(page, account.email, account.password);
  await gotoHydrated(page, `/settings/webhooks/${endpoint.id}`);
  const log = page.getByRole("region", { name: "Delivery log" });
  await log.getByLabel("Status").selectOption("failed");
  const row = log.getByRole("row").nth(1);
  await expect(row).toContainText("HTTP 500");
  await expect(row).toContainText("failed");

  receiver.setStatus(200);
  await row.getByRole("button", { name: "Details" }).click();
  await page.getByTestId("delivery-detail").getByRole("button", { name: "Retry" }).click();
  await expect.poll(() => receiver.received.length).toBe(3);
  await log.getByLabel("Status").selectOption("delivered");
  await expect(log.getByRole("row").nth(1)).toContainText("HTTP 200");
  await expect(log.getByRole("row").nth(1)).toContainText("delivered");
  await receiver.close();
});

test("a new attempt appears in the open log without a reload", async ({ page }) => {
  const account = createAccount("Acme");
  const receiver = await startReceiver();
  const endpoint = await createEndpoint(account, receiver.url, ["user.joined"]);
  await logIn(page, account.email, account.password);
  await gotoHydrated(page, `/settings/webhooks/${endpoint.id}`);
  const log = page.getByRole("region", { name: "Delivery log" });
  await expect(log.getByText("No deliveries match.")).toBeVisible();
  let reloaded = false;
  page.on("framenavigated", () => (reloaded = true));

  await publish(account, [{ type: "user.joined", data: { object: { id: "usr_7" } } }]);
  await expect(log.getByRole("row").nth(1)).toContainText("user.joined", { timeout: 5_000 });
  await expect(log.getByRole("row").nth(1)).toContainText("HTTP 200");
  expect(reloaded).toBe(false);
  await receiver.close();
});

test("a bulk retry says how many it will resend, then shows progress to completion", async ({ page }) => {
  const account = createAccount("Acme");
  const receiver = await startReceiver();
  const endpoint = await createEndpoint(account, receiver.url, ["task.created"]);
  receiver.setStatus(500);
  await publish(account, [
    { type: "task.created", data: { object: { id: "tsk_1" } } },
    { type: "task.created", data: { object: { id: "tsk_2" } } },
  ]);
  await expect.poll(() => receiver.received.length).toBe(4); // 2 deliveries × (attempt + retry)
  receiver.setStatus(200);

  await logIn(page, account.email, account.password);
  await gotoHydrated(page, `/settings/webhooks/${endpoint.id}`);
  const log = page.getByRole("region", { name: "Delivery log" });
  await log.getByLabel("Status").selectOption("failed");
  await expect(log.getByRole("row")).toHaveCount(3);

  const bulk = page.locator(".bulk-retry");
  await bulk.getByLabel("Of event type").selectOption("task.deleted");
  await bulk.getByRole("button", { name: "Count failed deliveries…" }).click();
  await expect(bulk.getByRole("status")).toHaveText("No failed deliveries in that range.");
  await bulk.getByLabel("Of event type").selectOption("task.created");
  await expect(bulk.getByRole("status")).toHaveCount(0); // a changed filter needs a new count
  await bulk.getByRole("button", { name: "Count failed deliveries…" }).click();
  const confirm = page.getByRole("alertdialog", { name: "Confirm bulk retry" });
  await expect(confirm).toContainText("Resend 2 of the failed deliveries from this range now?");
  await confirm.getByRole("button", { name: "Resend 2" }).click();
  await expect(page.getByTestId("bulk-progress")).toContainText("Bulk retry finished: 2 of 2", { timeout: 15_000 });
  await expect.poll(() => receiver.received.length).toBe(6);
  await log.getByLabel("Status").selectOption("delivered");
  await expect(log.getByRole("row")).toHaveCount(3);
  await receiver.close();
});

test("the health chart and the date filter reflect the endpoint's attempts", async ({ page }) => {
  const account = createAccount("Acme");
  const receiver = await startReceiver();
  const endpoint = await createEndpoint(account, receiver.url, ["task.created"]);
  await publish(account, [
    { type: "task.created", data: { object: { id: "tsk_1" } } },
    { type: "task.created", data: { object: { id: "tsk_2" } } },
  ]);
  await expect.poll(() => receiver.received.length).toBe(2);
  await expect.poll(() => recordedDeliveries(account, endpoint.id)).toBe(2);
  await logIn(page, account.email, account.password);
  await gotoHydrated(page, `/settings/webhooks/${endpoint.id}`);
  await expect(page.getByTestId("chart-summary")).toContainText("100.0 % delivered");
  await expect(page.getByTestId("chart-summary")).toContainText("2 attempts");
  const chart = page.getByRole("img", { name: "Success rate and response time" });
  await expect(chart).toBeVisible();
  // Both value axes and a time axis with hours on it.
  await expect(chart.locator("text.axis.rate")).toHaveText(["100 %", "50 %", "0 %"]);
  await expect(chart.locator("text.axis.ms").first()).toHaveText(/^\d+ ms$/);
  await expect(chart.locator("text.axis.time").first()).toHaveText(/^\d{2}:00$/);
  // The hour with the attempts: its tooltip on hover, and on keyboard focus.
  const busy = chart.locator("rect.hit[aria-label*='2 of 2 delivered']");
  await busy.hover();
  await expect(page.getByTestId("chart-tooltip")).toContainText("2 of 2 delivered (100 %)");
  await chart.locator("rect.hit").first().focus();
  await expect(page.getByTestId("chart-tooltip")).toContainText("no attempts");
  await page.getByRole("button", { name: "7 days" }).click();
  await expect(page.getByTestId("chart-summary")).toContainText("2 attempts");
  await expect(chart.locator("text.axis.time")).toHaveCount(8);

  const log = page.getByRole("region", { name: "Delivery log" });
  await expect(log.getByRole("row")).toHaveCount(3);
  await log.getByLabel("Created from (UTC)").fill("2999-01-01T00:00");
  await expect(log.getByText("No deliveries match.")).toBeVisible();
  await receiver.close();
});

test("a delivery waiting for its next retry says when, and Send now sends it at once", async ({ page }) => {
  const account = createAccount("Acme");
  const receiver = await startReceiver();
  const endpoint = await createEndpoint(account, receiver.url, ["task.created"]);
  receiver.setStatus(503);
  receiver.setRetryAfter(600); // the next retry would be in 10 minutes
  await publish(account, [{ type: "task.created", data: { object: { id: "tsk_1" } } }]);
  await expect.poll(() => receiver.received.length).toBe(1); // the first attempt: 503

  await logIn(page, account.email, account.password);
  await gotoHydrated(page, `/settings/webhooks/${endpoint.id}`);
  const log = page.getByRole("region", { name: "Delivery log" });
  await expect(log.getByRole("row").nth(1)).toContainText("HTTP 503");
  await log.getByRole("button", { name: "Details" }).click();
  const detail = page.getByTestId("delivery-detail");
  await expect(detail.getByTestId("waiting")).toContainText(/Waiting for retry 1 at \d{4}-\d{2}-\d{2} /);

  receiver.setStatus(200);
  receiver.setRetryAfter(undefined);
  await detail.getByRole("button", { name: "Send now" }).click();
  await expect.poll(() => receiver.received.length).toBe(2);
  await expect(log.getByRole("row").nth(1)).toContainText("delivered"); // the live log
  await receiver.close();
});
