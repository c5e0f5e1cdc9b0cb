-- The token issuer of a JWT caller (issue 13.5): with subject, auth method
-- and client it names "the same caller" for audit_query's own-rows view (a
-- JWT with sub=root is not the OS user root). '' for every other caller and
-- for rows written before this migration. The hash covers it when set.
ALTER TABLE audit_log ADD COLUMN issuer TEXT NOT NULL DEFAULT '';
