import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "@playwright/test";
import { createAccount, failOnConsoleErrors, gotoHydrated, logIn } from "./helpers";

// The server under test has no SMTP server: emails are written to its mail folder
// (WEBHOOKS_MAIL_DIR, relative to start-server.sh's directory, this one).
const MAIL_DIR = process.env.WEBHOOKS_MAIL_DIR ?? ".data/mail";

/** The invitation link mailed to `email`, once its .eml file is there. */
async function invitationLink(email: string): Promise<string> {
  const find = () => {
    let names: string[] = [];
    try {
      names = readdirSync(MAIL_DIR).filter((n) => n.endsWith(".eml"));
    } catch {
      return ""; // no email written yet
    }
    for (const name of names) {
      const mail = readFileSync(join(MAIL_DIR, name), "utf8");
      const link = mail.match(/https?:\/\/\S+\/invite\/\S+/);
      if (mail.includes(`To: ${email}\n`) && link) return link[0];
    }
    return "";
  };
  await expect.poll(find, { message: `an invitation email to ${email}` }).not.toBe("");
  return find();
}

test("an owner invites someone who accepts, then changes their role and removes them", async ({ page, browser }) => {
  const errors = failOnConsoleErrors(page);
  const account = createAccount("Acme");
  const invitee = `invitee-${randomUUID().slice(0, 8)}@acme.test`;
  await logIn(page, account.email, account.password);
  await gotoHydrated(page, "/settings/team");
  await expect(page.getByRole("heading", { name: "Team", level: 1 })).toBeVisible();
  await expect(page.getByRole("link", { name: "Team" })).toBeVisible();
  const members = page.locator("table.team-members tbody tr");
  await expect(members).toHaveCount(1);
  await expect(members.first()).toContainText(account.email);
  await expect(members.first()).toContainText("You");

  await page.getByLabel("Email").fill(invitee);
  await page.getByLabel("Role", { exact: true }).selectOption("member");
  await page.getByRole("button", { name: "Send invitation" }).click();
  await expect(page.getByRole("status").filter({ hasText: `Invitation sent to ${invitee}.` })).toBeVisible();
  await expect(page.locator("table.team-invitations")).toContainText(invitee);

  // The invitee, in a browser of their own, follows the emailed link.
  const link = await invitationLink(invitee);
  const theirs = await (await browser.newContext()).newPage();
  await theirs.goto(link);
  await expect(theirs.getByRole("heading", { name: "Join Acme" })).toBeVisible();
  await expect(theirs.getByLabel("Email")).toHaveValue(invitee);
  await expect(theirs.locator(".invite-role")).toHaveText("Member");
  await theirs.getByLabel("Choose a password").fill("correct horse battery");
  await theirs.getByRole("button", { name: "Accept invitation" }).click();
  await expect(theirs).toHaveURL(/\/settings\/webhooks$/);
  await expect(theirs.getByRole("heading", { name: "Webhooks", level: 1 })).toBeVisible();
  await gotoHydrated(theirs, "/settings/team");
  await expect(theirs.getByText("Only owners and admins of the account can invite")).toBeVisible();
  await expect(theirs.getByRole("button", { name: "Send invitation" })).toHaveCount(0);

  // The owner sees them as a member and makes them an admin.
  await gotoHydrated(page, "/settings/team");
  const row = members.filter({ hasText: invitee });
  await expect(row).toHaveCount(1);
  await expect(page.locator("table.team-invitations")).toHaveCount(0);
  await page.getByLabel(`Role of ${invitee}`).selectOption("admin");
  await row.getByRole("button", { name: "Save role" }).click();
  await expect(row.getByRole("button", { name: "Save role" })).toBeDisabled();
  await gotoHydrated(theirs, "/settings/team");
  await expect(theirs.getByRole("button", { name: "Send invitation" })).toBeVisible();

  // Removing them ends their session at once.
  await row.getByRole("button", { name: `Remove ${invitee}` }).click();
  await row.getByRole("button", { name: "Remove member" }).click();
  await expect(members.filter({ hasText: invitee })).toHaveCount(0);
  await theirs.goto("/settings/team");
  await expect(theirs).toHaveURL(/\/login/);
  await theirs.context().close();
  expect(errors).toEqual([]);
});

test("an unknown invitation link says it is not valid", async ({ page }) => {
  await page.goto("/invite/not-a-real-token");
  await expect(page.getByRole("alert")).toContainText("This invitation link is not valid.");
  await expect(page.getByRole("button", { name: "Accept invitation" })).toHaveCount(0);
});
