
# Copyright (c) dynbgw authors

# What one run of a dynbgw SQL worker is, and what happens when it fails.
#
# - runs => 1 makes a run-once job that exits cleanly after its run.
# - A failing run is counted (failures, last_error) and the worker goes on;
#   once the cause goes away, runs succeed again.
# - A CALLed procedure may COMMIT inside a run: what it committed stays even
#   if it fails afterwards.
# - A command that does not parse is rejected by dynbgw_launch() itself,
#   before any worker exists.
# - The worker's session gets the role's and the database's settings
#   (ALTER ROLE / ALTER DATABASE ... SET), like a client session.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = new_node('main');

###########################################################################
# 1. runs => 1: the worker runs once, leaves the view, logs that it
# finished, and exits with status 0 (the postmaster logs abnormal exits of
# background workers as "exited with exit code N"; a clean exit is not
# logged at LOG level).
###########################################################################

$node->safe_psql('postgres', 'CREATE TABLE once (i int)');
my $log_offset = -s $node->logfile;
my $pid = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(1, 'INSERT INTO once VALUES (1)', runs => 1)});
like($pid, qr/^\d+$/, 'run-once worker launched');
ok(wait_until_finished($node, 1), 'run-once worker left the view');
is($node->safe_psql('postgres', 'SELECT count(*) FROM once'),
	'1', 'run-once worker ran exactly once');
$node->wait_for_log(qr/dynbgw worker 1 finished its 1 run\b/, $log_offset);
pass('log says the worker finished its runs');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'run-once worker process is gone');
unlike(
	slurp_file($node->logfile, $log_offset),
	qr/background worker "dynbgw" \(PID $pid\) exited with exit code/,
	'run-once worker exited cleanly');

###########################################################################
# 2. A failing command is counted and survived.
#
# Worker 2 divides by zero on every run: failures grow, last_error says
# why, the same process keeps running.  Worker 3 inserts into a table that
# does not exist yet: its runs fail until the table is created, then they
# succeed and failures stop growing.
###########################################################################

$log_offset = -s $node->logfile;
my $pid2 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(2, 'SELECT 1/0', naptime => '100 ms')});
ok( $node->poll_query_until(
		'postgres', 'SELECT failures >= 3 FROM dynbgw_workers WHERE n = 2'),
	'failing runs are counted');
is( $node->safe_psql(
		'postgres',
		"SELECT pid, state IN ('idle', 'running'), runs >= failures, last_error
		 FROM dynbgw_workers WHERE n = 2"),
	"$pid2|t|t|division by zero",
	'the worker survives its failures and keeps the last error');
$node->wait_for_log(
	qr/dynbgw worker 2: command failed with SQLSTATE 22012/, $log_offset);
pass('failures are logged with the SQLSTATE');
is($node->safe_psql('postgres', "SELECT dynbgw_stop($pid2)"),
	't', 'stopped the failing worker');

my $pid3 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(3, 'INSERT INTO later VALUES (1)', naptime => '100 ms')});
ok( $node->poll_query_until(
		'postgres', 'SELECT failures >= 2 FROM dynbgw_workers WHERE n = 3'),
	'runs fail while the table does not exist');
like(
	$node->safe_psql(
		'postgres', 'SELECT last_error FROM dynbgw_workers WHERE n = 3'),
	qr/relation "later" does not exist/,
	'last_error says the table is missing');

$node->safe_psql('postgres', 'CREATE TABLE later (i int)');
ok($node->poll_query_until('postgres', 'SELECT count(*) >= 2 FROM later'),
	'runs succeed once the table exists');
# Failures counted so far; after more successful runs it must not grow.
my ($failures, $rows) = split /\|/,
  $node->safe_psql('postgres',
	'SELECT (SELECT failures FROM dynbgw_workers WHERE n = 3),
	        (SELECT count(*) FROM later)');
ok( $node->poll_query_until(
		'postgres', 'SELECT count(*) >= ' . ($rows + 3) . ' FROM later'),
	'later runs keep succeeding');
is( $node->safe_psql(
		'postgres', "SELECT pid, failures FROM dynbgw_workers WHERE n = 3"),
	"$pid3|$failures",
	'same process, no new failures after the table appeared');
$node->safe_psql('postgres', "SELECT dynbgw_stop($pid3)");

###########################################################################
# 3. CALL of a procedure that COMMITs.  The procedure inserts 1, commits,
# inserts 2 and fails.  The run counts as failed, row 1 persists (it was
# committed), row 2 does not (rolled back with the failed rest of the run).
###########################################################################

$node->safe_psql(
	'postgres', q{
	CREATE TABLE proc_log (i int);
	CREATE PROCEDURE commit_then_fail() LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO proc_log VALUES (1);
		COMMIT;
		INSERT INTO proc_log VALUES (2);
		PERFORM 1/0;
	END $$;});
my $pid4 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(4, 'CALL commit_then_fail()', naptime => '1 hour')});
ok( $node->poll_query_until(
		'postgres', 'SELECT runs >= 1 FROM dynbgw_workers WHERE n = 4'),
	'procedure run finished');
is( $node->safe_psql(
		'postgres',
		"SELECT runs, failures, last_error FROM dynbgw_workers WHERE n = 4"),
	'1|1|division by zero',
	'the run that failed after its COMMIT counts as a failure');
is($node->safe_psql('postgres', 'SELECT string_agg(i::text, \',\') FROM proc_log'),
	'1', 'rows committed by the procedure persist, the rest is rolled back');
$node->safe_psql('postgres', "SELECT dynbgw_stop($pid4)");

###########################################################################
# 4. A command with a syntax error is rejected by dynbgw_launch() with
# SQLSTATE 42601, before any worker starts: no row, no process.
###########################################################################

my $procs_before = dynbgw_processes($node);
my $err = psql_error($node,
	q{SELECT dynbgw_launch(5, 'SELEC 1', naptime => '1 hour');});
like(
	$err,
	qr/ERROR:  42601: syntax error at or near "SELEC"/,
	'a command that does not parse is rejected with 42601');
is($node->safe_psql('postgres', 'SELECT count(*) FROM dynbgw_workers'),
	'0', 'no row for the rejected worker');
is(dynbgw_processes($node), $procs_before,
	'no worker process for the rejected command');

###########################################################################
# 5. ALTER ROLE ... SET statement_timeout applies to a worker running as
# that role: pg_sleep(10) is cancelled after 100 ms on every run, and each
# cancellation counts as a failure.
###########################################################################

$node->safe_psql(
	'postgres', q{
	CREATE ROLE impatient LOGIN;
	ALTER ROLE impatient SET statement_timeout = '100ms';});
my $pid6 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(6, 'SELECT pg_sleep(10)', naptime => '100 ms',
	                       role => 'impatient')});
ok( $node->poll_query_until(
		'postgres', 'SELECT failures >= 2 FROM dynbgw_workers WHERE n = 6'),
	'runs that exceed the role\'s statement_timeout fail');
my ($role, $last_error, $short) = split /\|/,
  $node->safe_psql('postgres',
	"SELECT role, last_error, last_duration < '5 s'
	 FROM dynbgw_workers WHERE n = 6");
is($role, 'impatient', 'the worker runs as the role');
like($last_error, qr/statement timeout/, 'last_error is the statement timeout');
is($short, 't', 'the run was cut short long before pg_sleep(10) ended');
$node->safe_psql('postgres', "SELECT dynbgw_stop($pid6)");

###########################################################################
# 6. ALTER DATABASE ... SET search_path applies to a worker connected to
# that database: the unqualified table name resolves in schema s, and
# current_setting('search_path') says so.
###########################################################################

$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql(
	'other', q{
	CREATE SCHEMA s;
	CREATE TABLE s.hits (path text);
	ALTER DATABASE other SET search_path = s;});
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(7, 'INSERT INTO hits VALUES (current_setting(''search_path''))',
	                       database => 'other', runs => 1)});
ok(wait_until_finished($node, 7), 'worker in the other database finished');
is($node->safe_psql('other', 'SELECT path FROM s.hits'),
	's', 'the database\'s search_path applied to the worker');

is($node->safe_psql('postgres', 'SELECT count(*) FROM dynbgw_workers'),
	'0', 'no workers left');

$node->stop;
done_testing();
