--
-- results: the rows a worker keeps, and who reads them
--
-- A worker launched with keep_result keeps the rows of the last statement
-- of its last successful run.  dynbgw_result() reads them as the types of a
-- column definition list, dynbgw_result_json() as jsonb objects, as often
-- as wanted; dynbgw_results lists them.  The size limits, other databases,
-- concurrent reads and restarts are t/051_results.pl's.
--

CREATE ROLE regress_dynbgw_result_owner LOGIN;
CREATE ROLE regress_dynbgw_result_member LOGIN IN ROLE regress_dynbgw_result_owner;
CREATE ROLE regress_dynbgw_result_other LOGIN;
CREATE ROLE regress_dynbgw_result_stats LOGIN IN ROLE pg_read_all_stats;
GRANT dynbgw_user TO regress_dynbgw_result_owner;
GRANT CREATE ON SCHEMA public TO regress_dynbgw_result_owner;

-- Types of every kind: composite, array, NULL, large text, enum, domain,
-- an anonymous record (kept as json).
SET ROLE regress_dynbgw_result_owner;
CREATE TYPE regress_pair AS (a integer, b text);
CREATE TYPE regress_mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN regress_positive AS integer CHECK (VALUE > 0);
CREATE TABLE regress_report (id integer, mood regress_mood);
INSERT INTO regress_report VALUES (1, 'sad'), (2, 'happy');

SELECT dynbgw_launch(1, $$
    SELECT r.id, ROW(r.id, 'pair ' || r.id)::regress_pair AS pair,
           ARRAY[r.id, NULL, r.id * 10] AS numbers, NULL::text AS nothing,
           repeat('x', 100000) AS big, r.mood, r.id::regress_positive AS positive,
           ROW(r.id, 'anonymous') AS anonymous, 1.5::float8 / 3 AS third
      FROM regress_report r ORDER BY r.id$$,
    runs => 1, keep_result => true) IS NOT NULL AS launched;
SELECT outcome, result FROM dynbgw_wait(1, '30 s');

SELECT id, pair, (pair).b, numbers, nothing IS NULL AS null_kept,
       length(big) AS big_length, mood, positive, anonymous, third
  FROM dynbgw_result(1) AS (id integer, pair regress_pair, numbers integer[],
                            nothing text, big text, mood regress_mood,
                            positive regress_positive, anonymous json,
                            third float8);

-- As jsonb: no list needed.  Read twice, the same.
SELECT r - 'big' AS row FROM dynbgw_result_json(1) AS r;
SELECT count(*) AS rows_again FROM dynbgw_result_json(1);

-- What is kept, and the column definition list to read it with.
SELECT n, role, database = current_database() AS here, rows, size > 200000 AS large,
       columns
  FROM dynbgw_results;

-- A list that does not match says how (42804).
SELECT * FROM dynbgw_result(1) AS (id bigint);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dynbgw_result(1) AS (id integer, pair text, numbers integer[],
                                   nothing text, big text, mood regress_mood,
                                   positive regress_positive, anonymous json,
                                   third float8);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dynbgw_result(1);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The role's data: roles that may SET ROLE to it and superusers read it;
-- others are refused (42501), and see only its size in dynbgw_results;
-- pg_read_all_stats sees its rows and columns there, no more.
SET ROLE regress_dynbgw_result_member;
SELECT count(*) AS member_reads FROM dynbgw_result_json(1);
SET ROLE regress_dynbgw_result_other;
SELECT count(*) FROM dynbgw_result_json(1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dynbgw_result(1) AS (id integer);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_drop_result(1);
\echo :LAST_ERROR_SQLSTATE
SELECT n, size > 0 AS size_shown, kept_at IS NULL AND rows IS NULL AND columns IS NULL AS rest_hidden
  FROM dynbgw_results;
-- Nor may it launch the number, which would drop the result (42501).
RESET ROLE;
GRANT dynbgw_user TO regress_dynbgw_result_other;
SET ROLE regress_dynbgw_result_other;
SELECT dynbgw_launch(1, 'SELECT 1', runs => 1);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- Even one that may stop the owner's running worker does not stop it for
-- a launch that is then refused.
SET ROLE regress_dynbgw_result_owner;
SELECT dynbgw_launch(7, 'SELECT 7 AS seven', naptime => '1 hour', keep_result => true) AS pid7 \gset
SELECT wait_until($$ (SELECT count(*) FROM dynbgw_results WHERE n = 7) = 1 $$) AS kept;
RESET ROLE;
GRANT pg_signal_backend TO regress_dynbgw_result_other;
SET ROLE regress_dynbgw_result_other;
SELECT dynbgw_launch(7, 'SELECT 1', if_running => 'replace');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT dynbgw_pid(7) = :pid7 AS still_running;
SELECT dynbgw_stop(n => 7) AS stopped;
REVOKE pg_signal_backend FROM regress_dynbgw_result_other;
REVOKE dynbgw_user FROM regress_dynbgw_result_other;
SET ROLE regress_dynbgw_result_stats;
SELECT count(*) FROM dynbgw_result_json(1);
\echo :LAST_ERROR_SQLSTATE
SELECT n, rows, columns IS NOT NULL AS columns_shown FROM dynbgw_results;
RESET ROLE;
SELECT count(*) AS superuser_reads FROM dynbgw_result_json(1);

-- Values are read back as the result's role, in a security-restricted
-- operation: a domain's check that calls the role's own function runs
-- with that role's rights, not the reader's.
SET ROLE regress_dynbgw_result_owner;
CREATE TABLE regress_checked_by (who name);
CREATE FUNCTION regress_note_checker(integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.regress_checked_by VALUES (current_user);
    RETURN true;
END
$$;
CREATE DOMAIN regress_noted AS integer CHECK (public.regress_note_checker(VALUE));
SELECT dynbgw_launch(2, 'SELECT 7::regress_noted AS noted', runs => 1,
                     keep_result => true) IS NOT NULL AS launched;
SELECT outcome FROM dynbgw_wait(2, '30 s');
TRUNCATE regress_checked_by;
RESET ROLE;
SELECT * FROM dynbgw_result(2) AS (noted regress_noted);
SELECT * FROM dynbgw_result_json(2);
SELECT who, count(*) FROM regress_checked_by GROUP BY who;

-- Values come back as they were, whatever the client encoding of the
-- worker (its role's setting here) or of the reader.
ALTER ROLE regress_dynbgw_result_owner SET client_encoding = 'LATIN1';
SET ROLE regress_dynbgw_result_owner;
SELECT dynbgw_launch(2, $$SELECT 'caf' || chr(233) AS word, ARRAY['na' || chr(239) || 've'] AS words,
                              jsonb_build_object('k', chr(233)) AS j$$,
                     runs => 1, keep_result => true) IS NOT NULL AS launched;
SELECT outcome FROM dynbgw_wait(2, '30 s');
RESET ROLE;
ALTER ROLE regress_dynbgw_result_owner RESET client_encoding;
SELECT word = 'caf' || chr(233) AS word_same, words[1] = 'na' || chr(239) || 've' AS words_same,
       j ->> 'k' = chr(233) AS j_same
  FROM dynbgw_result(2) AS (word text, words text[], j jsonb);
SET client_encoding = 'LATIN1';
SELECT word = 'caf' || chr(233) AS word_same, j ->> 'k' = chr(233) AS j_same
  FROM dynbgw_result(2) AS (word text, words text[], j jsonb);
SELECT r ->> 'word' = 'caf' || chr(233) AS json_same FROM dynbgw_result_json(2) AS r;
RESET client_encoding;

-- Kept so that others read them back: anonymous records and arrays of a
-- pseudo-type as json.
ANALYZE regress_report;
SELECT dynbgw_launch(2, $$SELECT histogram_bounds FROM pg_stats
                          WHERE tablename = 'regress_report' AND attname = 'id'$$,
                     runs => 1, keep_result => true) IS NOT NULL AS launched;
SELECT outcome FROM dynbgw_wait(2, '30 s');
SELECT * FROM dynbgw_result(2) AS (histogram_bounds json);
-- A row of pg_stats, whose anyarray columns no other session could read
-- back, is kept as json; a pg_node_tree, readable by nobody, as text; an
-- aclitem[], whose elements have no binary form, in its text form.
SELECT dynbgw_launch(2, $$SELECT s AS stats, (SELECT ev_action FROM pg_rewrite LIMIT 1) AS tree,
                                 '{regress_dynbgw_result_owner=r/regress_dynbgw_result_owner}'::aclitem[] AS acl
                            FROM pg_stats s
                           WHERE s.tablename = 'regress_report' AND s.attname = 'id'$$,
                     runs => 1, keep_result => true) IS NOT NULL AS launched;
SELECT outcome FROM dynbgw_wait(2, '30 s');
SELECT stats ->> 'attname' AS attname, stats -> 'histogram_bounds' AS bounds,
       tree LIKE '({QUERY%' AS tree_kept, acl
  FROM dynbgw_result(2) AS (stats json, tree text, acl aclitem[]);
SELECT columns FROM dynbgw_results WHERE n = 2;

-- Values in text form or json read back the same whatever the run set,
-- and "char", for internal use but readable, keeps its type.
CREATE TYPE regress_with_acl AS (k aclitem, d date, f float8, i interval);
SELECT dynbgw_launch(2, $$SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'sql_standard';
                          SET extra_float_digits = -3;
                          SELECT ROW('regress_dynbgw_result_owner=r/regress_dynbgw_result_owner',
                                     date '2026-12-25', 0.1::float8 + 0.2,
                                     make_interval(days => -1, hours => 2))::regress_with_acl AS v,
                                 'r'::"char" AS kind, ARRAY['a'::"char"] AS kinds$$,
                     runs => 1, keep_result => true) IS NOT NULL AS launched;
SELECT outcome FROM dynbgw_wait(2, '30 s');
SELECT columns FROM dynbgw_results WHERE n = 2;
SELECT (v).d = date '2026-12-25' AS date_same, (v).f = 0.1::float8 + 0.2 AS float_same,
       (v).i = make_interval(days => -1, hours => 2) AS interval_same, kind, kinds
  FROM dynbgw_result(2) AS (v regress_with_acl, kind "char", kinds "char"[]);

-- A function that sets client_encoding for itself, called by a domain's
-- check while values are read, leaves the values that follow alone.
CREATE FUNCTION regress_own_encoding(text) RETURNS boolean
LANGUAGE sql SET client_encoding = 'UTF8' AS 'SELECT true';
CREATE DOMAIN regress_checked_text AS text CHECK (regress_own_encoding(VALUE));
SELECT dynbgw_launch(2, $$SET client_encoding = 'LATIN1';
                          SELECT 'a'::regress_checked_text AS a, 'caf' || chr(233) AS b$$,
                     runs => 1, keep_result => true) IS NOT NULL AS launched;
SELECT outcome FROM dynbgw_wait(2, '30 s');
SELECT a, b = 'caf' || chr(233) AS b_same FROM dynbgw_result(2) AS (a regress_checked_text, b text);
SELECT r ->> 'b' = 'caf' || chr(233) AS json_same FROM dynbgw_result_json(2) AS r;

-- A type dropped while kept: both forms say so (42704), also when a type
-- of the same name was made since.
SET ROLE regress_dynbgw_result_owner;
CREATE TYPE regress_gone AS (x integer);
SELECT dynbgw_launch(3, 'SELECT ROW(1)::regress_gone AS g', runs => 1,
                     keep_result => true) IS NOT NULL AS launched;
SELECT outcome FROM dynbgw_wait(3, '30 s');
DROP TYPE regress_gone;
SELECT * FROM dynbgw_result_json(3);
\echo :LAST_ERROR_SQLSTATE
CREATE TYPE regress_gone AS (x integer);
SELECT * FROM dynbgw_result(3) AS (g regress_gone);
\echo :LAST_ERROR_SQLSTATE

-- A row type changed while kept: the kept values are refused, not
-- misread.
CREATE TYPE regress_changing AS (x integer);
SELECT dynbgw_launch(3, 'SELECT ROW(1)::regress_changing AS c', runs => 1,
                     keep_result => true) IS NOT NULL AS launched;
SELECT outcome FROM dynbgw_wait(3, '30 s');
ALTER TYPE regress_changing ALTER ATTRIBUTE x TYPE text;
SELECT * FROM dynbgw_result(3) AS (c regress_changing);
\echo :LAST_ERROR_SQLSTATE

-- The last statement's rows are kept: of a CALL, its OUT parameters; of a
-- statement without rows, a result without columns.
CREATE PROCEDURE regress_out(INOUT total integer, OUT label text)
LANGUAGE plpgsql AS $$ BEGIN total := total * 2; label := 'doubled'; END $$;
SELECT dynbgw_launch(3, 'SELECT 1; CALL regress_out(21, NULL)', runs => 1,
                     keep_result => true) IS NOT NULL AS launched;
SELECT outcome, result FROM dynbgw_wait(3, '30 s');
SELECT * FROM dynbgw_result(3) AS (total integer, label text);
SELECT dynbgw_launch(3, 'SELECT 1; UPDATE regress_report SET id = id', runs => 1,
                     keep_result => true) IS NOT NULL AS launched;
SELECT outcome, result FROM dynbgw_wait(3, '30 s');
SELECT count(*) AS no_rows FROM dynbgw_result_json(3);
SELECT * FROM dynbgw_result(3) AS (id integer);
\echo :LAST_ERROR_SQLSTATE

-- A run that fails keeps nothing, and leaves the result of the last run
-- that succeeded.
SELECT dynbgw_launch(4, 'SELECT count(*) AS reports FROM regress_report',
                     naptime => '1 hour', keep_result => true) IS NOT NULL AS launched;
SELECT wait_until($$ (SELECT runs FROM dynbgw_workers WHERE n = 4) = 1 $$) AS ran;
ALTER TABLE regress_report RENAME TO regress_report_moved;
SELECT dynbgw_wake(4) AS woken;
SELECT wait_until($$ (SELECT failures FROM dynbgw_workers WHERE n = 4) = 1 $$) AS failed;
SELECT * FROM dynbgw_result(4) AS (reports bigint);
SELECT dynbgw_stop(n => 4) AS stopped;
-- ... until its number is launched again.
SELECT dynbgw_launch(4, naptime => '1 hour') IS NOT NULL AS launched;
SELECT * FROM dynbgw_result(4) AS (reports bigint);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_stop(n => 4) AS stopped;

-- A launch that fails leaves the result of the launch before.
SELECT dynbgw_launch(4, 'SELECT 4 AS four', runs => 1, keep_result => true) IS NOT NULL AS launched;
SELECT outcome FROM dynbgw_wait(4, '30 s');
RESET ROLE;
CREATE DATABASE regress_dynbgw_closed ALLOW_CONNECTIONS false;
SET ROLE regress_dynbgw_result_owner;
SELECT dynbgw_launch(4, 'SELECT 1', database => 'regress_dynbgw_closed');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dynbgw_result(4) AS (four integer);
RESET ROLE;
DROP DATABASE regress_dynbgw_closed;
SET ROLE regress_dynbgw_result_owner;

-- keep_result needs a command (22023); it shows in dynbgw_workers.
SELECT dynbgw_launch(5, naptime => '1 hour', keep_result => true);
\echo :LAST_ERROR_SQLSTATE
SELECT dynbgw_launch(5, 'SELECT 1', naptime => '1 hour', keep_result => true) IS NOT NULL AS launched;
SELECT n, keep_result FROM dynbgw_workers WHERE n = 5;
SELECT dynbgw_stop(n => 5) AS stopped;

-- Dropping frees it; once dropped there is nothing to read (55000).
SELECT dynbgw_drop_result(1) AS dropped;
SELECT dynbgw_drop_result(1) AS dropped;
SELECT * FROM dynbgw_result_json(1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM dynbgw_result(NULL) AS (x integer);
SELECT * FROM dynbgw_result(0) AS (x integer);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- The result of a role that was dropped: nobody reads it, a superuser
-- may drop it.
CREATE ROLE regress_dynbgw_result_gone LOGIN;
GRANT dynbgw_user TO regress_dynbgw_result_gone;
SET ROLE regress_dynbgw_result_gone;
SELECT dynbgw_launch(6, 'SELECT 6 AS six', runs => 1, keep_result => true) IS NOT NULL AS launched;
SELECT outcome FROM dynbgw_wait(6, '30 s');
RESET ROLE;
DROP ROLE regress_dynbgw_result_gone;
SELECT n, role, size > 0 AS kept FROM dynbgw_results WHERE n = 6;
SELECT * FROM dynbgw_result(6) AS (six integer);
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_dynbgw_result_owner;
SELECT dynbgw_drop_result(6);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT dynbgw_drop_result(6) AS dropped_by_superuser;

SELECT bool_and(dynbgw_drop_result(n)) AS all_dropped FROM dynbgw_results;
SELECT count(*) AS kept FROM dynbgw_results;
DROP TABLE regress_report_moved, regress_checked_by;
DROP PROCEDURE regress_out;
DROP FUNCTION regress_note_checker CASCADE;
DROP TYPE regress_pair, regress_mood, regress_gone, regress_changing, regress_with_acl;
DROP DOMAIN regress_positive, regress_noted, regress_checked_text;
DROP FUNCTION regress_own_encoding;
REVOKE CREATE ON SCHEMA public FROM regress_dynbgw_result_owner;
DROP ROLE regress_dynbgw_result_owner, regress_dynbgw_result_member,
    regress_dynbgw_result_other, regress_dynbgw_result_stats;
