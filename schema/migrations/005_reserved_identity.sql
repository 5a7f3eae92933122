-- Placeholder for migration 5, which is reserved for the identity rewrite
-- (tern needs the numbers without gaps). It changes nothing. When the
-- identity branch's 005_*.sql is merged, delete this file.
SELECT 1;
