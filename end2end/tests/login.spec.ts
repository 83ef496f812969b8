import { expect, test } from "@playwright/test";
import { createAccount, failOnConsoleErrors, logIn } from "./helpers";

test("a user created through the CLI logs in and sees the empty webhooks page", async ({ page }) => {
  const errors = failOnConsoleErrors(page);
  const account = createAccount("Acme");

  await page.goto("/settings/webhooks");
  await expect(page).toHaveURL(/\/login\?next=%2Fsettings%2Fwebhooks/);

  await page.getByLabel("Email").fill(account.email);
  await page.getByLabel("Password").fill(account.password);
  await page.getByRole("button", { name: "Log in" }).click();

  await expect(page).toHaveURL(/\/settings\/webhooks$/);
  await expect(page.getByRole("heading", { name: "Webhooks", level: 1 })).toBeVisible();
  await expect(page.getByRole("heading", { name: "No webhooks yet" })).toBeVisible();
  await expect(page.getByRole("link", { name: "Add webhook" }).first()).toBeVisible();
  await expect(page.getByText(account.email)).toBeVisible();
  expect(errors).toEqual([]);
});

test("a wrong password is refused with a visible message", async ({ page }) => {
  const account = createAccount("Acme");
  await logIn(page, account.email, "not my password");

  await expect(page).toHaveURL(/\/login\?error=invalid/);
  await expect(page.getByRole("alert")).toHaveText("Incorrect email or password.");
  await expect(page.getByLabel("Email")).toHaveValue(account.email);
  await expect(page.getByRole("heading", { name: "No webhooks yet" })).toHaveCount(0);
});

test("logging out returns to the login page and the dashboard is closed again", async ({ page }) => {
  const account = createAccount("Acme");
  await logIn(page, account.email, account.password);
  await expect(page.getByRole("heading", { name: "No webhooks yet" })).toBeVisible();

  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page.getByRole("status")).toHaveText("You have been logged out.");
  await page.goto("/settings/webhooks");
  await expect(page).toHaveURL(/\/login/);
});
