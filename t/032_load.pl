# Copyright (c) dynbgw authors
# slow: about 45 s

# Concurrency and load on loopback.
#
# First, sessions racing for one worker number: of 8 simultaneous launches
# of worker 1 exactly one gets a PID and the others fail with 42710; of 8
# simultaneous stops of it at least one returns true and none fails: every
# stop that finds the worker waits until it is gone and returns true, one
# that finds nothing returns false.
#
# Then 40 seconds of pgbench with 8 clients launching, listing and stopping
# random worker numbers (t/load_*.sql).  Only the errors concurrent sessions
# legitimately cause each other may occur (see t/load_setup.sql); afterwards
# the registry is exact, every worker stops, no process is left, every
# number launches again, and the server log is clean.
#
# Launches use if_running 'error', 'skip' and 'replace'.  A client stuck in
# a call (as 'skip' and 'replace' were before f0c15d4) shows as pgbench not
# finishing; the test then lists what the sessions wait for.
#
# The node has max_worker_processes = 8: the logical replication launcher
# and 7 workers, fewer than the 8 worker numbers, so that launches also run
# out of slots (53000) under load.

use strict;
use warnings;

use File::Basename qw(dirname);
use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $timeout = $PostgreSQL::Test::Utils::timeout_default;
my $dir = dirname(__FILE__);
my $load_seconds = 40;

# The command line of a dynbgw worker: what gone() takes for a process
# still there.
my $worker = qr/dynbgw worker/;

my $node = new_node(
	'load032',
	max_worker_processes => 8,
	conf => 'max_connections = 50');
$node->safe_psql('postgres', slurp_file("$dir/load_setup.sql"));

# ---- sessions racing for worker 1 ----

# Start $count psql processes that each wait for the advisory lock the test
# holds and then run $sql, release them all at once, and return their
# (stdout, stderr) pairs.
sub race
{
	my ($count, $sql) = @_;
	my $holder = $node->background_psql('postgres');
	$holder->query_safe('SELECT pg_advisory_lock(4242)');
	my @runs;
	for my $i (1 .. $count)
	{
		my %r = (out => '', err => '');
		$r{h} = IPC::Run::start(
			[
				'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1',
				'-v', 'VERBOSITY=verbose',
				'-c', 'SELECT pg_advisory_lock_shared(4242)',
				'-c', $sql,
				'-d', $node->connstr('postgres')
			],
			'<', \undef, '>', \$r{out}, '2>', \$r{err},
			IPC::Run::timeout($timeout));
		push @runs, \%r;
	}
	# All of them wait for the lock: release it.
	$node->poll_query_until('postgres',
		"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
		$count);
	$holder->query_safe('SELECT pg_advisory_unlock(4242)');
	$holder->quit;
	$_->{h}->finish for @runs;
	return map { [ $_->{out}, $_->{err} ] } @runs;
}

my @results = race(8, "SELECT dynbgw_launch(1, naptime => '1 hour')");
my @pids = grep { defined } map { $_->[0] =~ /^(\d+)$/m ? $1 : undef } @results;
my @dups = grep { $_->[1] =~ /ERROR:  42710: dynbgw worker 1 is already running/ }
  @results;
is(scalar(@pids), 1, '8 simultaneous launches of worker 1: one gets a PID');
is(scalar(@dups), 7, 'the 7 others fail with 42710')
  or diag(explain(\@results));
is($node->safe_psql('postgres', 'SELECT dynbgw_pid(1)'),
	$pids[0] // '', 'the winner\'s PID is worker 1');
registry_is($node, [1], 'after the launch race');

@results = race(8, "SELECT dynbgw_stop(n => 1)");
my @stopped = map { $_->[0] =~ /^([tf])$/m ? $1 : '?' } @results;
# Every stop either stopped the worker (true) or found it gone (false, with
# a NOTICE); at least one stopped it.
like(join('', sort @stopped), qr/^f*t+$/,
	'8 simultaneous stops of worker 1: each returns true or false, at least one true')
  or diag(explain(\@results));
is(join('', map { $_->[1] } grep { $_->[1] =~ /ERROR/ } @results),
	'', 'no stop failed');
registry_is($node, [], 'after the stop race');
is(scalar(wait_gone($worker, @pids)), 0, 'worker 1\'s process is gone');

# ---- a minute of load ----

my @cmd = (
	'pgbench', '-n', '-M', 'simple', '-c', '8', '-j', '8',
	'-T', $load_seconds,
	'-f', "$dir/load_launch.sql\@4",
	'-f', "$dir/load_list.sql\@3",
	'-f', "$dir/load_stop.sql\@3",
	$node->connstr('postgres'));
my ($out, $err) = ('', '');
my $t0 = time();
my $pgbench = IPC::Run::start(\@cmd, '<', \undef, '>', \$out, '2>', \$err);
my $deadline = time() + $load_seconds + 60;
while ($pgbench->pumpable && time() < $deadline)
{
	$pgbench->pump_nb;
	usleep(100_000);
}
my $hung = $pgbench->pumpable;
if ($hung)
{
	# Say what the sessions wait for before ending them.
	diag "pgbench did not finish; sessions:\n"
	  . $node->safe_psql('postgres',
		"SELECT pid, state, wait_event_type, wait_event, query FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
	  )
	  . "\nworkers:\n"
	  . $node->safe_psql('postgres',
		'SELECT n, pid, state, launched_by_pid FROM dynbgw_workers');
	$pgbench->kill_kill;
}
else
{
	$pgbench->finish;
}
note sprintf('pgbench ran %.1f s', time() - $t0);
note "pgbench output:\n$out$err";
ok(!$hung, 'pgbench finished in time');
ok(!$hung && $pgbench->result == 0, 'pgbench exit status 0');
unlike("$out$err", qr/aborted/, 'no client aborted');
like($out, qr/number of transactions actually processed: \d+/,
	'pgbench processed transactions');

# What the clients did, and which errors they met.
my %count;
for my $row (
	split /\n/,
	$node->safe_psql(
		'postgres',
		"SELECT op || ' ' || sqlstate || ' ' || count(*) FROM load_events GROUP BY op, sqlstate"
	))
{
	my ($op, $st, $c) = split / /, $row;
	$count{"$op $st"} = $c;
}
note "events: " . join(', ', map { "$_: $count{$_}" } sort keys %count);
my %errors;
for (keys %count)
{
	my ($op, $st) = split / /;
	$errors{$st} += $count{$_} if $st ne '00000';
}
note sprintf(
	'launches %d, stops %d (%d found nothing), lists %d, 42710 %d, 53000 %d, 57014 %d',
	$count{'launch 00000'} // 0,
	($count{'stop 00000'} // 0) + ($count{'stop_none 00000'} // 0),
	$count{'stop_none 00000'} // 0,
	$count{'list 00000'} // 0,
	$errors{42710} // 0,
	$errors{53000} // 0,
	$errors{57014} // 0);
# 53000 while the view listed fewer workers than there are slots for them
# (8 - the logical replication launcher): the slots of workers that already
# left the registry are freed only when the postmaster has reaped them.
note 'launches failing with 53000, by the number of workers listed then: '
  . $node->safe_psql('postgres',
	"SELECT string_agg(listed || ': ' || c, ', ' ORDER BY listed) FROM (SELECT listed, count(*) c FROM load_events WHERE sqlstate = '53000' GROUP BY listed) s"
  );
is(join(' ', grep { !/^(42710|53000|57014)$/ } sort keys %errors),
	'', 'the only errors were 42710, 53000 and 57014 (stopped while starting)');
cmp_ok($count{'launch 00000'} // 0, '>', 100, 'many launches succeeded');
cmp_ok($count{'stop 00000'} // 0, '>', 100, 'many workers were stopped');

# ---- after the load ----

# Every worker listed is a live dynbgw process with that PID, and vice versa.
$node->poll_query_until('postgres',
	"SELECT split_part(($registry_sql), '|', 2)", '0');
my $left = $node->safe_psql('postgres', $registry_sql);
like($left, qr/\|0$/, "after the load: registry exact ($left)");
my @listed = split /\n/,
  $node->safe_psql('postgres', 'SELECT pid FROM dynbgw_workers WHERE pid IS NOT NULL');
is(join(' ', grep { gone($_, $worker) } @listed), '',
	'every listed worker\'s process exists');

# Stopping every number empties the view and leaves no dynbgw process.
is( $node->safe_psql(
		'postgres',
		'SET client_min_messages = warning; SELECT count(*) FROM generate_series(1, 8) i WHERE dynbgw_stop(n => i) IS NULL'),
	'0',
	'dynbgw_stop(n => i) answered for every number');
registry_is($node, [], 'after stopping every number');
is(dynbgw_processes($node), '0', 'no dynbgw process in pg_stat_activity');

# No process of any worker launched during the load is left.
my @launched = split /\n/,
  $node->safe_psql('postgres',
	'SELECT DISTINCT pid FROM load_events WHERE pid IS NOT NULL');
is(join(' ', wait_gone($worker, @launched)), '',
	scalar(@launched) . ' launched workers: no process left');

# Every number launches again, is listed with its process, and stops: no
# slot leaked.
is(join("\n", launch_each_number($node, $worker, 1)),
	'', 'every number launches and stops again');
registry_is($node, [], 'at the end');

log_is_clean($node, 'no warnings, leaks or crashes in the server log');

$node->stop;
done_testing();
