import { expect, test } from "@playwright/test";
import { createAccount, createEndpoint, gotoHydrated, logIn, publish, recordedDeliveries, startReceiver } from "./helpers";

// A zone with a half-hour offset and no daylight saving: the expected text is exact.
test.use({ timezoneId: "Asia/Kolkata" });

test("times show in the viewer's zone, and the log's date filter reads it", async ({ page }) => {
  const account = createAccount("Acme");
  const receiver = await startReceiver();
  const endpoint = await createEndpoint(account, receiver.url, ["task.created"]);
  await publish(account, [{ type: "task.created", data: { object: { id: "tsk_1" } } }]);
  await expect.poll(() => recordedDeliveries(account, endpoint.id)).toBe(1);
  const res = await fetch(`${process.env.E2E_BASE_URL}/api/v1/endpoints/${endpoint.id}/deliveries`, {
    headers: { authorization: `Bearer ${account.api_key}` },
  });
  const [delivery] = ((await res.json()) as { data: { last_attempt_at: string }[] }).data;
  // The attempt's time in UTC+05:30, as the row should show it.
  const local = new Date(Date.parse(delivery.last_attempt_at) + 330 * 60_000).toISOString();
  const expected = `${local.slice(0, 10)} ${local.slice(11, 19)}`;

  await logIn(page, account.email, account.password);
  await gotoHydrated(page, `/settings/webhooks/${endpoint.id}`);
  const log = page.getByRole("region", { name: "Delivery log" });
  await expect(log.getByRole("columnheader", { name: "Time (UTC+05:30)" })).toBeVisible();
  await expect(log.getByRole("row").nth(1)).toContainText(expected);

  // "Created to" one minute before the delivery, in local time, hides it; one after shows it.
  const minute = (offsetMs: number) => new Date(Date.parse(delivery.last_attempt_at) + 330 * 60_000 + offsetMs).toISOString().slice(0, 16);
  await log.getByLabel("Created to (UTC+05:30)").fill(minute(-120_000));
  await expect(log.getByText("No deliveries match.")).toBeVisible();
  await log.getByLabel("Created to (UTC+05:30)").fill(minute(120_000));
  await expect(log.getByRole("row")).toHaveCount(2);
  await receiver.close();
});
