/* dynbgw--1.3--1.4.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dynbgw UPDATE TO '1.4'" to load this file. \quit

-- As in the update to 1.3: the functions made anew here keep what a DBA
-- granted or revoked on their predecessors (kept here, carried over at
-- the end), and the views are replaced in place.
CREATE TEMPORARY TABLE dynbgw_kept_acl (
    name text[],
    new_args text[],
    acl pg_catalog.aclitem[],
    owner pg_catalog.oid);

INSERT INTO pg_temp.dynbgw_kept_acl
SELECT o.name, o.new_args, p.proacl, p.proowner
FROM (VALUES
        ('{dynbgw_workers}'::pg_catalog.text[], '{}'::pg_catalog.text[], '{}'::pg_catalog.text[]),
        ('{dynbgw_results}', '{}', '{}'),
        ('{dynbgw_restore}', '{}', '{}')) AS o(name, old_args, new_args),
     LATERAL pg_catalog.pg_get_object_address('function', o.name, o.old_args) a
     JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) a.objid;

-- dynbgw_workers gains pool.
ALTER FUNCTION dynbgw_workers() RENAME TO dynbgw_workers_1_3;

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
    OUT keep_result boolean,
    OUT pool text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dynbgw_workers'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION dynbgw_workers() IS
'what the view dynbgw_workers shows: every dynbgw worker that exists';

CREATE OR REPLACE VIEW dynbgw_workers AS
    SELECT * FROM dynbgw_workers();

DROP FUNCTION dynbgw_workers_1_3();

-- dynbgw_results gains task.
ALTER FUNCTION dynbgw_results() RENAME TO dynbgw_results_1_3;

CREATE FUNCTION dynbgw_results(
    OUT n integer,
    OUT launch bigint,
    OUT role name,
    OUT database name,
    OUT kept_at timestamptz,
    OUT rows bigint,
    OUT size bigint,
    OUT columns text,
    OUT task bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dynbgw_results'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION dynbgw_results() IS
'what the view dynbgw_results shows: the results that workers and tasks kept';

CREATE OR REPLACE VIEW dynbgw_results AS
    SELECT * FROM dynbgw_results();

DROP FUNCTION dynbgw_results_1_3();

-- Pools.  Making one launches workers, so it is for dynbgw_user, as
-- dynbgw_launch is; dropping one checks who may, as dynbgw_stop does.
CREATE FUNCTION dynbgw_pool_create(name text,
                                   size integer,
                                   database name DEFAULT NULL,
                                   role name DEFAULT NULL,
                                   queue_size integer DEFAULT 1000,
                                   persist boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'dynbgw_pool_create'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_pool_create(text, integer, name, name, integer, boolean) IS
'start a pool of size workers in database as role, running the tasks submitted to it, of which queue_size may wait; saved for dynbgw_restore() if persist';

REVOKE ALL ON FUNCTION dynbgw_pool_create(text, integer, name, name, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dynbgw_pool_create(text, integer, name, name, integer, boolean) TO dynbgw_user;

CREATE FUNCTION dynbgw_pool_drop(name text,
                                 timeout interval DEFAULT '10 seconds',
                                 forget boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dynbgw_pool_drop'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_pool_drop(text, interval, boolean) IS
'stop the workers of a pool, waiting at most timeout; its waiting tasks end as stopped; its saved definition is deleted if forget';

REVOKE ALL ON FUNCTION dynbgw_pool_drop(text, interval, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dynbgw_pool_drop(text, interval, boolean) TO dynbgw_user;

-- Saved pools, kept as saved workers are: each role writes its own rows
-- (the policy filters, the guard checks every writer), roles and the
-- database by OID, and not in pg_dump's output (dynbgw_dump_definitions()).
CREATE TABLE dynbgw_pool_definitions (
    name text PRIMARY KEY,
    owner pg_catalog.regrole NOT NULL,
    size integer NOT NULL,
    database pg_catalog.oid,
    role pg_catalog.regrole NOT NULL,
    queue_size integer NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT pg_catalog.now());

COMMENT ON TABLE dynbgw_pool_definitions IS
'dynbgw pools made with persist => true, which dynbgw_restore() makes again; not in pg_dump''s output (see dynbgw_dump_definitions())';
COMMENT ON COLUMN dynbgw_pool_definitions.name IS
'the pool''s name';
COMMENT ON COLUMN dynbgw_pool_definitions.owner IS
'the role that saved it, and as which dynbgw_restore() makes it';
COMMENT ON COLUMN dynbgw_pool_definitions.size IS
'how many workers, as given to dynbgw_pool_create()';
COMMENT ON COLUMN dynbgw_pool_definitions.database IS
'OID of the database its workers connect to; NULL: this database';
COMMENT ON COLUMN dynbgw_pool_definitions.role IS
'the role its tasks run as';
COMMENT ON COLUMN dynbgw_pool_definitions.queue_size IS
'how many tasks may wait, as given to dynbgw_pool_create()';
COMMENT ON COLUMN dynbgw_pool_definitions.saved_at IS
'when it was last saved';

ALTER TABLE dynbgw_pool_definitions ENABLE ROW LEVEL SECURITY;
CREATE POLICY dynbgw_pool_definitions_own ON dynbgw_pool_definitions
    USING (owner OPERATOR(pg_catalog.=) pg_catalog.quote_ident(current_user)::pg_catalog.regrole)
    WITH CHECK (owner OPERATOR(pg_catalog.=) pg_catalog.quote_ident(current_user)::pg_catalog.regrole);
COMMENT ON POLICY dynbgw_pool_definitions_own ON dynbgw_pool_definitions IS
'each role sees and changes its own saved pools only';

CREATE TRIGGER dynbgw_pool_definitions_guard
    BEFORE INSERT OR UPDATE OR DELETE ON dynbgw_pool_definitions
    FOR EACH ROW EXECUTE FUNCTION dynbgw_definitions_guard();
ALTER TABLE dynbgw_pool_definitions ENABLE ALWAYS TRIGGER dynbgw_pool_definitions_guard;
COMMENT ON TRIGGER dynbgw_pool_definitions_guard ON dynbgw_pool_definitions IS
'a row is written by its owner or a superuser only, whoever else bypasses row security';

GRANT SELECT, INSERT, UPDATE, DELETE ON dynbgw_pool_definitions TO dynbgw_user;

-- dynbgw_restore makes saved pools again too, and says which.
ALTER FUNCTION dynbgw_restore() RENAME TO dynbgw_restore_1_3;

CREATE FUNCTION dynbgw_restore(OUT n integer, OUT pid integer, OUT error text,
                               OUT pool text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dynbgw_restore'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_restore() IS
'launch every saved definition of this database that is not running, and make every saved pool that does not exist, each as its owner';

REVOKE ALL ON FUNCTION dynbgw_restore() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dynbgw_restore() TO dynbgw_user;

DROP FUNCTION dynbgw_restore_1_3();

-- A saved worker or pool whose role or database is gone is written as a
-- comment: named as NULL, it would run as its owner, or in the database
-- where the script is replayed.
CREATE OR REPLACE FUNCTION dynbgw_dump_definitions()
RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT line FROM (
    SELECT 1 AS kind, d.n, NULL::text AS name,
           CASE WHEN d.database IS NOT NULL AND b.datname IS NULL
                THEN format('-- dynbgw worker %s is not written: its database was dropped', d.n)
                WHEN d.role <> d.owner AND r.rolname IS NULL
                THEN format('-- dynbgw worker %s is not written: its role was dropped', d.n)
                ELSE format('SELECT dynbgw_launch(%s, %s, naptime => %s, database => %s, role => %s, runs => %s, restart => %s, run_timeout => %s, schedule => %s, timezone => %s, retry => %s, retry_delay => %s, keep_result => %s, if_running => ''skip'', persist => true);',
                            d.n, quote_nullable(d.command), quote_nullable(d.naptime),
                            quote_nullable(b.datname),
                            quote_nullable(CASE WHEN d.role <> d.owner THEN r.rolname END),
                            quote_nullable(d.runs), quote_nullable(d.restart), quote_nullable(d.run_timeout),
                            quote_nullable(d.schedule), quote_nullable(d.timezone),
                            quote_nullable(d.retry), quote_nullable(d.retry_delay),
                            quote_nullable(d.keep_result)) END AS line
    FROM @extschema@.dynbgw_definitions d
    LEFT JOIN pg_database b ON b.oid = d.database
    LEFT JOIN pg_roles r ON r.oid = d.role
    WHERE d.owner = (SELECT o.oid FROM pg_roles o WHERE o.rolname = current_user)
    UNION ALL
    SELECT 2, NULL, p.name,
           CASE WHEN p.database IS NOT NULL AND b.datname IS NULL
                THEN format('-- dynbgw pool %s is not written: its database was dropped', quote_literal(p.name))
                WHEN p.role <> p.owner AND r.rolname IS NULL
                THEN format('-- dynbgw pool %s is not written: its role was dropped', quote_literal(p.name))
                ELSE format('SELECT dynbgw_pool_create(%s, %s, database => %s, role => %s, queue_size => %s, persist => true);',
                            quote_literal(p.name), p.size, quote_nullable(b.datname),
                            quote_nullable(CASE WHEN p.role <> p.owner THEN r.rolname END),
                            p.queue_size) END
    FROM @extschema@.dynbgw_pool_definitions p
    LEFT JOIN pg_database b ON b.oid = p.database
    LEFT JOIN pg_roles r ON r.oid = p.role
    WHERE p.owner = (SELECT o.oid FROM pg_roles o WHERE o.rolname = current_user)
) l
ORDER BY kind, n, name
$$;

CREATE FUNCTION dynbgw_pools(
    OUT name text,
    OUT state text,
    OUT size integer,
    OUT database name,
    OUT role name,
    OUT owner name,
    OUT queue_size integer,
    OUT queued integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dynbgw_pools'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION dynbgw_pools() IS
'what the view dynbgw_pools shows: every pool of dynbgw workers';

CREATE VIEW dynbgw_pools AS
    SELECT * FROM dynbgw_pools();

COMMENT ON VIEW dynbgw_pools IS
'the pools of dynbgw workers, with the number of tasks that wait in each';

GRANT SELECT ON dynbgw_pools TO PUBLIC;

-- Tasks.  Submitting, waiting and cancelling check the roles involved, so
-- the functions are everyone's, as dynbgw_wait is.
CREATE TYPE dynbgw_task AS (
    id bigint,
    pool text,
    state text,
    role name,
    submitted_by name,
    priority integer,
    submitted timestamptz,
    started timestamptz,
    finished timestamptz,
    outcome text,
    sqlstate text,
    message text,
    result text,
    worker integer,
    pid integer);

COMMENT ON TYPE dynbgw_task IS
'a task of a pool, as dynbgw_tasks and dynbgw_wait_task() show it';

CREATE FUNCTION dynbgw_submit(pool text,
                              command text,
                              keep_result boolean DEFAULT false,
                              run_timeout interval DEFAULT NULL,
                              priority integer DEFAULT 0,
                              wait_for_slot interval DEFAULT '0')
RETURNS bigint
AS 'MODULE_PATHNAME', 'dynbgw_submit'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_submit(text, text, boolean, interval, integer, interval) IS
'queue command for a worker of pool to run as the pool''s role, at commit in a transaction block; returns the task''s id';

CREATE FUNCTION dynbgw_wait_task(id bigint, timeout interval DEFAULT NULL)
RETURNS SETOF dynbgw_task
AS 'MODULE_PATHNAME', 'dynbgw_wait_task'
LANGUAGE C CALLED ON NULL INPUT VOLATILE PARALLEL RESTRICTED ROWS 1;

COMMENT ON FUNCTION dynbgw_wait_task(bigint, interval) IS
'wait until task id has ended, or for timeout, and say how it stands';

CREATE FUNCTION dynbgw_cancel_task(id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dynbgw_cancel_task'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_cancel_task(bigint) IS
'cancel task id: it no longer waits, or its run is cancelled';

CREATE FUNCTION dynbgw_tasks()
RETURNS SETOF dynbgw_task
AS 'MODULE_PATHNAME', 'dynbgw_tasks'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

COMMENT ON FUNCTION dynbgw_tasks() IS
'what the view dynbgw_tasks shows: the tasks that wait, run or ended last';

CREATE VIEW dynbgw_tasks AS
    SELECT * FROM dynbgw_tasks();

COMMENT ON VIEW dynbgw_tasks IS
'the tasks of pools that wait, run, or ended among the last dynbgw.history_size';

GRANT SELECT ON dynbgw_tasks TO PUBLIC;

CREATE FUNCTION dynbgw_task_result(id bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'dynbgw_task_result'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION dynbgw_task_result(bigint) IS
'the rows that task id kept, read with a column definition list of the kept types';

CREATE FUNCTION dynbgw_task_result_json(id bigint)
RETURNS SETOF jsonb
AS 'MODULE_PATHNAME', 'dynbgw_task_result_json'
LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION dynbgw_task_result_json(bigint) IS
'the rows that task id kept, each as a jsonb object of its columns';

CREATE FUNCTION dynbgw_drop_task_result(id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'dynbgw_drop_task_result'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION dynbgw_drop_task_result(bigint) IS
'drop the result that task id kept, freeing its memory before its record leaves dynbgw_tasks';

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
