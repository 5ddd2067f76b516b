# Copyright (c) dynbgw authors
# slow: about 24 s

# Faults around dynbgw workers: signals, cancels, a launching session that
# dies while it waits, a server restart, a worker that fails on start, and
# no free max_worker_processes slot.
#
# After every fault the registry must be exact: the rows of dynbgw_workers
# are the dynbgw processes of pg_stat_activity (same PIDs, application_name
# "dynbgw worker N"), no row is stale or missing, every worker number can be
# launched again, and no stopped or killed worker's process is left.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

# ---- helpers ----

# The command line of a process of either node: what gone() takes for a
# process still there.
my $ours = qr/^postgres: faults: |^postgres: small: /;

# Every worker number can be launched again (no slot leaked), is listed
# exactly, stops by number, and leaves no process once the stop returns.
sub all_numbers_launchable
{
	my ($node, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is(join("\n", launch_each_number($node, $ours)),
		'', "$what: every number 1..8 launches and stops again");
	registry_is($node, [], "$what: after launching every number again");
}

# Pump a background psql until its stderr matches, or it exits, or times out.
sub bg_wait_stderr
{
	my ($bg, $re) = @_;
	pump_until($bg->{run}, $bg->{timeout}, \$bg->{stderr}, $re);
	return $bg->{stderr};
}

# ---- the node ----

my $node = new_node('faults', max_worker_processes => 16);
my $datadir = $node->data_dir;

registry_is($node, [], 'fresh server');

# ---- (a) SIGTERM and pg_terminate_backend stop a worker for good ----

# A worker killed with SIGTERM from outside exits cleanly (exit status 0),
# leaves the registry, and is not restarted although it has a restart delay.
my $pid1 = $node->safe_psql('postgres',
	"SELECT dynbgw_launch(1, naptime => '1 hour', restart => '1 s')");
like($pid1, qr/^\d+$/, 'worker 1 launched with a restart delay');
registry_is($node, [1], 'worker 1 running');
is(scalar(() = glob("$datadir/pg_dynbgw/worker_1_*")), 1,
	'a restartable worker has its definition saved');

ok(kill('TERM', $pid1), 'SIGTERM sent to worker 1');
process_gone($pid1, $ours, 'SIGTERM');
registry_is($node, [], 'after SIGTERM');
stays_gone($node, 1, 3, 'SIGTERM with restart => 1 s');
is(scalar(() = glob("$datadir/pg_dynbgw/worker_1_*")), 0,
	'the saved definition of a stopped worker is removed');

# pg_terminate_backend() of a worker in the middle of a run: the run is
# cancelled, the worker exits cleanly and is not restarted either.
my $pid2 = $node->safe_psql('postgres',
	"SELECT dynbgw_launch(2, 'SELECT pg_sleep(3600)', naptime => '1 hour', restart => '1 s')"
);
$node->poll_query_until('postgres',
	"SELECT state FROM pg_stat_activity WHERE pid = $pid2", 'active');
is($node->safe_psql('postgres', "SELECT state FROM dynbgw_workers WHERE n = 2"),
	'running', 'worker 2 is in its pg_sleep run');
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid2)"),
	't', 'pg_terminate_backend() of worker 2');
process_gone($pid2, $ours, 'pg_terminate_backend');
registry_is($node, [], 'after pg_terminate_backend');
stays_gone($node, 2, 3, 'pg_terminate_backend with restart => 1 s');

# Worker 1, stopped between runs, exited cleanly: the postmaster reports a
# non-zero exit status of a background worker, and it reported none for it.
# Worker 2, stopped in the middle of a run, was terminated as a backend is,
# through FATAL (which no exception handler in a command can catch): exit
# status 1, and no restart.
my $log = slurp_file($node->logfile);
unlike($log, qr/\(PID $pid1\) exited with exit code/,
	'worker 1 exited with status 0');
like($log, qr/\[$pid2\] FATAL:  terminating background worker "dynbgw" due to administrator command/,
	'worker 2 was terminated in its run');
all_numbers_launchable($node, 'after SIGTERM and pg_terminate_backend');

# ---- (b) pg_cancel_backend cancels the current run only ----

my $pid3 = $node->safe_psql('postgres',
	"SELECT dynbgw_launch(3, 'SELECT pg_sleep(3600)', naptime => '1 hour')");
$node->poll_query_until('postgres',
	"SELECT state FROM pg_stat_activity WHERE pid = $pid3", 'active');
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid3)"),
	't', 'pg_cancel_backend() of worker 3 in its run');

# The run fails and is counted; the worker stays, with the same process,
# and waits for its next run.
$node->poll_query_until('postgres',
	"SELECT runs = 1 AND failures = 1 FROM dynbgw_workers WHERE n = 3");
is( $node->safe_psql(
		'postgres',
		"SELECT pid, state, runs, failures, last_error FROM dynbgw_workers WHERE n = 3"
	),
	"$pid3|idle|1|1|canceling statement due to user request",
	'the cancelled run counts as a failure; same worker, now idle');
ok(kill(0, $pid3), 'worker 3 process still alive after the cancel');
registry_is($node, [3], 'after pg_cancel_backend');

# A cancel between runs has nothing to cancel: the worker is unaffected.
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid3)"),
	't', 'pg_cancel_backend() of worker 3 while idle');
registry_is($node, [3], 'after a cancel while idle');
is( $node->safe_psql(
		'postgres',
		"SELECT pid, state, runs, failures FROM dynbgw_workers WHERE n = 3"),
	"$pid3|idle|1|1",
	'a cancel while idle changes nothing');
is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 3)'),
	't', 'worker 3 stopped');
process_gone($pid3, $ours, 'stop after cancels');
registry_is($node, [], 'after stopping worker 3');

# ---- (c) the launching session dies while the worker starts ----
#
# Also: a stop from a third session, and if_running => 'skip', while the
# worker is still starting.

# A worker's connection takes a lock on its database.  ALTER DATABASE ...
# RENAME holds an ACCESS EXCLUSIVE lock on it until its transaction ends, so
# a worker launched into that database blocks while starting, and its
# launcher waits for it.
$node->safe_psql('postgres', 'CREATE DATABASE blocked');
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; ALTER DATABASE blocked RENAME TO blocked_new');

# Launch worker $n into the locked database and wait until the worker waits
# for the lock.  Returns the launching session, its backend's PID and the
# worker's PID.
sub launch_blocked
{
	my ($n) = @_;
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $bpid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->query_until(qr/launching/,
		"\\echo launching\n\\set VERBOSITY verbose\nSELECT 'pid=' || dynbgw_launch($n, naptime => '1 hour', database => 'blocked');\n"
	);
	$node->poll_query_until(
		'postgres', qq{
SELECT count(*) FROM pg_locks l JOIN dynbgw_workers w ON w.pid = l.pid
 WHERE w.n = $n AND w.state = 'starting' AND NOT l.granted
   AND l.locktype = 'object' AND l.classid = 'pg_database'::regclass},
		'1');
	my $wpid = $node->safe_psql('postgres',
		"SELECT pid FROM dynbgw_workers WHERE n = $n");
	is( $node->safe_psql(
			'postgres',
			"SELECT wait_event_type FROM pg_stat_activity WHERE pid = $bpid"),
		'Extension',
		"worker $n blocks while starting, its launcher waits");
	return ($bg, $bpid, $wpid);
}

# While the lock is held, the view lists worker 3 alone: it still starts
# and is not in pg_stat_activity yet, so registry_is() does not apply.
sub only_worker_3_listed
{
	my ($what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $sql = "SELECT string_agg(n || ' ' || state, ',' ORDER BY n) FROM dynbgw_workers";
	$node->poll_query_until('postgres', $sql, '3 starting');
	is($node->safe_psql('postgres', $sql),
		'3 starting', "$what: only the starting worker 3 is listed");
}

# Worker 3 blocks while starting; a second session launches it with
# if_running => 'skip', which waits for the launch in progress to finish.
my ($bg3, $bpid3, $wpid3) = launch_blocked(3);
my $skipper = $node->background_psql('postgres', on_error_stop => 0);
my $skipper_pid = $skipper->query_safe('SELECT pg_backend_pid()');
$skipper->query_until(qr/skipping/,
	"\\echo skipping\nSELECT 'skip=' || coalesce(dynbgw_launch(3, naptime => '1 hour', if_running => 'skip')::text, 'null');\n"
);
$node->poll_query_until('postgres',
	"SELECT wait_event_type FROM pg_stat_activity WHERE pid = $skipper_pid",
	'Extension');
pass('if_running => skip waits while worker 3 starts');

# The launcher is terminated while it waits.
my ($bg4, $bpid4, $wpid4) = launch_blocked(4);
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($bpid4)"),
	't', 'launching backend terminated while worker 4 starts');
like(
	bg_wait_stderr($bg4, qr/terminating connection|server closed/),
	qr/terminating connection due to administrator command|server closed the connection/,
	'the launching session is gone');
process_gone($bpid4, $ours, 'terminated launcher');
bg_end($bg4);

# Nothing may stay behind: neither the worker's slot nor its process, even
# though the database lock the worker waited for is still held.
process_gone($wpid4, $ours,
	'worker 4 of the terminated launcher, lock still held');
only_worker_3_listed('after the launcher of worker 4 was terminated');

# The launcher is cancelled while it waits: the launch fails with 57014.
my ($bg5, $bpid5, $wpid5) = launch_blocked(5);
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($bpid5)"),
	't', 'launching backend cancelled while worker 5 starts');
like(
	bg_wait_stderr($bg5, qr/ERROR/),
	qr/ERROR:  57014: canceling statement due to user request/,
	'the cancelled launch fails with 57014');
bg_end($bg5);
process_gone($wpid5, $ours,
	'worker 5 of the cancelled launch, lock still held');
only_worker_3_listed('after the launch of worker 5 was cancelled');

# A third session stops a worker that is still starting: the stop returns
# true once the worker is gone, and the launch fails with 57014.
my ($bg6, $bpid6, $wpid6) = launch_blocked(6);
is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 6)'),
	't', 'dynbgw_stop(n => 6) of a worker that is still starting');
ok(gone($wpid6, $ours), 'the starting worker 6 is gone when the stop returns');
like(
	bg_wait_stderr($bg6, qr/ERROR/),
	qr/ERROR:  57014: dynbgw worker 6 was stopped before it was ready/,
	'its launch fails with 57014');
bg_end($bg6);
only_worker_3_listed('after worker 6 was stopped while starting');

# Release the lock.
$locker->query_safe('ROLLBACK');
$locker->quit;

# Worker 3 becomes ready: its launch returns its PID, and the skipping
# launch returns the same PID.
ok(pump_until($bg3->{run}, $bg3->{timeout}, \$bg3->{stdout}, qr/pid=\d+/),
	'the launch of worker 3 returns once the lock is released');
like($bg3->{stdout}, qr/pid=$wpid3\b/, 'with the PID of the worker');
bg_end($bg3);
pump_until($skipper->{run}, $skipper->{timeout}, \$skipper->{stdout},
	qr/skip=\S+/);
like($skipper->{stdout}, qr/skip=$wpid3\b/,
	'if_running => skip returns the PID once worker 3 is ready');
$skipper->quit;

is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 3)'),
	't', 'worker 3 stopped');
process_gone($wpid3, $ours, 'worker 3');

registry_is($node, [], 'after the launching sessions died');
all_numbers_launchable($node, 'after launchers died during startup');

# ---- (d) a clean server restart ----

# A SQL worker, a restartable SQL worker running a command, and a library
# entry point.
my @pids = map {
	$node->safe_psql('postgres', $_)
} (
	"SELECT dynbgw_launch(1, naptime => '1 hour')",
	"SELECT dynbgw_launch(2, 'SELECT 1', naptime => '100 ms', restart => '1 s')",
	"SELECT dynbgw_launch_function(3, 'dynbgw', 'dynbgw_sleep_main', database => 'postgres')"
);
registry_is($node, [ 1, 2, 3 ], 'before the restart');

$node->restart;
process_gone($_, $ours, 'server restart') for @pids;
registry_is($node, [], 'after the restart');
stays_gone($node, 2, 2, 'restartable worker after a clean restart');
my @saved = glob("$datadir/pg_dynbgw/worker_*");
is("@saved", '', 'no saved worker definition survives a clean restart');
all_numbers_launchable($node, 'after the restart');

# ---- (e) a worker that fails while it starts ----

my $log_offset = -s $node->logfile;

# The worker cannot connect to a database that does not accept connections:
# the launch fails with the worker's own message.
$node->safe_psql('postgres', 'CREATE DATABASE closed ALLOW_CONNECTIONS false');
my ($ret, $out, $err) =
  psql_verbose($node, "SELECT dynbgw_launch(6, database => 'closed')");
isnt($ret, 0, 'launch into a database without connections fails');
like($err, qr/not currently accepting connections/,
	'the error carries the worker\'s message');
like($err, qr/dynbgw worker 6/, 'the error names the worker');
registry_is($node, [], 'after a worker failed to start');

# The same with a restart delay: the failed launch is not restarted later.
($ret, $out, $err) = psql_verbose($node,
	"SELECT dynbgw_launch(6, database => 'closed', restart => '1 s')");
like($err, qr/not currently accepting connections/,
	'a restartable worker that fails to start fails the launch');
registry_is($node, [], 'after a restartable worker failed to start');
stays_gone($node, 6, 3, 'restartable worker that failed to start');

# Every failing worker's process is gone (the postmaster logs their PIDs).
$log = substr(slurp_file($node->logfile), $log_offset);
my @failed = $log =~ /background worker "dynbgw" \(PID (\d+)\) exited with exit code 1/g;
cmp_ok(scalar(@failed), '>=', 2, 'the failed workers exited with status 1');
process_gone($_, $ours, 'worker that failed to start') for @failed;
@saved = glob("$datadir/pg_dynbgw/worker_*");
is("@saved", '', 'failed launches leave no saved worker definition');
all_numbers_launchable($node, 'after workers failed to start');

# ---- (f) no free max_worker_processes slot ----

# A node with only 4 background worker slots.
my $small = new_node('small', max_worker_processes => 4);
$small->safe_psql('postgres', 'CREATE EXTENSION pg_prewarm');

# pg_prewarm starts its autoprewarm leader as a dynamic background worker,
# without being preloaded.  A second start names the running one's PID
# once the leader has said it runs; asked before, it starts another that
# exits at once, so ask until the answer comes, within the usual timeout.
$small->safe_psql('postgres', 'SELECT autoprewarm_start_worker()');
my $apw_pid;
my $apw_deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
while (!defined $apw_pid && time() < $apw_deadline)
{
	($ret, $out, $err) =
	  $small->psql('postgres', 'SELECT autoprewarm_start_worker()');
	($apw_pid) = $err =~ /already running under PID (\d+)/;
}
ok(defined $apw_pid && kill(0, $apw_pid),
	'another extension\'s dynamic worker (autoprewarm leader) runs');

# The slots left after the logical replication launcher and autoprewarm
# are filled with dynbgw entry points.
my $launchers = launcher_slots($small);
my $free = 4 - 1 - $launchers;
cmp_ok($free, '>=', 1, "$free background worker slots left");
my @fill;
push @fill,
  $small->safe_psql('postgres',
	"SELECT dynbgw_launch_function($_, 'dynbgw', 'dynbgw_sleep_main', database => 'postgres')"
  )
  for 1 .. $free;
registry_is($small, [ 1 .. $free ], 'all background worker slots taken');

# Now a launch fails with 53000 and a hint about max_worker_processes, and
# registers nothing.
($ret, $out, $err) = psql_verbose($small, 'SELECT dynbgw_launch(7)');
like($err, qr/ERROR:  53000:/, 'no free slot: SQLSTATE 53000');
like($err, qr/HINT:.*max_worker_processes/, 'the hint names max_worker_processes');
registry_is($small, [ 1 .. $free ], 'the failed launch registered nothing');

# With wait_for_slot it retries for that long, then fails the same way.
my $t0 = time();
($ret, $out, $err) =
  psql_verbose($small, "SELECT dynbgw_launch(7, wait_for_slot => '1 s')");
my $waited = time() - $t0;
like($err, qr/ERROR:  53000:/, 'wait_for_slot expired: SQLSTATE 53000');
cmp_ok($waited, '>=', 0.9, 'the launch waited for a slot');
registry_is($small, [ 1 .. $free ], 'the expired wait registered nothing');

# A launcher terminated while it waits for a slot leaves nothing either.
my $bg7 = $small->background_psql('postgres', on_error_stop => 0);
my $bpid7 = $bg7->query_safe('SELECT pg_backend_pid()');
$bg7->query_until(qr/launching/,
	"\\echo launching\nSELECT dynbgw_launch(7, wait_for_slot => '10 min');\n");
$small->poll_query_until('postgres',
	"SELECT state = 'starting' AND pid IS NULL FROM dynbgw_workers WHERE n = 7");
is($small->safe_psql('postgres', "SELECT pg_terminate_backend($bpid7)"),
	't', 'launcher waiting for a slot terminated');
bg_wait_stderr($bg7, qr/terminating connection|server closed/);
bg_end($bg7);
registry_is($small, [ 1 .. $free ],
	'after the launcher waiting for a slot was terminated');

# A launch waiting for a slot gets the one autoprewarm frees.
my $bg8 = $small->background_psql('postgres');
$bg8->query_until(qr/launching/,
	"\\echo launching\nSELECT 'pid=' || dynbgw_launch(8, wait_for_slot => '10 min');\n"
);
$small->poll_query_until('postgres',
	"SELECT state FROM dynbgw_workers WHERE n = 8", 'starting');
ok(kill('TERM', $apw_pid), 'autoprewarm leader stopped');
ok(pump_until($bg8->{run}, $bg8->{timeout}, \$bg8->{stdout}, qr/pid=\d+/),
	'the waiting launch got the freed slot');
my ($pid8) = $bg8->{stdout} =~ /pid=(\d+)/;
$bg8->quit;
process_gone($apw_pid, $ours, 'autoprewarm leader');
registry_is($small, [ 1 .. $free, 8 ], 'worker 8 runs in the freed slot');

# Stopping everything frees all slots; every number launches again.
is( $small->safe_psql(
		'postgres',
		'SELECT count(*) FILTER (WHERE dynbgw_stop(n => n)) FROM dynbgw_workers'),
	$free + 1,
	'all workers stopped');
process_gone($_, $ours, 'stopped entry point') for (@fill, $pid8);
registry_is($small, [], 'after stopping all');
all_numbers_launchable($small, 'after slots ran out');

# No warning, leak report or crash in either server log.
log_is_clean($_) for ($node, $small);

$small->stop;
$node->stop;
done_testing();
