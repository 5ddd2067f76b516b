
# Copyright (c) dynbgw authors

# Launches that race with what happens to their worker meanwhile.
#
# While a launcher waits for its worker to become ready, only the launcher
# frees the worker's slot, so that the slot cannot pass to another launch
# under its feet.  The launching backend is stalled with SIGSTOP to let
# other sessions act in between; it is always let go again with SIGCONT.
#
# - A worker that dies before it is ready while its launcher is stalled:
#   a stop and a new launch of the same number from other sessions meanwhile
#   do not make the stalled launcher return the new launch's PID.
# - A launch abandoned by its launcher (cancelled, terminated) frees a slot
#   that has no process at once: the number can be launched right away.
# - Saved definitions of restartable workers are one file per launch, and
#   those of an earlier server life are removed.
# - A launch whose worker waits for a lock that the launching session's own
#   transaction holds fails with 40P01 instead of waiting for ever.
# - A worker restarted while its launcher is stalled takes its slot over.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = new_node('races');
my $datadir = $node->data_dir;

# The command line of this node's processes, for gone().
my $ours = qr/^postgres: races: /;

# Backends stalled with SIGSTOP.  Whatever happens, they are let go again,
# or the node could not shut down.
my @stalled;
END { kill('CONT', @stalled) if @stalled; }

# ---- helpers ----

# The state of process $pid from /proc ('T' when stopped), '' if gone.
sub proc_state
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or return '';
	my $stat = <$fh> // '';
	close($fh);
	return $stat =~ /\) (\S) / ? $1 : '';
}

# Stall backend $pid with SIGSTOP and test that it stopped inside its wait
# for the worker (its wait event is still set), where it holds no lock.
sub stall
{
	my ($pid, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	kill('STOP', $pid);
	push @stalled, $pid;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	usleep(10_000) while proc_state($pid) ne 'T' && time() < $deadline;
	is( proc_state($pid) . ' '
		  . $node->safe_psql(
			'postgres',
			"SELECT wait_event_type FROM pg_stat_activity WHERE pid = $pid"),
		'T Extension',
		"$what: launcher stalled inside its wait");
}

# Let a stalled backend go on.
sub resume
{
	my ($pid) = @_;
	kill('CONT', $pid);
	@stalled = grep { $_ != $pid } @stalled;
}

# Database $db, as the other sessions see it, locked by a transaction of a
# session of its own that renames it: a worker connecting to it blocks.
# ALTER DATABASE ... RENAME takes an ACCESS EXCLUSIVE lock on the database,
# which a connection's lock on its database conflicts with.  Returns the
# session, in its transaction.
sub lock_database
{
	my ($db) = @_;
	my $holder = $node->background_psql('postgres');
	$holder->query_safe("BEGIN; ALTER DATABASE $db RENAME TO ${db}_locked");
	return $holder;
}

# Launch worker $n into the locked database $db ($extra: more arguments of
# dynbgw_launch), from a session of its own, wait until the worker blocks
# on the database's lock while it starts, and stall the launcher.  The
# launcher's deadlock_timeout is set high so that nothing but its worker
# wakes it up: every deadlock_timeout it looks for the holders of the
# lock its worker waits for, under the lock manager's own locks, which it
# must not hold when it is stalled.  Returns the session, its backend's
# PID and the worker's PID.
sub launch_stalled
{
	my ($n, $db, $extra, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $bpid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->query_safe("SET deadlock_timeout = '1h'");
	$bg->query_until(qr/launching/,
		"\\echo launching\n\\set VERBOSITY verbose\nSELECT 'pid=' || dynbgw_launch($n, naptime => '1 hour', database => '$db'$extra);\n"
	);
	ok( $node->poll_query_until(
			'postgres', qq{
SELECT count(*) FROM pg_locks l JOIN dynbgw_workers w ON w.pid = l.pid
 WHERE w.n = $n AND w.state = 'starting' AND NOT l.granted
   AND l.locktype = 'object' AND l.classid = 'pg_database'::regclass
   AND l.objid = (SELECT oid FROM pg_database WHERE datname = '$db')},
			'1'),
		"$what: worker $n blocks while it starts");
	my $wpid = $node->safe_psql('postgres',
		"SELECT pid FROM dynbgw_workers WHERE n = $n");
	is(join(' ', titled($n)), $wpid,
		"$what: its process is titled \"dynbgw worker $n\"");
	$node->poll_query_until('postgres',
		"SELECT wait_event_type FROM pg_stat_activity WHERE pid = $bpid",
		'Extension');
	stall($bpid, $what);
	return ($bg, $bpid, $wpid);
}

# Start a launch in a background session; its output is "pid=PID" or an
# error.
sub launch_in_background
{
	my ($sql) = @_;
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $bpid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->query_until(qr/launching/,
		"\\echo launching\n\\set VERBOSITY verbose\nSELECT 'pid=' || $sql;\n");
	return ($bg, $bpid);
}

# Wait until a background launch returned a PID or failed, or its session
# ended; (stdout, stderr).
sub launch_result
{
	my ($bg) = @_;
	until ($bg->{stdout} =~ /pid=\d+\n/
		  || $bg->{stderr} =~ /ERROR|FATAL|server closed|connection to server was lost/)
	{
		last if !$bg->{run}->pumpable() || $bg->{timeout}->is_expired;
		$bg->{run}->pump_nb();
		usleep(10_000);
	}
	return ($bg->{stdout}, $bg->{stderr});
}

# The saved definitions in the data directory: file names, sorted.
sub saved_files
{
	my ($pattern) = @_;
	return join(' ',
		sort(map { s{.*/}{}r } glob("$datadir/pg_dynbgw/" . ($pattern // '*'))));
}

# PIDs of this node's processes titled "dynbgw worker $n", whether or not
# they got as far as pg_stat_activity: children of its postmaster.
sub titled
{
	my ($n) = @_;
	my ($postmaster) = slurp_file("$datadir/postmaster.pid") =~ /^(\d+)/;
	my @pids;
	for my $dir (glob('/proc/[0-9]*'))
	{
		open(my $fh, '<', "$dir/stat") or next;
		my $stat = <$fh> // '';
		close($fh);
		next unless $stat =~ /\) \S (\d+) / && $1 == $postmaster;
		open($fh, '<', "$dir/cmdline") or next;
		my $cmd = <$fh> // '';
		close($fh);
		push @pids, $dir =~ s{/proc/}{}r if $cmd =~ /dynbgw worker $n\b/;
	}
	return @pids;
}

# Every database the races use exists before any backend is stalled: a
# CREATE DATABASE waits for every backend to absorb a barrier.
$node->safe_psql('postgres', "CREATE DATABASE $_")
  for qw(race4a race4b race5 deadlock7);

###########################################################################
# 1. A stalled launcher whose worker dies before it is ready, while other
# sessions stop the number and launch it again.
#
# Launcher L launches worker 3 with restart => '1 s' into a locked
# database, so the worker blocks while it starts; L is stalled.  Then the
# worker dies, another session stops worker 3 by number, and a third
# session R launches worker 3 again with if_running => 'replace'.  Only
# then does L go on.
#
# The stop marks the dead worker's launch stopped and returns true.  L
# must fail (57014, or the worker's own error) and never return the PID of
# R's launch; R's launch succeeds and worker 3 is listed with R's PID; the
# server does not crash.
#
# The worker dies two ways:
# - pg_terminate_backend(), a stop of its own; the dynbgw_stop() comes in
#   the same statement, right after it, well before the restart delay.
# - It fails to connect: the holder of the lock makes the database refuse
#   connections and commits, and the worker, woken, fails with FATAL.  A
#   role made NOLOGIN would not do: a worker checks its role before it
#   locks its database (and may run as a NOLOGIN role from 17), while
#   ALLOW_CONNECTIONS is checked after it got the lock, on every version.
###########################################################################

for my $how ('terminated', 'connect fails')
{
	my $db = $how eq 'terminated' ? 'race4a' : 'race4b';
	my $holder = lock_database($db);
	my ($l, $l_pid, $w_pid) =
	  launch_stalled(3, $db, ", restart => '1 s'", "1, $how");

	if ($how eq 'terminated')
	{
		is( $node->safe_psql(
				'postgres',
				"SELECT pg_terminate_backend($w_pid, 10000), dynbgw_stop(n => 3)"),
			't|t',
			"1, $how: worker 3 terminated, then dynbgw_stop(n => 3) returns true");
		process_gone($w_pid, $ours, "1, $how: worker 3");
	}
	else
	{
		$holder->query_safe(
			"ALTER DATABASE ${db}_locked ALLOW_CONNECTIONS false; COMMIT");
		process_gone($w_pid, $ours, "1, $how: worker 3");
		is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 3)'),
			't', "1, $how: dynbgw_stop(n => 3) returns true");
	}

	# R's launch either waits for L's launch to be decided, or is done.
	my ($r, $r_pid) = launch_in_background(
		"dynbgw_launch(3, naptime => '1 hour', if_running => 'replace')");
	$node->poll_query_until(
		'postgres', qq{
SELECT state = 'idle' OR wait_event_type = 'Extension'
  FROM pg_stat_activity WHERE pid = $r_pid});

	resume($l_pid);
	my ($l_out, $l_err) = launch_result($l);
	my ($r_out, $r_err) = launch_result($r);
	my ($new_pid) = $r_out =~ /pid=(\d+)/;
	unlike($l_out, qr/pid=/, "1, $how: the stalled launch returns no PID");
	like($l_err, qr/ERROR:  (57014|55000):/,
		"1, $how: it fails with 57014 or the worker's error");
	ok(defined $new_pid, "1, $how: the replacing launch returns a PID")
	  or diag "stdout: $r_out\nstderr: $r_err";
	is( $node->safe_psql('postgres', 'SELECT pid FROM dynbgw_workers WHERE n = 3'),
		$new_pid // '',
		"1, $how: worker 3 is listed with the PID of the replacing launch");
	registry_is($node, [3], "1, $how");
	bg_end($_) for ($l, $r);
	$holder->quit;

	is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 3)'),
		't', "1, $how: worker 3 stopped");
	registry_is($node, [], "1, $how: after the stop");
}

###########################################################################
# 2. An abandoned launch.  The same set-up: worker N launched with restart
# => '1 hour' (so that only its launcher can free its slot) into a locked
# database, the launcher L stalled, the worker terminated.  Then L is
# cancelled (worker 3), or terminated (worker 4), and goes on.
#
# L's launch fails; worker N is not listed; dynbgw_stop(n => N) answers
# false, "not running", at once; and a new launch of worker N succeeds at
# once.  Before, the slot could stay in 'stopping' for good.
###########################################################################

my $holder5 = lock_database('race5');
for my $case ([ 3, 'cancel' ], [ 4, 'terminate' ])
{
	my ($n, $how) = @$case;
	my ($l, $l_pid, $w_pid) =
	  launch_stalled($n, 'race5', ", restart => '1 hour'", "2, $how");
	is($node->safe_psql('postgres', "SELECT pg_terminate_backend($w_pid)"),
		't', "2, $how: worker $n terminated before it is ready");
	process_gone($w_pid, $ours, "2, $how: worker $n");

	is($node->safe_psql('postgres', "SELECT pg_${how}_backend($l_pid)"),
		't', "2, $how: pg_${how}_backend() of the stalled launcher");
	resume($l_pid);
	my ($l_out, $l_err) = launch_result($l);
	unlike($l_out, qr/pid=/, "2, $how: the abandoned launch returns no PID");
	like(
		$l_err,
		$how eq 'cancel'
		? qr/ERROR:  57014:/
		: qr/FATAL:  57P01: terminating connection|server closed the connection|connection to server was lost/,
		"2, $how: the abandoned launch fails");
	bg_end($l);
	process_gone($l_pid, $ours, "2, $how: the terminated launcher")
	  if $how eq 'terminate';

	is( $node->safe_psql(
			'postgres', "SELECT count(*) FROM dynbgw_workers WHERE n = $n"),
		'0',
		"2, $how: worker $n is not listed");

	my $t0 = time();
	my ($ret, $stopped, $stderr) =
	  $node->psql('postgres', "SELECT dynbgw_stop(n => $n)");
	my $elapsed = time() - $t0;
	is($stopped, 'f', "2, $how: dynbgw_stop(n => $n) returns false");
	like($stderr, qr/NOTICE:  dynbgw worker $n is not running/,
		"2, $how: worker $n is not running");
	cmp_ok($elapsed, '<', 5, "2, $how: the stop answers at once");

	$t0 = time();
	($ret, my $pid, $stderr) = $node->psql('postgres',
		"SELECT dynbgw_launch($n, naptime => '1 hour')");
	$elapsed = time() - $t0;
	note sprintf("the new launch of worker $n took %.3f s", $elapsed);
	like($pid, qr/^\d+$/, "2, $how: worker $n can be launched again")
	  or diag $stderr;
	cmp_ok($elapsed, '<', 5, "2, $how: at once");
	registry_is($node, [$n], "2, $how: the new worker $n");
	$node->safe_psql('postgres', "SELECT dynbgw_stop(n => $n)");
	registry_is($node, [], "2, $how: after the stop");
}
$holder5->query_safe('ROLLBACK');
$holder5->quit;

###########################################################################
# 3. Saved definitions.  A restartable worker's definition is saved in
# pg_dynbgw/ in the data directory, one file per launch.
#
# Worker 1, launched with restart => '1 hour', dies with FATAL in its first
# run and waits in 'restarting'; its file exists.  After a clean restart of
# the server, which ends every worker for good, the first use of the
# registry removes the files of the earlier server life: pg_dynbgw/ is
# empty.  And worker 2, launched, stopped and launched again, has exactly
# one file while it runs and none once it is stopped.
###########################################################################

like(
	$node->safe_psql(
		'postgres',
		q{SELECT dynbgw_launch(1, 'SET exit_on_error = on; SELECT 1/0',
		                       naptime => '1 hour', restart => '1 hour')}),
	qr/^\d+$/,
	'3: worker 1 launched; it dies in its first run');
ok( $node->poll_query_until(
		'postgres', q{SELECT state = 'restarting' FROM dynbgw_workers WHERE n = 1}),
	'3: worker 1 waits to be restarted');
like(saved_files(), qr/^worker_1(_\d+)?$/,
	'3: its definition is saved, and nothing else');

$node->restart;
is($node->safe_psql('postgres', 'SELECT dynbgw_pid(1)'),
	'', '3: after a clean restart worker 1 is gone');
is(saved_files(), '',
	'3: after the first use of the registry, pg_dynbgw/ holds no file');

for my $launch (1, 2)
{
	like(
		$node->safe_psql(
			'postgres',
			"SELECT dynbgw_launch(2, naptime => '1 hour', restart => '1 hour')"),
		qr/^\d+$/,
		"3: worker 2 launched with a restart delay, launch $launch");
	like(saved_files('worker_2*'), qr/^worker_2(_\d+)?$/,
		"3: launch $launch: exactly one file for worker 2 while it runs");
	is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 2)'),
		't', "3: launch $launch: worker 2 stopped");
	is(saved_files('worker_2*'), '',
		"3: launch $launch: no file for worker 2 once it is stopped");
}

###########################################################################
# 4. A launch whose worker waits for a lock held by the launching
# session's own transaction: the worker cannot connect before the
# transaction ends, and the transaction waits for the launch.  The launch
# must fail with 40P01 within about deadlock_timeout (200 ms here), not
# wait for statement_timeout (20 s here), and leave no worker, no process
# and no slot behind.  Two locks a connecting worker needs: pg_authid (to
# find its role) and its database (ALTER DATABASE ... RENAME in the same
# transaction; the launch names the database by its new name, which only
# this transaction sees).
###########################################################################

for my $case (
	[ 1, 'LOCK pg_authid', "naptime => '1 hour'" ],
	[
		2, 'ALTER DATABASE deadlock7 RENAME TO deadlock7_renamed',
		"naptime => '1 hour', database => 'deadlock7_renamed'"
	])
{
	my ($n, $lock, $args) = @$case;
	my ($err, $elapsed) = psql_error(
		$node, qq{SET deadlock_timeout = '200ms';
SET statement_timeout = '20s';
BEGIN;
$lock;
SELECT dynbgw_launch($n, $args);},
		"4: launch after $lock in the same transaction fails");
	note sprintf("the launch after %s failed after %.3f s", $lock, $elapsed);
	like(
		$err,
		qr/ERROR:  40P01: dynbgw worker $n cannot start: it waits for a lock held by this session/,
		"4, $lock: with 40P01, the worker waits for this session");
	cmp_ok($elapsed, '<', 5, "4, $lock: within a few seconds");

	my @left = titled($n);
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (@left && time() < $deadline)
	{
		usleep(10_000);
		@left = titled($n);
	}
	is("@left", '', "4, $lock: no process of worker $n is left");
	registry_is($node, [], "4, $lock: no slot is left");
}

###########################################################################
# 5. A stalled launcher whose worker was ready, then died in its first run
# wanting a restart (restart => '1 s'), and stays stalled longer than the
# restart delay.  The postmaster restarts the worker meanwhile: the new
# process takes the slot over (before, it found the slot undecided and
# exited, the registration was gone, and when the launcher came back it
# left the row 'restarting' for ever, with nothing to restart it).  This
# command dies in every first run, so the restarts end after 5 failed
# starts, said in the log, and the launcher returns a PID, whatever
# happened meanwhile, and leaves nothing behind.
###########################################################################

$node->safe_psql('postgres', 'CREATE DATABASE stalled5');
my $holder_r = lock_database('stalled5');
my ($lr, $lr_pid, $wr_pid) = launch_stalled(5, 'stalled5',
	", restart => '1 s', command => 'SET exit_on_error = on; SELECT 1/0'",
	'5');
my $offset_r = -s $node->logfile;
$holder_r->query_safe('ROLLBACK');
$holder_r->quit;
process_gone($wr_pid, $ours, '5: the first process died in its first run');
$node->wait_for_log(qr/dynbgw worker 5 will not be restarted/, $offset_r);
pass('5: its restarts went on while the launcher was stalled, and ended');
resume($lr_pid);
my ($out_r, $err_r) = launch_result($lr);
like($out_r, qr/pid=\d+/, '5: the stalled launch returns a PID');
bg_end($lr);
registry_is($node, [], '5: nothing is left');

###########################################################################
# 6. A stalled launcher whose worker was ready, then died in its first run
# wanting a restart (restart => '1 hour'), and was reaped by the postmaster
# before the launcher went on.  Its registration then waits for the
# restart with no process, which GetBackgroundWorkerPid() reports as
# BGWH_STOPPED, as it does for a registration that is gone.  The launcher
# must return the PID and leave the worker 'restarting', its registration
# kept, not end it.  Unstalled, the launcher is merely slow: on a loaded
# machine the postmaster often reaps a worker that fails at once before its
# launcher wakes up.
###########################################################################

$node->safe_psql('postgres', 'CREATE DATABASE stalled6');
my $holder_6 = lock_database('stalled6');
my ($l6, $l6_pid, $w6_pid) = launch_stalled(6, 'stalled6',
	", restart => '1 hour', command => 'SET exit_on_error = on; SELECT 1/0'",
	'6');
my $offset_6 = -s $node->logfile;
$holder_6->query_safe('ROLLBACK');
$holder_6->quit;
process_gone($w6_pid, $ours, '6: the worker died in its first run');
$node->wait_for_log(
	qr/background worker "dynbgw" \(PID $w6_pid\) exited with exit code 1/,
	$offset_6);
pass('6: the postmaster reaped it while the launcher was stalled');
resume($l6_pid);
my ($out_6, $err_6) = launch_result($l6);
like($out_6, qr/pid=$w6_pid/, '6: the stalled launch returns the PID');
bg_end($l6);
is( $node->safe_psql(
		'postgres', 'SELECT state FROM dynbgw_workers WHERE n = 6'),
	'restarting',
	'6: worker 6 waits to be restarted');
is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 6)'),
	't', '6: worker 6 stopped');
registry_is($node, [], '6: nothing is left');

log_is_clean($node);
$node->stop;
done_testing();
