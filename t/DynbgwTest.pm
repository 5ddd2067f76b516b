
# Copyright (c) dynbgw authors

# What the TAP tests in t/ share: a node with dynbgw created in it, psql
# with SQLSTATEs in its errors, bounded checks that something does NOT
# happen, waits for processes to be gone, and the check that the registry
# (dynbgw_workers) is exactly the live dynbgw processes.  One copy, so that
# a fix or a tighter check reaches every test.  A test uses it with
#
#     use FindBin;
#     use lib $FindBin::RealBin;
#     use DynbgwTest;

package DynbgwTest;

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(
  new_node
  psql_verbose
  psql_error
  wait_until_finished
  dynbgw_processes
  launcher_slots
  workers_seen_sql
  stays
  stays_gone
  $registry_sql
  registry_is
  gone
  wait_gone
  process_gone
  launch_each_number
  log_is_clean
  log_shows
  wait_crash_restart
  bg_end
  server_major
  readme_sql_blocks
  readme_sql_block
);

# A test ended by TERM or INT (test/prove-parallel passes them on when it
# is stopped) still stops its servers: dying runs the END block of
# PostgreSQL::Test::Cluster, which an unhandled signal would skip.
$SIG{TERM} = $SIG{INT} = sub { die "death by signal\n" };

# A started node named $name with dynbgw created in database postgres.
# Options: max_worker_processes (32 unless given), conf (more lines for
# postgresql.conf), init (a hash of arguments for init, e.g.
# { allows_streaming => 1 }).
sub new_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $opt{init} // {} });
	my $max = $opt{max_worker_processes} // 32;
	$node->append_conf('postgresql.conf',
		"max_worker_processes = $max\ndynbgw.max_workers = 8"
		  . (defined $opt{conf} ? "\n$opt{conf}" : ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION dynbgw');
	return $node;
}

# The ```sql blocks of README.md, in order, each as [first line, SQL]; a
# block indented under a list item loses its indent.
sub readme_sql_blocks
{
	my $readme = slurp_file(dirname(__FILE__) . '/../README.md');
	my @blocks;
	while ($readme =~ /^([ \t]*)```sql\n(.*?)^\1```$/msg)
	{
		my ($indent, $sql) = ($1, $2);
		$sql =~ s/^\Q$indent\E//mg;
		my ($first) = $sql =~ /^(.*)$/m;
		push @blocks, [ $first, $sql ];
	}
	return @blocks;
}

# The SQL of the README's block whose first line is $first, or undef.
sub readme_sql_block
{
	my ($first) = @_;
	my ($block) = grep { $_->[0] eq $first } readme_sql_blocks();
	return $block ? $block->[1] : undef;
}

# The node's major version, 14 for 14.24.  The server's own word, since
# PostgreSQL::Test::Cluster on 14 and older has no pg_version method.
sub server_major
{
	my ($node) = @_;
	return int($node->safe_psql('postgres', 'SHOW server_version_num') / 10000);
}

# Run $sql in database postgres with VERBOSITY verbose, so that an error
# reads "ERROR:  <SQLSTATE>: <message>": (exit code, stdout, stderr).
sub psql_verbose
{
	my ($node, $sql) = @_;
	return $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
}

# Run $sql expecting an error, which is a test of its own ($name, by
# default "fails: $sql").  Returns psql's stderr; in list context also how
# long the call took, in seconds.
sub psql_error
{
	my ($node, $sql, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $t0 = time();
	my ($ret, $stdout, $stderr) = psql_verbose($node, $sql);
	my $elapsed = time() - $t0;
	isnt($ret, 0, $name // "fails: $sql");
	return wantarray ? ($stderr, $elapsed) : $stderr;
}

# Wait until worker $n has left the view: a worker with runs => N does so
# right after its last run.  True unless the wait timed out.
sub wait_until_finished
{
	my ($node, $n) = @_;
	return $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM dynbgw_workers WHERE n = $n");
}

# Number of dynbgw worker processes that exist.
sub dynbgw_processes
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'dynbgw'");
}

# Background worker slots the server itself takes: the logical replication
# launcher, registered at server start.  Waits until it runs, so that it is
# counted; 0 if it never showed up.
sub launcher_slots
{
	my ($node) = @_;
	my $sql = q{
	SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'logical replication launcher'};
	$node->poll_query_until('postgres', "SELECT ($sql) > 0");
	return $node->safe_psql('postgres', $sql);
}

# A query for how often worker $n is seen, in the view and as a dynbgw
# process (application_name "dynbgw worker $n"); without $n, how many rows
# the view has plus how many dynbgw processes there are.  '0' when nothing
# is left.
sub workers_seen_sql
{
	my ($n) = @_;
	return q{SELECT (SELECT count(*) FROM dynbgw_workers)
	       + (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'dynbgw')}
	  unless defined $n;
	return qq{
SELECT (SELECT count(*) FROM dynbgw_workers WHERE n = $n) + (SELECT count(*)
          FROM pg_stat_activity WHERE backend_type = 'dynbgw'
           AND application_name = 'dynbgw worker $n')};
}

# Check for $seconds that $query keeps returning $expected, every $interval
# seconds (0.25 unless given); false, with a diagnostic, at the first other
# answer.  Used where the assertion is that something does NOT happen (a
# worker that must not come back), so the wait is bounded by nature; the
# caller chooses $seconds well above the delay in question.
sub stays
{
	my ($node, $query, $expected, $seconds, $interval) = @_;
	$interval //= 0.25;
	my $deadline = time() + $seconds;
	while (time() < $deadline)
	{
		my $got = $node->safe_psql('postgres', $query);
		if ($got ne $expected)
		{
			diag "got \"$got\" instead of \"$expected\" for: $query";
			return 0;
		}
		usleep($interval * 1_000_000);
	}
	return 1;
}

# Over $secs seconds, worker $n must not reappear, neither in the view nor
# as a dynbgw process.  Checks every 100 ms and fails at the first sight.
sub stays_gone
{
	my ($node, $n, $secs, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok(stays($node, workers_seen_sql($n), '0', $secs, 0.1),
		"$what: worker $n does not come back within $secs s");
}

# The worker numbers in dynbgw_workers, and how many rows of the view and
# dynbgw processes of pg_stat_activity do not pair up (same PID, application
# name "dynbgw worker N"): "1,3|0" when workers 1 and 3 exist and match.
our $registry_sql = q{
SELECT (SELECT coalesce(string_agg(n::text, ',' ORDER BY n), '')
          FROM dynbgw_workers)
       || '|' ||
       (SELECT count(*)
          FROM dynbgw_workers w
          FULL JOIN (SELECT pid, application_name FROM pg_stat_activity
                      WHERE backend_type = 'dynbgw') a ON a.pid = w.pid
         WHERE w.n IS NULL OR a.pid IS NULL
            OR a.application_name IS DISTINCT FROM 'dynbgw worker ' || w.n)
};

# The registry holds exactly the workers in @$ns and each is a live dynbgw
# process listed in pg_stat_activity.  Waits for exits in progress.
sub registry_is
{
	my ($node, $ns, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $want = join(',', @$ns) . '|0';
	$node->poll_query_until('postgres', $registry_sql, $want);
	is($node->safe_psql('postgres', $registry_sql),
		$want, "$what: registry exact (workers: @$ns)");
}

# Whether process $pid is gone.  A zombie still counts as there; a PID that
# now names some other program (PIDs wrap at pid_max while other tests run
# on the machine) does not: the process is there only while its command
# line matches $ours.
sub gone
{
	my ($pid, $ours) = @_;
	return 1 unless kill(0, $pid);
	open(my $fh, '<', "/proc/$pid/cmdline") or return 1;
	my $cmd = <$fh> // '';
	close($fh);
	return $cmd ne '' && $cmd !~ $ours;
}

# Poll until none of @pids is there (see gone()), for at most the default
# timeout; a bounded wait, never a fixed sleep.  Returns the PIDs left.
sub wait_gone
{
	my ($ours, @pids) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (1)
	{
		@pids = grep { !gone($_, $ours) } @pids;
		last if !@pids || time() >= $deadline;
		usleep(10_000);
	}
	return @pids;
}

# Test that process $pid is gone, waiting for it as wait_gone() does.
sub process_gone
{
	my ($pid, $ours, $what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok(!wait_gone($ours, $pid), "$what: process $pid is gone");
}

# Launch every worker number 1..8, one at a time so that this also works
# with few max_worker_processes: each must launch (no slot leaked), be
# listed with its live process, stop by number, and leave no process (see
# gone()) once the stop returns or, with $wait, within the default timeout.
# Returns what went wrong, a line each; nothing when all went well.
sub launch_each_number
{
	my ($node, $ours, $wait) = @_;
	my @bad;
	for my $n (1 .. 8)
	{
		my ($ret, $pid, $err) = $node->psql('postgres',
			"SELECT dynbgw_launch($n, naptime => '1 hour')");
		if ($ret != 0 || $pid !~ /^\d+$/)
		{
			push @bad, "launch $n: $err";
			next;
		}
		my $row = $node->safe_psql('postgres', qq{
SELECT w.pid = $pid AND a.pid IS NOT NULL
  FROM dynbgw_workers w
  LEFT JOIN pg_stat_activity a ON a.pid = w.pid AND a.backend_type = 'dynbgw'
 WHERE w.n = $n});
		push @bad, "worker $n not listed with its process" if $row ne 't';
		my $stopped = $node->safe_psql('postgres', "SELECT dynbgw_stop(n => $n)");
		push @bad, "stop $n returned '$stopped'" if $stopped ne 't';
		push @bad, "process $pid of worker $n still exists"
		  if $wait ? wait_gone($ours, $pid) : !gone($pid, $ours);
	}
	return @bad;
}

# No warning, leak report or crash in the server log of $node.
sub log_is_clean
{
	my ($node, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	unlike(
		slurp_file($node->logfile),
		qr/WARNING|leaked|PANIC|TRAP|server process .* was terminated/,
		$name // $node->name . ': no warnings, leaks or crashes in the log');
}

# Poll the log of $node from $offset until it matches $re, for at most the
# default timeout; true if it did.  Unlike wait_for_log() it does not die,
# so that a line that never comes is one failed test.
sub log_shows
{
	my ($node, $re, $offset) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		return 1 if slurp_file($node->logfile, $offset) =~ $re;
		usleep(100_000);
	}
	return 0;
}

# Wait, reading the log of $node from $offset, until a crash-restart has
# reinitialized the server and it accepts connections again.  Polling
# before then is not enough: a psql that finds the server still starting
# exits before it reads its query, and the harness dies of the broken pipe.
sub wait_crash_restart
{
	my ($node, $offset) = @_;
	$node->wait_for_log(
		qr/all server processes terminated; reinitializing.*database system is ready to accept connections/s,
		$offset);
	return;
}

# End a background psql whose backend may already be gone.
sub bg_end
{
	my ($bg) = @_;
	eval {
		$bg->{run}->pump_nb() if $bg->{run}->pumpable();
		$bg->{stdin} .= "\\q\n" if $bg->{run}->pumpable();
		$bg->{run}->finish;
	};
	eval { $bg->{run}->kill_kill; };
	return;
}

1;
