/* dynbgw--1.1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dynbgw UPDATE TO '1.2'" to load this file. \quit

-- The functions made anew here keep what a DBA granted or revoked on
-- their predecessors.  Each one's ACL is kept in this table, under the
-- object address its successor will have, and carried over at the end;
-- the successors' initial privileges stay those of a fresh install, so
-- that pg_dump still writes out the DBA's own grants.  The views
-- dynbgw_workers and dynbgw_runs are replaced in place, and so keep their
-- privileges and the views users made on them.
CREATE TEMPORARY TABLE dynbgw_kept_acl (
    name text[],
    new_args text[],
    acl pg_catalog.aclitem[],
    owner pg_catalog.oid);

INSERT INTO pg_temp.dynbgw_kept_acl
SELECT o.name, o.new_args, p.proacl, p.proowner
FROM (VALUES
        ('{dynbgw_launch}'::pg_catalog.text[],
         '{integer,text,interval,name,name,bigint,interval,text,interval,interval,text,text,boolean}'::pg_catalog.text[],
         '{integer,text,interval,name,name,bigint,interval,text,interval,interval,text,text,boolean,integer,interval}'::pg_catalog.text[]),
        ('{dynbgw_workers}', '{}', '{}'),
        ('{dynbgw_runs}', '{}', '{}')) AS o(name, old_args, new_args),
     LATERAL pg_catalog.pg_get_object_address('function', o.name, o.old_args) a
     JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) a.objid;

-- dynbgw_launch gains retry and retry_delay.
DROP FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean);

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
                              retry_delay interval DEFAULT '1 second')
RETURNS integer
AS 'MODULE_PATHNAME', 'dynbgw_launch'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean, integer, interval) IS
'start worker n, running command every naptime or on a schedule, and again after a failure while retries are left; returns its PID once it is connected';

REVOKE ALL ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean, integer, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dynbgw_launch(integer, text, interval, name, name, bigint, interval, text, interval, interval, text, text, boolean, integer, interval) TO dynbgw_user;

-- dynbgw_workers gains last_trigger, retry and retry_delay.  The old
-- function goes under another name while the new one takes its place in
-- the view, which is replaced rather than dropped, so that views made on
-- it stay.
ALTER FUNCTION dynbgw_workers() RENAME TO dynbgw_workers_1_1;

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
    OUT retry_delay interval)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dynbgw_workers'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION dynbgw_workers() IS
'what the view dynbgw_workers shows: every dynbgw worker that exists';

CREATE OR REPLACE VIEW dynbgw_workers AS
    SELECT * FROM dynbgw_workers();

DROP FUNCTION dynbgw_workers_1_1();

-- dynbgw_runs gains trigger and attempt: one row per attempt.  Replaced
-- in the same way.
ALTER FUNCTION dynbgw_runs() RENAME TO dynbgw_runs_1_1;

CREATE FUNCTION dynbgw_runs(
    OUT n integer,
    OUT launch bigint,
    OUT pid integer,
    OUT role name,
    OUT database name,
    OUT started timestamptz,
    OUT finished timestamptz,
    OUT duration interval,
    OUT status text,
    OUT sqlstate text,
    OUT message text,
    OUT result text,
    OUT trigger text,
    OUT attempt integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dynbgw_runs'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION dynbgw_runs() IS
'what the view dynbgw_runs shows: the last attempts of runs of all workers';

CREATE OR REPLACE VIEW dynbgw_runs AS
    SELECT * FROM dynbgw_runs();

DROP FUNCTION dynbgw_runs_1_1();

COMMENT ON VIEW dynbgw_runs IS
'the last dynbgw.history_size attempts of runs of all workers, oldest first';

-- Run now: the next run of a worker starts at commit.
CREATE FUNCTION dynbgw_wake(n integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dynbgw_wake'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_wake(integer) IS
'start the next run of worker n now, or at commit inside a transaction; its schedule is unchanged';

REVOKE ALL ON FUNCTION dynbgw_wake(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dynbgw_wake(integer) TO dynbgw_user;

-- Saved definitions carry the retries.  Rows saved before have none.
ALTER TABLE dynbgw_definitions
    ADD COLUMN retry integer,
    ADD COLUMN retry_delay interval;

COMMENT ON COLUMN dynbgw_definitions.retry IS
'how many times a failed run is run again, as given to dynbgw_launch(); NULL: saved before 1.2, none';
COMMENT ON COLUMN dynbgw_definitions.retry_delay IS
'how long before the first retry, twice as long before each next one, as given to dynbgw_launch()';

-- Objects of earlier versions that had no comment get one here, so that
-- databases updated from any of them have the same as a fresh install.
COMMENT ON TYPE dynbgw_outcome IS
'how a dynbgw worker ended, as dynbgw_wait() says';

COMMENT ON COLUMN dynbgw_definitions.n IS
'the worker number';
COMMENT ON COLUMN dynbgw_definitions.command IS
'the SQL the worker runs, as given to dynbgw_launch()';
COMMENT ON COLUMN dynbgw_definitions.naptime IS
'the time between runs, as given to dynbgw_launch()';
COMMENT ON COLUMN dynbgw_definitions.schedule IS
'the cron schedule, as given to dynbgw_launch()';
COMMENT ON COLUMN dynbgw_definitions.timezone IS
'the time zone the schedule is read in, as given to dynbgw_launch()';
COMMENT ON COLUMN dynbgw_definitions.role IS
'the role the worker runs as';
COMMENT ON COLUMN dynbgw_definitions.runs IS
'how many runs the worker makes before it exits, as given to dynbgw_launch()';
COMMENT ON COLUMN dynbgw_definitions.restart IS
'how long after an abnormal end the worker is started again, as given to dynbgw_launch()';
COMMENT ON COLUMN dynbgw_definitions.run_timeout IS
'how long a run may take before it is cancelled, as given to dynbgw_launch()';
COMMENT ON COLUMN dynbgw_definitions.saved_at IS
'when it was last saved';

COMMENT ON POLICY dynbgw_definitions_own ON dynbgw_definitions IS
'each role sees and changes its own definitions only';
COMMENT ON FUNCTION dynbgw_definitions_guard() IS
'the trigger function of dynbgw_definitions: a row is written by its owner or a superuser only';
COMMENT ON TRIGGER dynbgw_definitions_guard ON dynbgw_definitions IS
'a row is written by its owner or a superuser only, whoever else bypasses row security';

CREATE OR REPLACE FUNCTION dynbgw_dump_definitions()
RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format('SELECT dynbgw_launch(%s, %s, naptime => %s, database => %s, role => %s, runs => %s, restart => %s, run_timeout => %s, schedule => %s, timezone => %s, retry => %s, retry_delay => %s, if_running => ''skip'', persist => true);',
              d.n, quote_nullable(d.command), quote_nullable(d.naptime),
              quote_nullable((SELECT b.datname FROM pg_database b WHERE b.oid = d.database)),
              quote_nullable((SELECT r.rolname FROM pg_roles r WHERE r.oid = d.role AND d.role <> d.owner)),
              quote_nullable(d.runs), quote_nullable(d.restart), quote_nullable(d.run_timeout),
              quote_nullable(d.schedule), quote_nullable(d.timezone),
              quote_nullable(d.retry), quote_nullable(d.retry_delay))
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
