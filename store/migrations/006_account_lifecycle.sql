-- Account lifecycle (docs/api.md, "Deleting your account"; docs/operations.md,
-- "Account lifecycle"). store/lifecycle.go owns every query on these tables.
-- A suspended user may not log in or refresh; announced_at is set once the
-- running mayflyd has ended the user's live connections. A deletion is
-- requested here (by the user or by `mayflyd admin delete`) and carried out
-- by mayflyd, which erases the user's messages and then deletes the users
-- row: every other row of the user, these included, goes with it (ON DELETE
-- CASCADE).
CREATE TABLE user_suspensions (
    user_id      text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    suspended_at timestamptz NOT NULL DEFAULT now(),
    announced_at timestamptz
);

CREATE TABLE user_deletions (
    user_id      text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    requested_at timestamptz NOT NULL DEFAULT now()
);
