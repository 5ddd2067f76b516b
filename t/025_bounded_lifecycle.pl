
# Copyright (c) dynbgw authors
# slow: about 28 s

# Every wait ends, every worker stops, and a call's memory is bounded.
#
# - if_running => 'skip' and 'replace' on a number stuck in 'stopping'
#   (its worker stalled with SIGSTOP) fail after 10 seconds with 55006.
# - A library's entry point written to PostgreSQL's plain contract (it never
#   checks for interrupts) is stopped by dynbgw_stop and by a fast shutdown.
# - A crash-restart while a launch waits for its worker leaves nothing: the
#   worker is not brought back, because its launch never returned.
# - A launch that fails at the worker's start says why, even with
#   log_min_messages = panic.
# - dynbgw_wait answers for the launch it waited on, or says it cannot.
# - dynbgw_runs takes the same backend memory whatever the history's size.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = new_node('main',
	conf => "restart_after_crash = on\ndynbgw.history_size = 30000");
my $ours = qr/^postgres: main: /;

# Processes stalled with SIGSTOP are always let go again.
my @stalled;
END { kill('CONT', @stalled) if @stalled; }

###########################################################################
# 1. A number stuck in 'stopping': skip and replace give up after 10 s.
###########################################################################

my $pid1 = $node->safe_psql('postgres', "SELECT dynbgw_launch(1, naptime => '1 hour')");
kill('STOP', $pid1);
push @stalled, $pid1;
$node->psql('postgres', "SELECT dynbgw_stop(n => 1, timeout => '100 ms')");
is($node->safe_psql('postgres', 'SELECT state FROM dynbgw_workers WHERE n = 1'),
	'stopping', '1: worker 1, stalled, is stuck in stopping');
for my $mode ('skip', 'replace')
{
	my ($err, $took) = psql_error($node,
		"SELECT dynbgw_launch(1, naptime => '1 hour', if_running => '$mode')",
		"1: if_running => '$mode' fails");
	like($err, qr/ERROR:  55006: dynbgw worker 1 is still "stopping"/,
		"1: $mode: 55006, naming the state");
	ok($took >= 9 && $took < 30, "1: $mode: after about 10 seconds (took $took s)");
}
kill('CONT', $pid1);
@stalled = ();
process_gone($pid1, $ours, '1: let go, worker 1');
registry_is($node, [], '1: after the stop');

###########################################################################
# 2. An entry point that never checks for interrupts stops.
###########################################################################

my $pid2 = $node->safe_psql('postgres',
	"SELECT dynbgw_launch_function(2, 'dynbgw', 'dynbgw_sleep_main')");
my $t0 = time();
is($node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 2)'),
	't', '2: dynbgw_stop stops dynbgw_sleep_main');
ok(time() - $t0 < 5, '2: at once');
process_gone($pid2, $ours, '2: its process');

###########################################################################
# 3. A crash-restart while the launcher waits: the worker does not come
# back.  The worker blocks while it connects to a database that another
# session renames in an open transaction; then a backend is killed.
###########################################################################

$node->safe_psql('postgres', 'CREATE DATABASE blocked');
my $holder = $node->background_psql('postgres', on_error_stop => 0);
$holder->query_safe('BEGIN; ALTER DATABASE blocked RENAME TO blocked_now');
my $launcher = $node->background_psql('postgres', on_error_stop => 0);
$launcher->query_until(qr/launching/,
	"\\echo launching\nSELECT dynbgw_launch(3, naptime => '1 hour', database => 'blocked', restart => '1 s');\n");
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM dynbgw_workers WHERE n = 3 AND state = 'starting' AND pid IS NOT NULL}),
	'3: worker 3 is starting, its launcher waiting');
my $offset = -s $node->logfile;
my $victim = $node->safe_psql('postgres', "SELECT dynbgw_launch(4, naptime => '1 hour')");
kill('KILL', $victim);
wait_crash_restart($node, $offset);
ok($node->poll_query_until('postgres', 'SELECT true'), '3: the server is back');
bg_end($holder);
bg_end($launcher);
stays_gone($node, 3, 5, '3: a launch that never returned');

###########################################################################
# 4. Why a worker could not start, whatever log_min_messages says.
###########################################################################

$node->safe_psql('postgres', q{
	CREATE DATABASE closed; ALTER DATABASE closed ALLOW_CONNECTIONS false;
	ALTER SYSTEM SET log_min_messages = panic; SELECT pg_reload_conf();});
my $err4 = psql_error($node, "SELECT dynbgw_launch(5, naptime => '1 hour', database => 'closed')",
	'4: a launch into a database that accepts no connections fails');
like($err4, qr/not currently accepting connections/,
	'4: with log_min_messages = panic the error says why');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET log_min_messages; SELECT pg_reload_conf();');

###########################################################################
# 5. dynbgw_wait answers for the launch it waited on.  The waiter is stalled
# while three launches of worker 6 end, then let go.
###########################################################################

$node->safe_psql('postgres', "SELECT dynbgw_launch(6, naptime => '1 hour')");
my $waiter = $node->background_psql('postgres', on_error_stop => 0);
my $wpid = $waiter->query_safe('SELECT pg_backend_pid()');
$waiter->query_until(qr/waiting/, "\\echo waiting\n\\set VERBOSITY verbose\nSELECT * FROM dynbgw_wait(6);\n");
ok($node->poll_query_until('postgres',
		"SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $wpid"),
	'5: the waiter waits');
kill('STOP', $wpid);
push @stalled, $wpid;
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 6)');
for (1 .. 2)
{
	$node->safe_psql('postgres', "SELECT dynbgw_launch(6, naptime => '1 hour')");
	$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 6)');
}
kill('CONT', $wpid);
@stalled = ();
my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
while (time() < $deadline && ($waiter->{stderr} . $waiter->{stdout}) !~ /ERROR|^6\|/m)
{
	$waiter->{run}->pump_nb();
	Time::HiRes::usleep(50_000);
}
like($waiter->{stderr},
	qr/ERROR:  55000: how the launch of dynbgw worker 6 that was waited for ended is no longer known/,
	'5: the waiter says it cannot answer for its launch, rather than for a later one');
bg_end($waiter);

###########################################################################
# 6. dynbgw_runs' memory does not grow with the history: 30000 runs, and
# the backend's private memory read while the rows are held.
###########################################################################

$node->safe_psql('postgres', q{
	SELECT dynbgw_launch(7, 'SELECT 1', naptime => '0');
	SELECT dynbgw_launch(8, 'SELECT 1', naptime => '0');});
ok($node->poll_query_until('postgres', 'SELECT count(*) >= 30000 FROM dynbgw_runs'),
	'6: the history is full');
$node->safe_psql('postgres', 'SELECT dynbgw_stop(n => 7), dynbgw_stop(n => 8)');

# A field of /proc/PID/status, in kB.
sub status_kb
{
	my ($pid, $field) = @_;
	return slurp_file("/proc/$pid/status") =~ /^$field:\s+(\d+) kB/m ? $1 : -1;
}

# The peak resident size of one call, past what the session had: Linux
# resets the peak (VmHWM) to the present size when asked to.
my $reader = $node->background_psql('postgres');
my $rpid = $reader->query_safe('SELECT pg_backend_pid()');
$reader->query_safe("SET work_mem = '64kB'");
$reader->query_safe('SELECT count(*) FROM dynbgw_runs');    # maps the ring
my $rss_before = status_kb($rpid, 'VmRSS');
open(my $clear, '>', "/proc/$rpid/clear_refs") or die "clear_refs: $!";
print $clear "5";
close($clear);
is($reader->query_safe('SELECT count(*) >= 30000 FROM dynbgw_runs'), 't', '6: 30000 runs read');
my $peak = status_kb($rpid, 'VmHWM');
note "VmRSS before $rss_before kB, peak while reading $peak kB";
ok($rss_before > 0 && $peak - $rss_before < 6000,
	'6: reading 30000 runs took less than 6 MB more');
$reader->quit;

# Section 1's stop times out with a WARNING by design; nothing else may.
unlike(slurp_file($node->logfile), qr/PANIC|TRAP|leaked/, 'no crash or leak in the log');
$node->stop('fast');
done_testing();
