-- Presence privacy (fabric/presence; docs/fabric.md, "Presence"): whether a
-- user's friends may see when the user was last online. Online/offline itself
-- is always visible to friends and to nobody else; this only governs the
-- last_seen time. On by default: only friends (at most 20, chosen by the user)
-- ever see it. store/presence.go owns the queries. A constant default makes
-- this a catalog-only change, no table rewrite.
ALTER TABLE users ADD COLUMN share_last_seen boolean NOT NULL DEFAULT true;
