/* dynbgw--1.2--1.3.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dynbgw UPDATE TO '1.3'" to load this file. \quit

-- As in the update to 1.2: the functions made anew here keep what a DBA
-- granted or revoked on their predecessors (kept here, carried over at
-- the end), and the view dynbgw_workers is replaced in place.
CREATE TEMPORARY TABLE dynbgw_kept_acl (
    name text[],
    new_args text[],
    acl pg_catalog.aclitem[],
    owner pg_catalog.oid);

INSERT INTO pg_temp.dynbgw_kept_acl
SELECT o.name, o.new_args, p.proacl, p.proowner
FROM (VALUES
        ('{dynbgw_launch}'::pg_catalog.text[],
         '{integer,text,interval,name,name,bigint,interval,text,interval,interval,text,text,boolean,integer,interval}'::pg_catalog.text[],
         '{integer,text,interval,name,name,bigint,interval,text,interval,interval,text,text,boolean,integer,interval,boolean}'::pg_catalog.text[]),
        ('{dynbgw_workers}', '{}', '{}')) AS o(name, old_args, new_args),
     LATERAL pg_catalog.pg_get_object_address('function', o.name, o.old_args) a
     JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) a.objid;

-- dynbgw_launch gains keep_result.
DROP FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean, integer, interval);

CREATE FUNCTION dynbgw_launch(n integer,
                              command text DEFAULT NULL,
                              naptime interval DEFAULT NULL,
                              database name DEFAULT NULL,
                              role name DEFAULT NULL,
                              runs bigint DEFAULT NULL,
                              restart interval DEFAULT NULL,
                              if_running text DEFAULT 'error',
                              wait_for_slot interval DEFAULT '0',
                              run_timeout interval DEFAULT NULL,
                              schedule text DEFAULT NULL,
                              timezone text DEFAULT NULL,
                              persist boolean DEFAULT false,
                              retry integer DEFAULT 0,
                              retry_delay interval DEFAULT '1 second',
                              keep_result boolean DEFAULT false)
RETURNS integer
AS 'MODULE_PATHNAME', 'dynbgw_launch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean, integer, interval, boolean) IS
'start worker n, running command every naptime or on a schedule, and again after a failure while retries are left, keeping the rows of each successful run if asked; returns its PID once it is connected';

REVOKE ALL ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean, integer, interval, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean, integer, interval, boolean) TO dynbgw_user;

-- dynbgw_workers gains keep_result.
ALTER FUNCTION dynbgw_workers() RENAME TO dynbgw_workers_1_2;

CREATE FUNCTION dynbgw_workers(
    OUT n integer,
    OUT pid integer,
    OUT kind text,
    OUT state text,
    OUT database name,
    OUT role name,
    OUT command text,
    OUT naptime interval,
    OUT runs bigint,
    OUT failures bigint,
    OUT last_error text,
    OUT launched_at timestamptz,
    OUT launched_by_pid integer,
    OUT last_started timestamptz,
    OUT last_finished timestamptz,
    OUT last_duration interval,
    OUT next_run timestamptz,
    OUT max_runs bigint,
    OUT restart interval,
    OUT last_result text,
    OUT schedule text,
    OUT timezone text,
    OUT last_trigger text,
    OUT retry integer,
    OUT retry_delay interval,
    OUT keep_result boolean)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dynbgw_workers'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION dynbgw_workers() IS
'what the view dynbgw_workers shows: every dynbgw worker that exists';

CREATE OR REPLACE VIEW dynbgw_workers AS
    SELECT * FROM dynbgw_workers();

DROP FUNCTION dynbgw_workers_1_2();

-- Results as rows.  Reading and dropping a result checks the privileges
-- of its role, so the functions are everyone's, as dynbgw_wait is.
CREATE FUNCTION dynbgw_result(n integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dynbgw_result'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION dynbgw_result(integer) IS
'the rows that worker n kept, read with a column definition list of the kept types';

CREATE FUNCTION dynbgw_result_json(n integer)
RETURNS SETOF jsonb
AS 'MODULE_PATHNAME', 'dynbgw_result_json'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION dynbgw_result_json(integer) IS
'the rows that worker n kept, each as a jsonb object of its columns';

CREATE FUNCTION dynbgw_drop_result(n integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dynbgw_drop_result'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_drop_result(integer) IS
'drop the result that worker n kept, freeing its memory';

CREATE FUNCTION dynbgw_results(
    OUT n integer,
    OUT launch bigint,
    OUT role name,
    OUT database name,
    OUT kept_at timestamptz,
    OUT rows bigint,
    OUT size bigint,
    OUT columns text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dynbgw_results'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION dynbgw_results() IS
'what the view dynbgw_results shows: the results that workers kept';

CREATE VIEW dynbgw_results AS
    SELECT * FROM dynbgw_results();

COMMENT ON VIEW dynbgw_results IS
'the results that workers launched with keep_result kept, with their sizes in bytes, which together stay within dynbgw.max_total_result_size';

GRANT SELECT ON dynbgw_results TO PUBLIC;

-- Saved definitions carry keep_result.  Rows saved before keep none.
ALTER TABLE dynbgw_definitions
    ADD COLUMN keep_result boolean;

COMMENT ON COLUMN dynbgw_definitions.keep_result IS
'whether the worker keeps the rows of its runs, as given to dynbgw_launch(); NULL: saved before 1.3, no';

CREATE OR REPLACE FUNCTION dynbgw_dump_definitions()
RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format('SELECT dynbgw_launch(%s, %s, naptime => %s, database => %s, role => %s, runs => %s, restart => %s, run_timeout => %s, schedule => %s, timezone => %s, retry => %s, retry_delay => %s, keep_result => %s, if_running => ''skip'', persist => true);',
              d.n, quote_nullable(d.command), quote_nullable(d.naptime),
              quote_nullable((SELECT b.datname FROM pg_database b WHERE b.oid = d.database)),
              quote_nullable((SELECT r.rolname FROM pg_roles r WHERE r.oid = d.role AND d.role <> d.owner)),
              quote_nullable(d.runs), quote_nullable(d.restart), quote_nullable(d.run_timeout),
              quote_nullable(d.schedule), quote_nullable(d.timezone),
              quote_nullable(d.retry), quote_nullable(d.retry_delay),
              quote_nullable(d.keep_result))
FROM @extschema@.dynbgw_definitions d
WHERE d.owner = (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user)
ORDER BY d.n
$$;

-- The DBA's grants and revokes, carried over: what the kept ACL has and
-- the new one lacks is granted, the reverse revoked (first), the owners'
-- own entries left alone: an old owner's is no grant (a superuser who
-- made the extension, since demoted, must not keep EXECUTE by it).  Then the initial privileges are set back to a
-- fresh install's, which GRANT and REVOKE in this script would otherwise
-- change.  This runs as a superuser with the extension's schema in
-- search_path, which its owner may write: every operator is named
-- pg_catalog's, since "CASE x WHEN y", or "=" between types that have no
-- exact operator in pg_catalog, would take one planted there.
DO $$
DECLARE
    o record;
    e record;
BEGIN
    FOR o IN
        SELECT p.oid, k.acl AS kept, k.owner AS old_owner,
               'FUNCTION ' OPERATOR(pg_catalog.||) p.oid::pg_catalog.regprocedure::pg_catalog.text AS object,
               p.proowner AS owner,
               coalesce(p.proacl, pg_catalog.acldefault('f'::pg_catalog."char", p.proowner)) AS fresh
        FROM pg_temp.dynbgw_kept_acl k
        CROSS JOIN LATERAL pg_catalog.pg_get_object_address('function', k.name, k.new_args) a
        JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) a.objid
        WHERE k.acl IS NOT NULL
    LOOP
        FOR e IN
            SELECT f.grantee IS NULL AS granting,
                   coalesce(kk.grantee, f.grantee) AS grantee,
                   coalesce(kk.privilege_type, f.privilege_type) AS privilege,
                   coalesce(kk.is_grantable, false) AS grantable
            FROM (SELECT * FROM pg_catalog.aclexplode(o.kept) x
                  WHERE x.grantee OPERATOR(pg_catalog.<>) o.owner
                    AND x.grantee OPERATOR(pg_catalog.<>) o.old_owner) kk
            FULL JOIN (SELECT * FROM pg_catalog.aclexplode(o.fresh) x
                       WHERE x.grantee OPERATOR(pg_catalog.<>) o.owner) f
                   ON kk.grantee OPERATOR(pg_catalog.=) f.grantee
                  AND kk.privilege_type OPERATOR(pg_catalog.=) f.privilege_type
                  AND kk.is_grantable OPERATOR(pg_catalog.=) f.is_grantable
            WHERE kk.grantee IS NULL OR f.grantee IS NULL
            ORDER BY 1
        LOOP
            EXECUTE pg_catalog.format('%s %s ON %s %s %s%s',
                CASE WHEN e.granting THEN 'GRANT' ELSE 'REVOKE' END, e.privilege, o.object,
                CASE WHEN e.granting THEN 'TO' ELSE 'FROM' END,
                CASE WHEN e.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(e.grantee)) END,
                CASE WHEN e.grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
        UPDATE pg_catalog.pg_init_privs i SET initprivs = o.fresh
        WHERE i.objoid OPERATOR(pg_catalog.=) o.oid
          AND i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
          AND i.objsubid OPERATOR(pg_catalog.=) 0;
    END LOOP;
END
$$;

DROP TABLE pg_temp.dynbgw_kept_acl;
