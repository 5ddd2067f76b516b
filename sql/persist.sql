--
-- Saved definitions: who may write a row of dynbgw_definitions, whose
-- number is whose, and what forget and skip do.  (Restoring, dumps and the
-- attacker roles: t/020_persistence.pl and t/021_persistence_trust.pl.)
--
\set VERBOSITY terse
CREATE ROLE regress_dynbgw_ann LOGIN;
CREATE ROLE regress_dynbgw_ben LOGIN;
CREATE ROLE regress_dynbgw_byp LOGIN BYPASSRLS;
GRANT dynbgw_user TO regress_dynbgw_ann, regress_dynbgw_ben, regress_dynbgw_byp;
GRANT pg_write_all_data TO regress_dynbgw_byp;

-- A saved row is its owner's: the role that launched with persist.
SET ROLE regress_dynbgw_ann;
SELECT dynbgw_launch(1, naptime => '1 hour', persist => true) > 0 AS launched;
SELECT n, owner, role, database FROM dynbgw_definitions;

-- Without a database argument it is "this database" (NULL); a named one
-- is kept by OID.
SELECT dynbgw_stop(n => 1);
SELECT dynbgw_launch(1, naptime => '1 hour', database => current_database(), persist => true) > 0 AS launched;
SELECT database = (SELECT oid FROM pg_database WHERE datname = current_database()) AS by_oid
FROM dynbgw_definitions;
SELECT dynbgw_stop(n => 1);

-- Nobody but a superuser writes another role's row, whatever row security
-- lets through: not as a new row (42501), not by moving one's own.
INSERT INTO dynbgw_definitions (n, owner, role) VALUES (2, 'regress_dynbgw_ben', 'regress_dynbgw_ben');
UPDATE dynbgw_definitions SET owner = 'regress_dynbgw_ben' WHERE n = 1;
-- The owner may be left out: it is the writer.
INSERT INTO dynbgw_definitions (n, role) VALUES (2, 'regress_dynbgw_ann');
SELECT n, owner FROM dynbgw_definitions ORDER BY n;
RESET ROLE;

-- A BYPASSRLS role with pg_write_all_data sees every row and writes every
-- table, but the trigger still fires: it can neither forge a row nor touch
-- ann's.
SET ROLE regress_dynbgw_byp;
SELECT count(*) AS rows_seen FROM dynbgw_definitions;
INSERT INTO dynbgw_definitions (n, owner, role) VALUES (3, 'regress_dynbgw_ann', 'regress_dynbgw_ann');
UPDATE dynbgw_definitions SET command = 'SELECT 1' WHERE n = 1;
DELETE FROM dynbgw_definitions WHERE n = 2;
RESET ROLE;

-- A number saved by another role in this database: saving it fails
-- (42710) and names the role, before anything starts; its owner frees it.
SET ROLE regress_dynbgw_ben;
SELECT dynbgw_launch(1, naptime => '1 hour', persist => true);
SELECT count(*) AS workers FROM dynbgw_workers WHERE n = 1;
RESET ROLE;
SET ROLE regress_dynbgw_ann;
DELETE FROM dynbgw_definitions WHERE n = 1;
RESET ROLE;
SET ROLE regress_dynbgw_ben;
SELECT dynbgw_launch(1, naptime => '1 hour', persist => true) > 0 AS launched;

-- if_running => 'skip' changes nothing: ann's launch of the taken number
-- returns the running worker and saves nothing.
RESET ROLE;
SET ROLE regress_dynbgw_ann;
SELECT dynbgw_launch(1, naptime => '1 hour', if_running => 'skip', persist => true) = dynbgw_pid(1) AS skipped;
SELECT n, owner FROM dynbgw_definitions ORDER BY n;

-- A forget that deletes nothing says so (ann has no row 1; the worker is
-- ben's, which ann may not stop).
SELECT dynbgw_stop(n => 5, forget => true);
RESET ROLE;

-- dynbgw_dump_definitions() prints what re-creates the caller's own rows,
-- as whoever replays them; a superuser's call prints none of ben's, so that
-- no replay turns ben's definition into a superuser's.
SELECT count(*) AS superuser_sees_of_bens FROM dynbgw_dump_definitions();
SET ROLE regress_dynbgw_ben;
SELECT * FROM dynbgw_dump_definitions();
SELECT dynbgw_stop(n => 1, forget => true);
SELECT count(*) AS left_over FROM dynbgw_definitions;
RESET ROLE;

-- A number beyond dynbgw.max_workers can be saved (the table does not
-- know the setting) but not restored: an error row, nothing more.
SET ROLE regress_dynbgw_ann;
DELETE FROM dynbgw_definitions;
INSERT INTO dynbgw_definitions (n, naptime, role) VALUES (2000000000, '1 hour', 'regress_dynbgw_ann');
SELECT n, pid, error FROM dynbgw_restore();
RESET ROLE;

DELETE FROM dynbgw_definitions;

-- The table's owner may disable its guard and write rows in any role's
-- name: from a table a non-superuser owns, only that role's rows restore.
SELECT current_user AS superuser \gset
ALTER TABLE dynbgw_definitions OWNER TO regress_dynbgw_ann;
SET ROLE regress_dynbgw_ann;
ALTER TABLE dynbgw_definitions DISABLE TRIGGER dynbgw_definitions_guard;
INSERT INTO dynbgw_definitions (n, owner, command, naptime, role)
VALUES (1, 'regress_dynbgw_ann', 'SELECT 1', '1 hour', 'regress_dynbgw_ann'),
       (2, :'superuser', 'SELECT 1', '1 hour', :'superuser');
RESET ROLE;
SELECT n, pid IS NOT NULL AS launched, error FROM dynbgw_restore();
SELECT n, role = current_user AS as_superuser FROM dynbgw_workers ORDER BY n;
SELECT dynbgw_stop(n => 1) AS stopped;
DELETE FROM dynbgw_definitions;
ALTER TABLE dynbgw_definitions OWNER TO CURRENT_USER;
ALTER TABLE dynbgw_definitions ENABLE ALWAYS TRIGGER dynbgw_definitions_guard;
DROP ROLE regress_dynbgw_ann, regress_dynbgw_ben, regress_dynbgw_byp;
