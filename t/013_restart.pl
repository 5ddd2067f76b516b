
# Copyright (c) dynbgw authors
# slow: about 44 s

# Restarts of dynbgw workers launched with restart => interval.
#
# - kill -9 of any worker makes the postmaster reinitialize the whole server
#   (a crash-restart).  Workers with a restart delay come back with the same
#   number and definition; workers without one do not; no stale rows remain.
# - A worker that exits with FATAL (exit status 1) is restarted by the
#   postmaster after its delay, rounded up to whole seconds; in between its
#   row says 'restarting' with no PID.
# - dynbgw_stop(n => N) cancels a pending restart.
# - A clean server restart ends every worker for good: dynamic background
#   workers do not survive the postmaster, whatever their restart delay.
# - Restarts are bounded: a worker that exits abnormally 5 times in a row
#   without completing a run, or whose database is gone, ends for good.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;

# PostgreSQL::Test::Cluster turns restart_after_crash off; crash-restarts
# are what part 1 is about.
my $node = new_node('main', conf => 'restart_after_crash = on');

# kill -9 a process of the server and wait until the server has
# reinitialized and accepts queries again.
sub crash_restart
{
	my ($pid) = @_;
	my $offset = -s $node->logfile;
	ok(kill('KILL', $pid), "kill -9 $pid");
	wait_crash_restart($node, $offset);
	ok($node->poll_query_until('postgres', 'SELECT true'),
		'server is back after the crash-restart');
}

# No stale rows: every listed worker has the PID of a live dynbgw process.
my $no_stale_rows = q{
	SELECT count(*) FILTER (WHERE a.pid IS NULL) = 0
	FROM dynbgw_workers w
	LEFT JOIN pg_stat_activity a ON a.pid = w.pid AND a.backend_type = 'dynbgw'};

# What must survive a crash-restart unchanged.
my $definition = q{
	SELECT n, kind, command, naptime, database, role, restart, max_runs,
	       launched_at, launched_by_pid
	FROM dynbgw_workers WHERE n = 1};

###########################################################################
# 1. Crash-restarts.
#
# Worker 1 has restart => '1 s' and runs as role alice in database appdb,
# inserting into a table there; worker 2 has no restart delay.  Killing
# worker 1 with SIGKILL crash-restarts the server: worker 1 comes back with
# its definition and a new PID and goes on inserting, worker 2 is gone.
# Then a second crash-restart, caused by killing a worker without a restart
# delay: worker 1 comes back again.
###########################################################################

$node->safe_psql(
	'postgres', q{
	CREATE ROLE alice LOGIN;
	CREATE DATABASE appdb;});
$node->safe_psql(
	'appdb', q{
	CREATE TABLE ticks (who name, t timestamptz);
	ALTER TABLE ticks OWNER TO alice;});

my $pid1 = $node->safe_psql(
	'postgres',
	q{SELECT dynbgw_launch(1, 'INSERT INTO ticks VALUES (current_user, now())',
	                       naptime => '200 ms', database => 'appdb',
	                       role => 'alice', restart => '1 s')});
my $pid2 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(2, 'SELECT 1', naptime => '1 hour')});
ok($node->poll_query_until('appdb', 'SELECT count(*) >= 1 FROM ticks'),
	'worker 1 runs');
my $def_before = $node->safe_psql('postgres', $definition);

crash_restart($pid1);

ok( $node->poll_query_until(
		'postgres', q{
	SELECT pid IS NOT NULL AND state IN ('idle', 'running')
	FROM dynbgw_workers WHERE n = 1}),
	'worker 1, with a restart delay, came back after the crash-restart');
my $pid1_after = $node->safe_psql('postgres',
	'SELECT pid FROM dynbgw_workers WHERE n = 1');
isnt($pid1_after, $pid1, 'with a new PID');
is($node->safe_psql('postgres', $definition),
	$def_before, 'with the same number, command, naptime, database and role');
is($node->safe_psql('postgres', 'SELECT count(*) FROM dynbgw_workers WHERE n = 2'),
	'0', 'worker 2, without a restart delay, did not come back');
is($node->safe_psql('postgres', 'SELECT count(*) FROM dynbgw_workers'),
	'1', 'only worker 1 is listed');
is($node->safe_psql('postgres', $no_stale_rows), 't', 'no stale rows');

# It really runs again, as alice in appdb.
my $ticks = $node->safe_psql('appdb', 'SELECT count(*) FROM ticks');
ok( $node->poll_query_until(
		'appdb', 'SELECT count(*) >= ' . ($ticks + 2) . ' FROM ticks'),
	'the restarted worker runs its command again');
is($node->safe_psql('appdb', 'SELECT string_agg(DISTINCT who, \',\') FROM ticks'),
	'alice', 'as its role');

# Second crash-restart, caused by a worker without a restart delay.
my $pid3 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(3, 'SELECT 1', naptime => '1 hour')});
crash_restart($pid3);
ok( $node->poll_query_until(
		'postgres', qq{
	SELECT pid IS NOT NULL AND pid <> $pid1_after AND state IN ('idle', 'running')
	FROM dynbgw_workers WHERE n = 1}),
	'worker 1 came back after a second crash-restart');
is($node->safe_psql('postgres', $definition),
	$def_before, 'again with the same definition');
is( $node->safe_psql(
		'postgres', 'SELECT string_agg(n::text, \',\') FROM dynbgw_workers'),
	'1',
	'worker 3, whose kill caused the crash, did not come back');
is($node->safe_psql('postgres', $no_stale_rows), 't', 'no stale rows');

is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 1)'),
	't', 'stopped worker 1');

###########################################################################
# 2. Restart after a FATAL exit.
#
# The command turns exit_on_error on for its session and divides by the
# number of rows in gate: fine while gate has a row.  Emptying gate turns
# the next run's division by zero into FATAL, and the worker exits with
# status 1; the postmaster restarts it after restart => '2500 ms', rounded
# up to 3 s.  Meanwhile the row says 'restarting', with no PID, and the
# failed run is counted.  gate is refilled while it waits, so the restarted
# worker stays up.
###########################################################################

$node->safe_psql('postgres',
	'CREATE TABLE gate (i int); INSERT INTO gate VALUES (1)');
my $fatal_cmd =
  q{SET exit_on_error = on; SELECT 1/(SELECT count(*) FROM gate)};
my $pid4 = $node->safe_psql('postgres',
	qq{SELECT dynbgw_launch(4, '$fatal_cmd', naptime => '200 ms',
	                        restart => '2500 ms')});
is($node->safe_psql('postgres', 'SELECT restart FROM dynbgw_workers WHERE n = 4'),
	'00:00:03', 'the restart delay is rounded up to whole seconds');
ok( $node->poll_query_until(
		'postgres', 'SELECT runs >= 1 FROM dynbgw_workers WHERE n = 4'),
	'worker 4 runs');

my $offset = -s $node->logfile;
$node->safe_psql('postgres', 'DELETE FROM gate');
ok( $node->poll_query_until(
		'postgres', q{
	SELECT state = 'restarting' AND pid IS NULL
	FROM dynbgw_workers WHERE n = 4}),
	"after a FATAL exit the worker is 'restarting' without a PID");
my $exit_log = $node->wait_for_log(
	qr/background worker "dynbgw" \(PID $pid4\) exited with exit code 1/,
	$offset);
pass('the worker exited with status 1');

# While it waits to be restarted, the number is taken but has no PID.
is( $node->safe_psql(
		'postgres', q{
	SELECT failures, last_error, runs >= 2
	FROM dynbgw_workers WHERE n = 4}),
	'1|division by zero|t',
	'the fatal run counts as a failure and keeps its error');
is( $node->safe_psql(
		'postgres',
		q{SELECT dynbgw_launch(4, 'SELECT 1', if_running => 'skip') IS NULL}),
	't',
	"if_running => 'skip' returns NULL for a worker waiting to restart");
my $err = psql_error($node, q{SELECT dynbgw_launch(4, 'SELECT 1');});
like(
	$err,
	qr/ERROR:  42710: dynbgw worker 4 is already running.*\nDETAIL:  Its state is "restarting"\./s,
	"if_running => 'error' fails with 42710 for a worker waiting to restart");
$node->safe_psql('postgres', 'INSERT INTO gate VALUES (1)');

ok( $node->poll_query_until(
		'postgres', qq{
	SELECT pid IS NOT NULL AND pid <> $pid4 AND state IN ('idle', 'running')
	FROM dynbgw_workers WHERE n = 4}),
	'the postmaster restarted the worker, with a new PID');
my ($pid4_after, $runs) = split /\|/,
  $node->safe_psql('postgres',
	'SELECT pid, runs FROM dynbgw_workers WHERE n = 4');
is( $node->safe_psql(
		'postgres', q{SELECT command, restart FROM dynbgw_workers WHERE n = 4}),
	"$fatal_cmd|00:00:03",
	'with the same definition');
ok( $node->poll_query_until(
		'postgres',
		'SELECT runs >= ' . ($runs + 2) . ' FROM dynbgw_workers WHERE n = 4'),
	'the restarted worker runs again');
is($node->safe_psql('postgres', 'SELECT failures FROM dynbgw_workers WHERE n = 4'),
	'1', 'counters carry over the restart: still 1 failure');

# The restart honoured the delay: the new process started about 3 s after
# the old one exited (log line timestamp vs. backend_start).  From 19 the
# log line prefix has the process type before the PID.
my ($exit_ts) = slurp_file($node->logfile, $offset) =~
  /^(\S+ \S+ \S+) \S*\[\d+\] LOG:  background worker "dynbgw" \(PID $pid4\) exited/m;
my $delay = $node->safe_psql('postgres',
	"SELECT extract(epoch FROM backend_start - '$exit_ts'::timestamptz)
	 FROM pg_stat_activity WHERE pid = $pid4_after");
note "restarted ${delay} s after the exit";
cmp_ok($delay, '>=', 2.9, 'the restart waited for the delay');
cmp_ok($delay, '<', 10, 'and not much longer');

is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 4)'),
	't', 'stopped worker 4');

###########################################################################
# 3. dynbgw_stop(n => N) while 'restarting' cancels the restart.
#
# The state is read and the stop issued in one statement, so the stop hits
# the 'restarting' state (the 2 s delay leaves ample time); that it did is
# confirmed by the log: a worker stopped while running logs "dynbgw worker
# 5 stopped", one forgotten while waiting to restart has no process to log
# anything.  gate is refilled right after the stop, so a worker that
# wrongly came back would stay up and be seen; it is watched for 4 s,
# twice its delay.
###########################################################################

$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(5, 'SET exit_on_error = on; SELECT 1/(SELECT count(*) FROM gate)',
	                       naptime => '200 ms', restart => '2 s')});
ok( $node->poll_query_until(
		'postgres', 'SELECT runs >= 1 FROM dynbgw_workers WHERE n = 5'),
	'worker 5 runs');
$offset = -s $node->logfile;
$node->safe_psql('postgres', 'DELETE FROM gate');
ok( $node->poll_query_until(
		'postgres',
		q{SELECT CASE WHEN state = 'restarting' THEN dynbgw_stop(n => 5) END
		  FROM dynbgw_workers WHERE n = 5}),
	"dynbgw_stop(n => 5) of a 'restarting' worker returns true");
$node->safe_psql('postgres', 'INSERT INTO gate VALUES (1)');
is($node->safe_psql('postgres', 'SELECT count(*) FROM dynbgw_workers'),
	'0', 'the view is empty right after the stop');
ok(stays($node, workers_seen_sql(), '0', 4),
	'the stopped worker is never restarted');
unlike(
	slurp_file($node->logfile, $offset),
	qr/dynbgw worker 5 stopped/,
	'the stop found the worker waiting to restart, not running');

###########################################################################
# 4. A clean server restart: a worker with restart => '1 s' is stopped by
# the shutdown and does not come back (documented behaviour: dynamic
# background workers are registered with the postmaster, which a restart
# replaces).
###########################################################################

my $pid6 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(6, 'SELECT 1', naptime => '1 s', restart => '1 s')});
like($pid6, qr/^\d+$/, 'worker 6 with restart launched');
$node->restart;
ok(stays($node, workers_seen_sql(), '0', 3),
	'after a clean restart the worker does not come back');

###########################################################################
# 5. A worker that dies in its very first run, while its launcher may still
# be waiting, is restarted all the same: the launch returns its PID and the
# postmaster starts it again after its delay.  But a worker that keeps
# dying without completing a run is not restarted for ever: after
# DYNBGW_MAX_FAILED_STARTS (5) abnormal exits in a row it ends for good,
# with a log line that says why.  The restarts are proven by the log: five
# distinct PIDs exited with status 1, each after its own failed run.
###########################################################################

$offset = -s $node->logfile;
my $pid7 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(7, 'SET exit_on_error = on; SELECT 1/0',
	                       naptime => '1 hour', restart => '1 s')});
like($pid7, qr/^\d+$/, 'worker 7, failing at once, was launched');
# The last process says it gives up, then the postmaster logs its exit.
$node->wait_for_log(
	qr/dynbgw worker 7 will not be restarted.*background worker "dynbgw" \(PID \d+\) exited with exit code 1/s,
	$offset);
my $log7 = slurp_file($node->logfile, $offset);
like(
	$log7,
	qr/dynbgw worker 7 will not be restarted\n.*DETAIL:  It exited abnormally 5 times in a row without completing a run\./,
	'worker 7 gave up after 5 failed starts, and the log says why');
my %exited = map { $_ => 1 }
  $log7 =~ /background worker "dynbgw" \(PID (\d+)\) exited with exit code 1/g;
is(scalar(keys %exited), 5, 'five processes of worker 7 exited with status 1');
ok($exited{$pid7}, 'the first of them is the launched one');
ok(stays($node, workers_seen_sql(), '0', 3),
	'worker 7 is not restarted again');
is(scalar(() = glob($node->data_dir . '/pg_dynbgw/worker_7_*')),
	0, 'and its saved definition is gone');

###########################################################################
# 6. A worker whose database is dropped while it waits to be restarted
# ends at its next start, for good: a database never comes back under the
# same OID.  Before, it failed to connect every restart delay, for ever.
###########################################################################

$node->safe_psql('postgres', 'CREATE DATABASE doomed');
$offset = -s $node->logfile;
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(8, 'SET exit_on_error = on; SELECT 1/0',
	                       naptime => '1 hour', database => 'doomed',
	                       restart => '3 s')});
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'restarting' FROM dynbgw_workers WHERE n = 8"),
	'worker 8 waits to be restarted');
# The worker is connected to "doomed" only for an instant every 3 s.
my $dropped = 0;
for (1 .. 50)
{
	last if $dropped = ($node->psql('postgres', 'DROP DATABASE doomed') == 0);
}
ok($dropped, 'database doomed dropped while worker 8 waits');
$node->wait_for_log(qr/dynbgw worker 8 will not be restarted/, $offset);
like(
	slurp_file($node->logfile, $offset),
	qr/dynbgw worker 8 will not be restarted\n.*DETAIL:  Its database no longer exists\./,
	'worker 8 gave up at its first start without a database');
ok(stays($node, workers_seen_sql(), '0', 4),
	'and is not restarted again');

###########################################################################
# 7. DROP DATABASE and a worker connected to that database.  From 19 the
# worker is ended, as a stop ends it, and not restarted; the command
# succeeds.  Before 19 the command waits for it, then fails as it does for
# a session, and the worker runs on.
###########################################################################

$node->safe_psql('postgres', 'CREATE DATABASE doomed2');
my $pid7_db = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(7, 'SELECT 1', naptime => '1 hour',
	                       database => 'doomed2', restart => '1 s')});
my ($rc, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE doomed2');
if (server_major($node) >= 19)
{
	is($rc, 0, 'DROP DATABASE ends the worker connected to it');
	is( $node->safe_psql(
			'postgres', q{SELECT outcome FROM dynbgw_wait(7, '30 s')}),
		'stopped',
		'worker 7 ended as stopped');
	stays_gone($node, 7, 3, 'after DROP DATABASE');
}
else
{
	like(
		$stderr,
		qr/database "doomed2" is being accessed by other users/,
		'DROP DATABASE fails while a worker is connected to it');
	is($node->safe_psql('postgres', 'SELECT dynbgw_pid(7)'),
		$pid7_db, 'and worker 7 runs on');
	$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 7)');
	$node->safe_psql('postgres', 'DROP DATABASE doomed2');
}

###########################################################################
# 8. A restartable launch that has ended by the time its launcher would
# save its definition leaves no file behind: one that runs once right away
# often ends before its launch returns.  Before, every such launch left a
# file in pg_dynbgw until the server restarted.
###########################################################################

$node->safe_psql(
	'postgres', q{
DO $$
BEGIN
	FOR i IN 1 .. 20 LOOP
		PERFORM dynbgw_launch(7, 'SELECT 1', naptime => '0', runs => 1,
		                      restart => '1 s');
		PERFORM dynbgw_wait(7, timeout => '10 s');
	END LOOP;
END $$});
is( $node->safe_psql(
		'postgres', q{SELECT outcome, runs FROM dynbgw_wait(7, timeout => '0')}),
	'succeeded|1',
	'worker 7, launched 20 times, ran once each time');
is(scalar(() = glob($node->data_dir . '/pg_dynbgw/worker_7_*')),
	0, 'and none of its launches left a saved definition');

###########################################################################
# 9. A launch that fails after its worker was ready, because the worker's
# definition cannot be saved, leaves no slot behind, also when the worker
# has already died and waits for its restart: the launch ends the
# registration, so nothing would ever restart it.  Before, such a slot
# stayed 'restarting' until dynbgw_stop(n => ...).  Whether the worker has
# died by the time its launch fails is a race the worker wins a few times
# in a hundred, hence the hundred tries.
###########################################################################

my $saved_dir = $node->data_dir . '/pg_dynbgw';
mkdir $saved_dir;
chmod 0500, $saved_dir or die "could not chmod $saved_dir: $!";
my $failed_launches = 0;
my $left = '';
for my $try (1 .. 100)
{
	my ($rc9, $out9, $err9) = $node->psql('postgres',
		q{SELECT dynbgw_launch(7, 'SET exit_on_error = on; SELECT 1/0',
		                       naptime => '0', restart => '1 hour')});
	$failed_launches++ if $err9 =~ /could not create file/;
	# The launch has ended, or it never will.
	$left .= "$try "
	  if $node->safe_psql('postgres',
		q{SELECT outcome FROM dynbgw_wait(7, timeout => '5 s')}) eq 'running';
	$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 7)');
}
chmod 0700, $saved_dir or die "could not chmod $saved_dir: $!";
is($failed_launches, 100, 'a hundred launches failed to save their definition');
is($left, '', 'and none of them left its slot behind');

# A save that fails half-way, at the rename (a directory holds the name),
# leaves no temporary file either.  The next launch's generation is one
# more than the last one's.
$node->safe_psql('postgres',
	q{SELECT dynbgw_launch(7, 'SELECT 1', naptime => '0', runs => 1);
	  SELECT outcome FROM dynbgw_wait(7, timeout => '10 s')});
my $next_generation = $node->safe_psql('postgres',
	'SELECT max(launch) + 1 FROM dynbgw_runs WHERE n = 7');
my $in_the_way = "$saved_dir/worker_7_$next_generation";
mkdir $in_the_way or die "could not create $in_the_way: $!";
my (undef, undef, $err_rename) = $node->psql('postgres',
	q{SELECT dynbgw_launch(7, 'SELECT 1', naptime => '1 hour',
	                       restart => '1 s')});
like($err_rename, qr/could not rename file/,
	'a launch whose definition cannot be renamed into place fails');
is(scalar(() = glob("$saved_dir/worker_7_*.tmp")),
	0, 'and leaves no temporary file');
rmdir $in_the_way or die "could not remove $in_the_way: $!";

$node->stop;
done_testing();
