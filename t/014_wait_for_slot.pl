
# Copyright (c) dynbgw authors

# Launching when every background worker slot is taken.
#
# max_worker_processes bounds all background workers of the server, not
# only dynbgw's.  When none is free, dynbgw_launch() fails with SQLSTATE
# 53000 (insufficient_resources) at once, or, with wait_for_slot, retries
# for up to that long and succeeds as soon as a slot frees up.  A launch
# that gives up, or is cancelled while it waits, leaves nothing behind.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $max_worker_processes = 4;

my $node = new_node('main', max_worker_processes => $max_worker_processes);

# Launch worker $n in a background session with wait_for_slot => '20 s' and
# test that the launch waits for a slot: its number is reserved ('starting',
# no PID, launched by that session) and the session waits on its latch
# (wait_event 'Extension', or 'DynbgwLaunch' from 17).  Returns the session
# and its backend's PID.
sub launch_waiting
{
	my ($n, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $bg_pid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->query_until(qr/launching/,
		"\\echo launching\nSELECT dynbgw_launch($n, naptime => '1 hour', wait_for_slot => '20 s');\n"
	);
	ok( $node->poll_query_until(
			'postgres', qq{
SELECT w.state = 'starting' AND w.pid IS NULL AND w.launched_by_pid = $bg_pid
       AND a.wait_event IN ('Extension', 'DynbgwLaunch')
FROM dynbgw_workers w, pg_stat_activity a
WHERE w.n = $n AND a.pid = $bg_pid}),
		$what);
	return ($bg, $bg_pid);
}

###########################################################################
# Fill every slot.  In PostgreSQL 15 the logical replication launcher, a
# background worker registered at server start, holds one slot; wait until
# it runs to count it, and fill the rest with idle dynbgw workers (no
# command: they only wake up every hour).
###########################################################################

my $others = launcher_slots($node);
cmp_ok($others, '>', 0, 'the logical replication launcher runs');
my $free = $max_worker_processes - $others;
note "$others slot(s) taken by the server, $free free for dynbgw";
cmp_ok($free, '>=', 2, 'at least two slots to fill');

for my $n (1 .. $free)
{
	like($node->safe_psql('postgres', "SELECT dynbgw_launch($n, naptime => '1 hour')"),
		qr/^\d+$/, "idle worker $n launched");
}
my $next = $free + 1;

###########################################################################
# 1. wait_for_slot => '0' (the default): fails with 53000 at once.
###########################################################################

my ($err, $elapsed) = psql_error($node,
	"SELECT dynbgw_launch($next, naptime => '1 hour', wait_for_slot => '0');");
like(
	$err,
	qr/ERROR:  53000: could not register dynbgw worker $next\n.*DETAIL:  All background worker slots are in use\./s,
	'no free slot: fails with 53000');
note sprintf("wait_for_slot 0 failed after %.3f s", $elapsed);
cmp_ok($elapsed, '<', 2, 'at once');
is($node->safe_psql('postgres', "SELECT count(*) FROM dynbgw_workers WHERE n = $next"),
	'0', 'the failed launch left no row');

###########################################################################
# 2. wait_for_slot => '500 ms': retries, then fails with 53000 after about
# half a second (the upper bound leaves room for a loaded machine and for
# psql's own start).
###########################################################################

($err, $elapsed) = psql_error($node,
	"SELECT dynbgw_launch($next, naptime => '1 hour', wait_for_slot => '500 ms');");
like($err, qr/ERROR:  53000: could not register dynbgw worker $next/,
	'still no free slot after waiting: fails with 53000');
note sprintf("wait_for_slot 500 ms failed after %.3f s", $elapsed);
cmp_ok($elapsed, '>=', 0.4, 'after waiting about 500 ms');
cmp_ok($elapsed, '<', 5, 'but not much longer');
is($node->safe_psql('postgres', "SELECT count(*) FROM dynbgw_workers WHERE n = $next"),
	'0', 'the failed launch left no row');

###########################################################################
# 3. wait_for_slot => '20 s' succeeds once another session stops a worker.
#
# The launch runs in a background session.  While it waits, its number is
# reserved ('starting', no PID) and the session waits on its latch; once
# seen in that state, worker 1 is stopped from another session, and the
# waiting launch must return a PID.
###########################################################################

my ($bg, $bg_pid) =
  launch_waiting($next, 'the launch waits for a slot, its number reserved');

my $t0 = time();
is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 1)'),
	't', 'another session stops worker 1, freeing a slot');
my ($out, $failed) = $bg->query("SELECT 'done'");
$elapsed = time() - $t0;
my ($new_pid) = $out =~ /^(\d+)\ndone$/;
ok(!$failed, 'the waiting launch did not fail');
ok(defined $new_pid, 'the waiting launch returned a PID')
  or diag "output: $out";
note sprintf("the waiting launch returned %.3f s after the stop began", $elapsed);
cmp_ok($elapsed, '<', 10, 'soon after the slot was freed');
is( $node->safe_psql(
		'postgres',
		"SELECT pid, state FROM dynbgw_workers WHERE n = $next"),
	(defined $new_pid ? $new_pid : '') . '|idle',
	'the new worker is listed, ready');
is($node->safe_psql('postgres', 'SELECT count(*) FROM dynbgw_workers'),
	$free, 'every slot is taken again');
$bg->quit;

# And the slots are full again: the next launch fails at once.
($err) = psql_error($node,
	"SELECT dynbgw_launch(8, naptime => '1 hour');");
like($err, qr/ERROR:  53000: could not register dynbgw worker 8/,
	'with all slots taken again, a launch fails with 53000');

###########################################################################
# 4. A launch cancelled while it waits for a slot gives up its number:
# no row stays behind, and the number can be launched later.
###########################################################################

($bg, $bg_pid) = launch_waiting(8, 'a second launch waits for a slot');
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($bg_pid)"),
	't', 'the waiting launch is cancelled');
($out, $failed) = $bg->query("SELECT 'done'");
ok($failed, 'the cancelled launch failed');
is($out, 'done', 'without returning a PID');
$bg->quit;
is($node->safe_psql('postgres', 'SELECT count(*) FROM dynbgw_workers WHERE n = 8'),
	'0', 'the cancelled launch left no row');

is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 2)'),
	't', 'freeing a slot');
like($node->safe_psql('postgres', "SELECT dynbgw_launch(8, naptime => '1 hour')"),
	qr/^\d+$/, 'the number of the cancelled launch can be launched');

###########################################################################
# 5. A launch that waits for a slot can be stopped by number from another
# session: the launch fails at once with 57014, the stop returns true, and
# the number is free.
###########################################################################

($err) = psql_error($node, "SELECT dynbgw_launch(7, naptime => '1 hour');");
like($err, qr/ERROR:  53000/, 'the slots are full again');
($bg) = launch_waiting(7, 'a launch of worker 7 waits for a slot');
$t0 = time();
is($node->safe_psql('postgres', "SELECT dynbgw_stop(n => 7, timeout => '10 s')"),
	't', 'stopping the waiting launch by number returns true');
cmp_ok(time() - $t0, '<', 5, 'at once, not after the timeout');
($out, $failed) = $bg->query("SELECT 'done'");
ok($failed, 'the stopped launch failed');
like($bg->{stderr}, qr/dynbgw worker 7 was stopped before it was ready/,
	'saying it was stopped');
$bg->quit;
is($node->safe_psql('postgres', 'SELECT count(*) FROM dynbgw_workers WHERE n = 7'),
	'0', 'the stopped launch left no row');

###########################################################################
# 6. Stopping a worker that waits to be restarted frees its background
# worker slot at once, not when the restart would have been due (an hour
# here): a launch right after it gets the slot.  wait_for_slot only covers
# the moment the postmaster takes to act on the stop.
###########################################################################

is($node->safe_psql('postgres',
		'SELECT dynbgw_stop(n => min(n)) FROM dynbgw_workers'),
	't', 'freeing a slot');
my $pid2 = $node->safe_psql('postgres',
	q{SELECT dynbgw_launch(2, 'SET exit_on_error = on; SELECT 1/0',
	                       naptime => '1 hour', restart => '1 hour')});
like($pid2, qr/^\d+$/, 'worker 2 launched with restart => 1 hour; it dies in its first run');
ok( $node->poll_query_until(
		'postgres', q{SELECT state = 'restarting' FROM dynbgw_workers WHERE n = 2}),
	'worker 2 waits to be restarted, still holding its slot');
($err) = psql_error($node, "SELECT dynbgw_launch(7, naptime => '1 hour');");
like($err, qr/ERROR:  53000/, 'so no slot is free');
is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 2)'),
	't', 'stopping worker 2 by number cancels its restart');
like($node->safe_psql('postgres',
		q{SELECT dynbgw_launch(7, naptime => '1 hour', wait_for_slot => '5 s')}),
	qr/^\d+$/, 'and frees its slot for the next launch');

$node->stop;
done_testing();
