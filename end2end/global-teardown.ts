import { execFileSync } from "node:child_process";

// Drops the database the e2e server used; FORCE ends the server's connections.
export default function globalTeardown() {
  const admin = process.env.TEST_DATABASE_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  execFileSync("psql", [admin, "-qc", `DROP DATABASE IF EXISTS "${process.env.E2E_DB}" WITH (FORCE)`]);
}
