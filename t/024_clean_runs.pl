
# Copyright (c) dynbgw authors

# Nothing of a run outlives it, and the identity a run starts with is the
# worker's role, whatever the run before it did.
#
# - A command that switches role with set_config('role', ...) acts as that
#   role in that run only: after REVOKE of the role, the next runs act as
#   the worker's role.  A superuser's worker that switches to the bootstrap
#   superuser in every run ends for good when its role is demoted: a session
#   keeps some of the status it connected with.
# - Session state ends with the run, after a successful run and after a
#   failed one alike: a cursor made holdable by a COMMIT inside CALL,
#   prepared statements, settings, temporary tables, session advisory
#   locks (released after the run commits, so that two workers that
#   serialize on one never see each other's uncommitted writes).
# - Code that commit runs (deferred triggers) is part of the run and its
#   state ends with it too; a lock the run's transaction took is held until
#   commit; ALTER ROLE ... SET role does not change who the worker runs as.
# - A run ended by statement_timeout is "failed", also after a cancel the
#   command caught; "cancelled" is for a cancel (pg_cancel_backend) only.
# - The statistics of a failed run are flushed as those of a successful one.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = new_node('main');
my $superuser = $node->safe_psql('postgres', 'SELECT current_user');
$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN; CREATE ROLE ops; GRANT ops TO alice;
	CREATE ROLE boss LOGIN SUPERUSER;
	GRANT dynbgw_user TO alice, boss;
	CREATE TABLE seen (n int, who name, at timestamptz DEFAULT clock_timestamp(),
	                   setting text);
	GRANT SELECT, INSERT ON seen TO PUBLIC;
	CREATE PROCEDURE hold_then_fail() LANGUAGE plpgsql AS $$
	BEGIN
	    EXECUTE 'DECLARE held CURSOR WITH HOLD FOR SELECT 1';
	    COMMIT;    -- the cursor outlives the transaction from here on
	    RAISE EXCEPTION 'failing after the commit';
	END $$;});

# The SQLSTATEs of worker $n's runs, oldest first.
sub run_states
{
	my ($n) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(coalesce(sqlstate, 'ok'), ',' ORDER BY started) FROM dynbgw_runs WHERE n = $n");
}

# Wait until worker $n has done $count runs.
sub wait_runs
{
	my ($n, $count) = @_;
	return $node->poll_query_until('postgres',
		"SELECT runs >= $count FROM dynbgw_workers WHERE n = $n");
}

###########################################################################
# 1. A role switch ends with its run.
###########################################################################

$node->safe_psql('postgres', q{
	SET ROLE alice;
	SELECT dynbgw_launch(1, $$INSERT INTO seen (n, who) VALUES (1, current_user);
	                         SELECT set_config('role', 'ops', false)
	                         WHERE (SELECT count(*) FROM seen WHERE n = 1) = 1$$,
	                     naptime => '50 ms')});
# Its first run switches to ops; the runs after it do not.
ok(wait_runs(1, 4), '1: worker 1 ran several times');
is($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT who, ',') FROM seen WHERE n = 1}),
	'alice', '1: every run began as alice, none as ops');
$node->safe_psql('postgres', 'REVOKE ops FROM alice');
my $t_revoke = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
ok(wait_runs(1, 8), '1: it runs on after the revoke');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM seen WHERE n = 1 AND who <> 'alice' AND at > '$t_revoke'"),
	'0', '1: after REVOKE ops, no row was written as ops');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 1)');

# A superuser's worker whose role is demoted: a session keeps some of the
# superuser status it connected with (SET SESSION AUTHORIZATION), so the
# worker ends for good instead of running on; boss keeps dynbgw_user, and
# its run switches to the bootstrap superuser each time.
$node->safe_psql('postgres', qq{
	SET ROLE boss;
	SELECT dynbgw_launch(2, \$\$INSERT INTO seen (n, who) VALUES (2, current_user);
	                         SET SESSION AUTHORIZATION $superuser;
	                         INSERT INTO seen (n, who) VALUES (2, current_user)\$\$,
	                     naptime => '50 ms')});
ok(wait_runs(2, 3), '2: boss\'s worker 2 ran');
my $offset2 = -s $node->logfile;
$node->safe_psql('postgres', 'ALTER ROLE boss NOSUPERUSER');
my $t_demote = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
ok(log_shows($node, qr/dynbgw worker 2 ends for good/, $offset2),
	'2: after the demotion worker 2 ends for good');
like(slurp_file($node->logfile, $offset2), qr/no longer a superuser, and it connected as one/,
	'2: and says why');
is($node->safe_psql('postgres', "SELECT count(*) FROM seen WHERE n = 2 AND at > '$t_demote'"),
	'0', '2: no run after the demotion, as boss or as the superuser');
ok(wait_until_finished($node, 2), '2: it left the registry');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 2)');

# Code that commit runs (a deferred trigger) is part of the run: its role
# switch ends with the run too.
$node->safe_psql('postgres', q{
	CREATE ROLE carol LOGIN; CREATE ROLE dave; GRANT dave TO carol; GRANT dynbgw_user TO carol;
	CREATE TABLE at_commit (i int); GRANT INSERT ON at_commit TO carol;
	CREATE FUNCTION switch_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN PERFORM set_config('role', 'dave', false); RETURN NULL; END $$;
	CREATE CONSTRAINT TRIGGER switch_at_commit AFTER INSERT ON at_commit
	    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION switch_at_commit();});
$node->safe_psql('postgres', q{
	SET ROLE carol;
	SELECT dynbgw_launch(1, $$INSERT INTO seen (n, who) VALUES (11, current_user);
	                         INSERT INTO at_commit VALUES (1)$$, naptime => '50 ms')});
ok(wait_runs(1, 4), '1b: worker 1 ran several times');
is($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT who, ',') FROM seen WHERE n = 11}),
	'carol', '1b: a role switch in a deferred trigger does not reach the next run');
like(run_states(1), qr/^ok,ok,ok,ok/, '1b: every run succeeded');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 1)');

# A role that ALTER ROLE ... SET role names is not who the worker runs as:
# it runs as its own role, the one its authority is checked for.
$node->safe_psql('postgres', q{
	CREATE ROLE root_b SUPERUSER NOLOGIN; GRANT root_b TO carol;
	ALTER ROLE carol SET role = 'root_b';});
$node->safe_psql('postgres', q{
	SET ROLE carol;
	SELECT dynbgw_launch(1, $$INSERT INTO seen (n, who) VALUES (12, current_user)$$,
	                     naptime => '50 ms')});
ok(wait_runs(1, 3), '1c: worker 1 ran');
is($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT who, ',') FROM seen WHERE n = 12}),
	'carol', '1c: ALTER ROLE carol SET role does not make the worker run as root_b');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 1); ALTER ROLE carol RESET role; REVOKE root_b FROM carol');

###########################################################################
# 2. Session state ends with the run.
###########################################################################

# A cursor made holdable by a COMMIT inside CALL, in a run that then fails:
# every run fails the same way, never with 42P03 (cursor already exists).
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(3, 'CALL hold_then_fail()', naptime => '50 ms')});
ok(wait_runs(3, 3), '3: worker 3 ran three times');
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT sqlstate, ',') FROM (
	    SELECT sqlstate FROM dynbgw_runs WHERE n = 3 ORDER BY started LIMIT 3) r}),
	'P0001', '3: each run failed with its own error, the cursor never left over');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 3)');

# A prepared statement of a failed run (PREPARE is not undone by the abort).
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(4, 'PREPARE left_over AS SELECT 1; SELECT 1/0', naptime => '50 ms')});
ok(wait_runs(4, 3), '4: worker 4 ran three times');
like(run_states(4), qr/^22012,22012,22012/,
	'4: each run failed dividing by zero, never with 42P05 (prepared statement exists)');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 4)');

# A setting, a temporary table and a session advisory lock of a successful
# run: the next run sees none of them.
$node->safe_psql('postgres', q{
	SELECT dynbgw_launch(5, $$INSERT INTO seen (n, who, setting) VALUES (5, current_user, current_setting('search_path'));
	                         SET search_path = nowhere;
	                         CREATE TEMP TABLE left_over (i int)$$, naptime => '50 ms')});
ok(wait_runs(5, 3), '5: worker 5 ran three times');
like(run_states(5), qr/^ok,ok,ok/, '5: every run created its temporary table anew');
is($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT setting, ',') FROM seen WHERE n = 5}),
	'"$user", public', '5: every run began with the default search_path');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 5)');

# Two workers serialized by a session advisory lock: each sees what the
# other committed under it, so their numbers never collide.
$node->safe_psql('postgres', q{
	CREATE TABLE numbered (v int UNIQUE); GRANT SELECT, INSERT ON numbered TO PUBLIC;
	SELECT dynbgw_launch(7, 'SELECT pg_advisory_lock(43); INSERT INTO numbered SELECT coalesce(max(v), 0) + 1 FROM numbered', naptime => '0');
	SELECT dynbgw_launch(8, 'SELECT pg_advisory_lock(43); INSERT INTO numbered SELECT coalesce(max(v), 0) + 1 FROM numbered', naptime => '0');});
ok($node->poll_query_until('postgres', 'SELECT count(*) >= 2000 FROM numbered'),
	'6a: workers 7 and 8 numbered 2000 rows');
is($node->safe_psql('postgres', 'SELECT count(*), sum(failures) FROM dynbgw_workers WHERE n IN (7, 8)'),
	'2|0', '6a: no run of either failed: none collided with the other\'s number');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 7), dynbgw_stop(n => 8)');

$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(6, 'SELECT pg_advisory_lock(42)', naptime => '1 hour')});
ok(wait_runs(6, 1), '6: worker 6 took an advisory lock in its run');
is($node->safe_psql('postgres', 'SELECT pg_try_advisory_lock(42)'),
	't', '6: between runs the lock is free again');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 6)');

# A lock taken for the transaction is held until the run commits, also
# when commit takes long (a slow deferred trigger).
$node->safe_psql('postgres', q{
	CREATE TABLE slow_commit (i int); GRANT INSERT ON slow_commit TO PUBLIC;
	CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$;
	CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON slow_commit
	    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();});
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(6, 'SELECT pg_advisory_xact_lock(99); INSERT INTO slow_commit VALUES (1)', runs => 1)});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'dynbgw' AND wait_event = 'PgSleep'}),
	'6b: worker 6 is in its slow commit');
is($node->safe_psql('postgres', 'SELECT pg_try_advisory_xact_lock(99)'),
	'f', '6b: its transaction\'s advisory lock is still held');
ok(wait_until_finished($node, 6), '6b: worker 6 finished');

###########################################################################
# 3. statement_timeout is a failure, a cancel is a cancel.
###########################################################################

$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(7, $$SET statement_timeout = '50ms'; SELECT pg_sleep(10)$$, runs => 1)});
ok(wait_until_finished($node, 7), '7: worker 7 ran once');
is($node->safe_psql('postgres', 'SELECT status, sqlstate FROM dynbgw_runs WHERE n = 7 ORDER BY started DESC LIMIT 1'),
	'failed|57014', '7: a run ended by statement_timeout is failed, not cancelled');

my $pid8 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(8, 'SELECT pg_sleep(10)', runs => 1)});
ok($node->poll_query_until('postgres', q{SELECT state = 'running' FROM dynbgw_workers WHERE n = 8}),
	'8: worker 8 runs');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid8)");
ok(wait_until_finished($node, 8), '8: worker 8 ended');
is($node->safe_psql('postgres', 'SELECT status, sqlstate FROM dynbgw_runs WHERE n = 8 ORDER BY started DESC LIMIT 1'),
	'cancelled|57014', '8: a run cancelled by pg_cancel_backend is cancelled');

###########################################################################
# 4. The statistics of a failed run reach pg_stat like those of a
# successful one, without waiting for the next run.
###########################################################################

$node->safe_psql('postgres', 'CREATE TABLE scanned (i int); GRANT SELECT ON scanned TO PUBLIC');
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(3, 'SELECT count(*) FROM scanned; SELECT 1/0', naptime => '1 hour')});
ok($node->poll_query_until('postgres',
		q{SELECT seq_scan > 0 FROM pg_stat_user_tables WHERE relname = 'scanned'}),
	'4: the scan of a failed run is counted');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 3)');

# A cancel that the command caught, then a statement_timeout: failed.
my $pid5 = $node->safe_psql('postgres', q{
	SELECT dynbgw_launch(5, $$DO $d$ BEGIN PERFORM pg_sleep(2); EXCEPTION WHEN query_canceled THEN NULL; END $d$;
	                         SET statement_timeout = '300ms'; SELECT pg_sleep(5)$$, runs => 1)});
ok($node->poll_query_until('postgres',
		"SELECT wait_event = 'PgSleep' FROM pg_stat_activity WHERE pid = $pid5"),
	'5b: worker 5 sleeps in its DO block');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid5)");
ok(wait_until_finished($node, 5), '5b: worker 5 ended');
is($node->safe_psql('postgres', 'SELECT status, sqlstate FROM dynbgw_runs WHERE n = 5 ORDER BY started DESC LIMIT 1'),
	'failed|57014', '5b: a statement_timeout after a caught cancel is failed');

log_is_clean($node);
$node->stop;
done_testing();
