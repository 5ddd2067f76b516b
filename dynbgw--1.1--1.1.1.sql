/* dynbgw--1.1--1.1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dynbgw UPDATE TO '1.1.1'" to load this file. \quit

-- Saved definitions no longer travel in pg_dump's output: a dump must work
-- for every role that could dump the database without dynbgw, and identity
-- must never be copied.  The table was the only configuration table; it
-- leaves the list as pg_extension_config_dump() put it there, leaving its
-- initial privileges, and so the DBA's grants in dumps, as they are.
UPDATE pg_catalog.pg_extension SET extconfig = NULL, extcondition = NULL
WHERE extname OPERATOR(pg_catalog.=) 'dynbgw';

-- Roles are kept by OID, so that a dropped role's definitions are refused
-- and a renamed role keeps its own; the database by OID, NULL for the
-- database the row is in, so that a copy of the database follows its data.
DROP POLICY dynbgw_definitions_own ON dynbgw_definitions;

DO $$
DECLARE
    gone bigint;
BEGIN
    DELETE FROM dynbgw_definitions d
    WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) d.owner)
       OR NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) d.role)
       OR NOT EXISTS (SELECT FROM pg_catalog.pg_database b WHERE b.datname OPERATOR(pg_catalog.=) d.database);
    GET DIAGNOSTICS gone = ROW_COUNT;
    IF gone OPERATOR(pg_catalog.>) 0 THEN
        RAISE WARNING 'deleted % saved dynbgw definitions whose role or database no longer exists', gone;
    END IF;
END
$$;

ALTER TABLE dynbgw_definitions
    ALTER COLUMN owner DROP DEFAULT,
    ALTER COLUMN owner TYPE pg_catalog.regrole
        USING pg_catalog.to_regrole(pg_catalog.quote_ident(owner)),
    ALTER COLUMN role TYPE pg_catalog.regrole
        USING pg_catalog.to_regrole(pg_catalog.quote_ident(role)),
    ALTER COLUMN database DROP NOT NULL;
UPDATE dynbgw_definitions d
SET database = CASE WHEN d.database OPERATOR(pg_catalog.=) pg_catalog.current_database() THEN NULL
                    ELSE (SELECT b.oid::pg_catalog.text FROM pg_catalog.pg_database b
                          WHERE b.datname OPERATOR(pg_catalog.=) d.database) END;
ALTER TABLE dynbgw_definitions
    ALTER COLUMN database TYPE pg_catalog.oid USING database::pg_catalog.text::pg_catalog.oid;

COMMENT ON COLUMN dynbgw_definitions.owner IS
'the role that saved it, and as which dynbgw_restore() launches it';
COMMENT ON COLUMN dynbgw_definitions.database IS
'OID of the database the worker connects to; NULL: this database';

CREATE POLICY dynbgw_definitions_own ON dynbgw_definitions
    USING (owner OPERATOR(pg_catalog.=) pg_catalog.quote_ident(current_user)::pg_catalog.regrole)
    WITH CHECK (owner OPERATOR(pg_catalog.=) pg_catalog.quote_ident(current_user)::pg_catalog.regrole);

-- Row security is a filter that BYPASSRLS roles, pg_write_all_data and
-- superusers pass; this trigger is the identity check, for every writer
-- and with any session_replication_role.
CREATE FUNCTION dynbgw_definitions_guard()
RETURNS trigger
AS 'MODULE_PATHNAME', 'dynbgw_definitions_guard'
LANGUAGE C;

CREATE TRIGGER dynbgw_definitions_guard
    BEFORE INSERT OR UPDATE OR DELETE ON dynbgw_definitions
    FOR EACH ROW EXECUTE FUNCTION dynbgw_definitions_guard();
ALTER TABLE dynbgw_definitions ENABLE ALWAYS TRIGGER dynbgw_definitions_guard;
REVOKE ALL ON FUNCTION dynbgw_definitions_guard() FROM PUBLIC;

COMMENT ON TABLE dynbgw_definitions IS
'dynbgw workers launched with persist => true, which dynbgw_restore() launches again; not in pg_dump''s output (see dynbgw_dump_definitions())';

-- The way to move definitions: launches that re-create the caller's own,
-- to be run by whoever should own them where they should be.
CREATE FUNCTION dynbgw_dump_definitions()
RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format('SELECT dynbgw_launch(%s, %s, naptime => %s, database => %s, role => %s, runs => %s, restart => %s, run_timeout => %s, schedule => %s, timezone => %s, if_running => ''skip'', persist => true);',
              d.n, quote_nullable(d.command), quote_nullable(d.naptime),
              quote_nullable((SELECT b.datname FROM pg_database b WHERE b.oid = d.database)),
              quote_nullable((SELECT r.rolname FROM pg_roles r WHERE r.oid = d.role AND d.role <> d.owner)),
              quote_nullable(d.runs), quote_nullable(d.restart), quote_nullable(d.run_timeout),
              quote_nullable(d.schedule), quote_nullable(d.timezone))
FROM @extschema@.dynbgw_definitions d
WHERE d.owner = (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user)
ORDER BY d.n
$$;

COMMENT ON FUNCTION dynbgw_dump_definitions() IS
'SQL that launches and saves again your own definitions, as whoever runs it';

REVOKE ALL ON FUNCTION dynbgw_dump_definitions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dynbgw_dump_definitions() TO dynbgw_user;
