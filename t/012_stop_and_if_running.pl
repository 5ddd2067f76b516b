
# Copyright (c) dynbgw authors

# Stopping dynbgw workers, and launching a number that is already taken.
#
# - dynbgw_stop() ends a run in progress at once and rolls it back.
# - if_running => 'error' | 'skip' | 'replace', each launch from a session
#   of its own (every safe_psql()/psql() call is a new connection).
# - Any session may stop a worker, not only the one that launched it, and a
#   stopped worker is never restarted, whatever its restart delay.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = new_node('main');

sub process_exists
{
	my ($pid) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid");
}

###########################################################################
# 1. Stop in the middle of a run.  The command inserts a row, then sleeps
# for an hour.  Once the worker sits in pg_sleep (so the INSERT is done),
# dynbgw_stop() must return true within 5 s, the row must not persist
# (the run's transaction was rolled back), and the worker exits cleanly.
###########################################################################

$node->safe_psql('postgres', 'CREATE TABLE stopped (i int)');
my $log_offset = -s $node->logfile;
my $pid = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(1, 'INSERT INTO stopped VALUES (1); SELECT pg_sleep(3600)',
	                       naptime => '1 hour')});
ok( $node->poll_query_until(
		'postgres', qq{
	SELECT w.state = 'running' AND a.wait_event = 'PgSleep'
	FROM dynbgw_workers w JOIN pg_stat_activity a USING (pid)
	WHERE w.n = 1}),
	'worker is in the middle of its run, sleeping');

my $t0 = time();
is($node->safe_psql('postgres', "SELECT dynbgw_stop($pid)"),
	't', 'dynbgw_stop() of a running command returns true');
my $elapsed = time() - $t0;
note sprintf("stopping the sleeping worker took %.3f s", $elapsed);
cmp_ok($elapsed, '<', 5, 'and returns quickly');

is($node->safe_psql('postgres', 'SELECT count(*) FROM stopped'),
	'0', 'the interrupted run was rolled back');
is($node->safe_psql('postgres', 'SELECT count(*) FROM dynbgw_workers'),
	'0', 'the stopped worker left the view');
is(process_exists($pid), '0', 'its process is gone');
$node->wait_for_log(qr/dynbgw worker 1 stopped/, $log_offset);
pass('log says the worker stopped');
unlike(
	slurp_file($node->logfile, $log_offset),
	qr/command failed/,
	'the stop is not logged as a failed run');

###########################################################################
# 2. if_running, each call from a separate session.
###########################################################################

my $pid_a = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(2, 'SELECT 1', naptime => '1 hour')});
like($pid_a, qr/^\d+$/, 'worker 2 launched');

# 'error' (the default): SQLSTATE 42710, nothing changes.
my $err = psql_error($node,
	q{SELECT dynbgw_launch(2, 'SELECT 2', naptime => '1 hour');});
like(
	$err,
	qr/ERROR:  42710: dynbgw worker 2 is already running/,
	"if_running => 'error' (the default) fails with 42710");
like($err, qr/DETAIL:  Its PID is $pid_a\./, 'and names the running PID');
$err = psql_error($node,
	q{SELECT dynbgw_launch(2, 'SELECT 2', if_running => 'error');});
like(
	$err,
	qr/ERROR:  42710: dynbgw worker 2 is already running/,
	"explicit if_running => 'error' fails with 42710");
is( $node->safe_psql(
		'postgres', 'SELECT pid, command FROM dynbgw_workers WHERE n = 2'),
	"$pid_a|SELECT 1",
	'the running worker is unchanged');

# 'skip': returns the running worker's PID and changes nothing.
is( $node->safe_psql(
		'postgres',
		q{SELECT dynbgw_launch(2, 'SELECT 3', naptime => '2 hours',
		                       if_running => 'skip')}),
	$pid_a,
	"if_running => 'skip' returns the running worker's PID");
is( $node->safe_psql(
		'postgres',
		'SELECT pid, command, naptime FROM dynbgw_workers WHERE n = 2'),
	"$pid_a|SELECT 1|01:00:00",
	"if_running => 'skip' changes nothing");

# 'replace': stops the old worker, launches the new definition.
my $pid_b = $node->safe_psql(
	'postgres',
	q{SELECT dynbgw_launch(2, 'SELECT 4', naptime => '2 hours',
	                       if_running => 'replace')});
like($pid_b, qr/^\d+$/, "if_running => 'replace' returns a PID");
isnt($pid_b, $pid_a, 'a new process');
is( $node->safe_psql(
		'postgres',
		'SELECT pid, command, naptime, count(*) OVER () FROM dynbgw_workers WHERE n = 2'
	),
	"$pid_b|SELECT 4|02:00:00|1",
	'the view shows only the new definition');
is(process_exists($pid_a), '0', 'the replaced process is gone');

# A value that is none of the three is rejected.
$err = psql_error($node,
	q{SELECT dynbgw_launch(2, 'SELECT 5', if_running => 'ignore');});
like(
	$err,
	qr/ERROR:  22023: invalid value for if_running: "ignore"/,
	'an unknown if_running value is rejected with 22023');

is($node->safe_psql('postgres', "SELECT dynbgw_stop($pid_b)"),
	't', 'stopped worker 2');

###########################################################################
# 3. Stop from a session that did not launch the worker, of a worker with
# restart => '1 s'.  A stop is a clean exit, so the postmaster must never
# restart it.  The assertion is that something does NOT happen, so it is a
# bounded wait by nature: the view and pg_stat_activity are checked
# repeatedly for 3 s, three times the restart delay.
###########################################################################

my $launcher = $node->background_psql('postgres');
my $pid_c = $launcher->query_safe(
	q{SELECT dynbgw_launch(3, 'SELECT 1', naptime => '100 ms', restart => '1 s')});
like($pid_c, qr/^\d+$/, 'worker 3 with restart launched');
my $launcher_pid = $launcher->query_safe('SELECT pg_backend_pid()');
is( $node->safe_psql(
		'postgres', 'SELECT launched_by_pid, restart FROM dynbgw_workers WHERE n = 3'
	),
	"$launcher_pid|00:00:01",
	'the view names the launching session');

# The stop comes from another session, while the launcher is still there.
is($node->safe_psql('postgres', "SELECT dynbgw_stop($pid_c)"),
	't', 'another session stops the worker');
is($node->safe_psql('postgres', 'SELECT count(*) FROM dynbgw_workers'),
	'0', 'the view is empty right after the stop');

ok(stays($node, workers_seen_sql(), '0', 3),
	'a stopped worker with a restart delay never comes back');
$launcher->quit;

###########################################################################
# 4. What dynbgw_stop() does not stop.
###########################################################################

$err = psql_error($node, 'SELECT dynbgw_stop(pg_backend_pid());');
like(
	$err,
	qr/ERROR:  22023: PID \d+ is not a dynbgw worker/,
	'a regular backend cannot be stopped with dynbgw_stop()');
my ($ret, $stdout, $stderr) =
  $node->psql('postgres', 'SELECT dynbgw_stop(n => 4)');
is($stdout, 'f', 'stopping a number without a worker returns false');
like($stderr, qr/NOTICE:  dynbgw worker 4 is not running/, 'with a notice');

$node->stop;
done_testing();
