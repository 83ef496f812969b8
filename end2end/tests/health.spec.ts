import { expect, test } from "@playwright/test";
import { createAccount, createEndpoint, gotoHydrated, logIn, publish, startReceiver } from "./helpers";

/** An endpoint disabled the way SPEC §6 does it: five failures turn it failing, then a delivery
 * fails every try while it stays failing, ten failures in a row in all (one retry here:
 * start-server.sh's schedule). */
async function disabledEndpoint() {
  const account = createAccount("Acme");
  const receiver = await startReceiver();
  const endpoint = await createEndpoint(account, receiver.url, ["task.created"]);
  receiver.setStatus(500);
  const statusOf = async () => {
    const res = await fetch(`${process.env.E2E_BASE_URL}/api/v1/endpoints/${endpoint.id}`, {
      headers: { authorization: `Bearer ${account.api_key}` },
    });
    return ((await res.json()) as { status: string }).status;
  };
  const task = (n: number) => ({ type: "task.created", data: { object: { id: `tsk_${n}` } } });
  await publish(account, [1, 2, 3, 4].map(task));
  await expect.poll(statusOf, { timeout: 20_000 }).toBe("failing");
  // Four first tries and four retries make eight failures, the spell beginning at the fifth.
  // The fifth event fails both its tries inside the spell: the tenth failure in a row, the
  // disable (health.rs's DISABLE_AFTER). The later ones wait behind the breaker and are still
  // pending when the endpoint is disabled (the seventh too, should the sixth's tries come first).
  await publish(account, [task(5), task(6), task(7)]);
  await expect.poll(statusOf, { timeout: 20_000 }).toBe("disabled");
  return { account, receiver, endpoint };
}

test("a failing endpoint says why, since when, and when the held deliveries go next", async ({ page }) => {
  const account = createAccount("Acme");
  const receiver = await startReceiver();
  const endpoint = await createEndpoint(account, receiver.url, ["task.created"]);
  receiver.setStatus(503);
  receiver.setRetryAfter(600); // the retries wait 10 minutes: the endpoint stays failing, not disabled
  await publish(
    account,
    [1, 2, 3, 4, 5].map((n) => ({ type: "task.created", data: { object: { id: `tsk_${n}` } } })),
  );
  await expect
    .poll(async () => {
      const res = await fetch(`${process.env.E2E_BASE_URL}/api/v1/endpoints/${endpoint.id}`, {
        headers: { authorization: `Bearer ${account.api_key}` },
      });
      return ((await res.json()) as { status: string }).status;
    }, { timeout: 20_000 })
    .toBe("failing");
  await logIn(page, account.email, account.password);

  await gotoHydrated(page, "/settings/webhooks");
  const row = page.locator(`tr[data-endpoint="${endpoint.id}"]`);
  await expect(row).toContainText("Failing since");
  await expect(row).toContainText("Last error: HTTP 503.");

  await gotoHydrated(page, `/settings/webhooks/${endpoint.id}`);
  const notice = page.getByTestId("health-notice");
  await expect(notice).toContainText(/Failing since \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC: 5 failed attempts in a row\./);
  await expect(notice).toContainText("Last error: HTTP 503.");
  await expect(notice).toContainText(/Deliveries are held until the next attempt at \d{2}:\d{2}:\d{2}/);
  // Failing is a warning, not a stop: there is nothing to re-enable.
  await expect(notice.getByRole("button", { name: "Re-enable" })).toHaveCount(0);
  await receiver.close();
});

test("a disabled endpoint says why and since when, and one click re-enables it", async ({ page }) => {
  const { account, receiver, endpoint } = await disabledEndpoint();
  await logIn(page, account.email, account.password);

  await gotoHydrated(page, "/settings/webhooks");
  const row = page.locator(`tr[data-endpoint="${endpoint.id}"]`);
  await expect(row).toContainText("Disabled since");
  await expect(row).toContainText("Last error: HTTP 500.");

  await gotoHydrated(page, `/settings/webhooks/${endpoint.id}`);
  const notice = page.getByTestId("health-notice");
  await expect(notice).toContainText(/Disabled since \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC\./);
  await expect(notice).toContainText("Last error: HTTP 500.");
  // The deliveries still pending when it was disabled say what holds them.
  const log = page.getByRole("region", { name: "Delivery log" });
  await log.getByLabel("Status").selectOption("pending");
  await expect(log.getByRole("row").nth(1)).toContainText("Held: the endpoint is disabled.");

  // Published while disabled: skipped for this endpoint, until it is recovered below.
  await publish(account, [{ type: "task.created", data: { object: { id: "tsk_missed" } } }]);

  receiver.setStatus(200);
  await page.getByTestId("health-notice").getByRole("button", { name: "Re-enable" }).click();
  await expect(page.getByTestId("health-notice")).toHaveCount(0);
  // Re-enabled after an automatic disable: recovery from that moment is offered.
  const offer = page.locator(".notice[data-testid=recover]");
  await expect(offer).toContainText("Events published while the endpoint was disabled");
  await offer.getByRole("button", { name: "Recover missed events" }).click();
  await expect(offer.getByTestId("bulk-progress")).toContainText("Recovery finished: 1 of 1 missed events queued");
  await expect
    .poll(() => receiver.received.some((r) => r.body.includes('"tsk_missed"')), { timeout: 15_000 })
    .toBe(true);
  await expect(page.locator(".page-header .badge")).toHaveText("healthy");
  await expect(page.getByRole("switch", { name: "Active" })).toBeChecked();
  // Re-enabled, the held deliveries are sent: none is left pending.
  const reloaded = page.getByRole("region", { name: "Delivery log" });
  await reloaded.getByLabel("Status").selectOption("pending");
  await expect(reloaded.getByText("No deliveries match.")).toBeVisible();
  await receiver.close();
});
