# Copyright (c) dynbgw authors

# The README's SQL examples run as printed: every ```sql block of README.md,
# in the order they appear, on one fresh cluster with dynbgw created in
# database postgres (as "bash test/try" leaves it), each through psql with
# ON_ERROR_STOP, as its superuser.  Then:
# - no two blocks launch the same worker number, unless the first stops
#   the worker it launched;
# - every block succeeded;
# - no run of any worker the examples started failed;
# - the examples stopped every worker they started (the blocks of
#   "Uninstalling", the last two, drop the extension and dynbgw_user, so
#   this is read from pg_stat_activity), and the extension and role are
#   gone.
# Output shown in the README is in ```text blocks, which are not run.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;

my @blocks = readme_sql_blocks();
cmp_ok(scalar @blocks, '>=', 10, 'README.md has its SQL examples');
my ($uninstall) = grep { $blocks[$_][1] =~ /DROP EXTENSION dynbgw/ } 0 .. $#blocks;
is($uninstall, $#blocks - 1, 'the examples end with the two that uninstall');
$uninstall //= $#blocks;

# Each example launches worker numbers of its own, so that none replaces
# or skips another's worker when a reader keeps one running; a number is
# free again after an example that stops the worker it launched.
my (%held_by, @shared);
for my $i (0 .. $#blocks)
{
	my $sql = $blocks[$i][1];
	for my $n ($sql =~ /dynbgw_launch\(\s*(\d+)/g)
	{
		push @shared, "worker $n in examples " . ($held_by{$n} + 1) . ' and ' . ($i + 1)
		  if defined $held_by{$n} && $held_by{$n} != $i;
		$held_by{$n} = $i;
	}
	for my $n (keys %held_by)
	{
		delete $held_by{$n}
		  if $held_by{$n} == $i
		  && $sql =~ /dynbgw_stop\((?:dynbgw_pid\($n\)|n => $n\b)/;
	}
}
is(join(', ', @shared), '',
	'no two examples launch the same worker number while it may still run');

my $node = new_node('readme');

for my $i (0 .. $#blocks)
{
	my ($first, $sql) = @{ $blocks[$i] };
	if ($i == $uninstall)
	{
		# Before the uninstall drops dynbgw_runs with the extension.
		is( $node->safe_psql(
				'postgres',
				"SELECT string_agg(format('worker %s: %s', n, message), '; ')
				   FROM dynbgw_runs WHERE status = 'failed'"),
			'',
			'no run of a worker the examples started failed');
	}
	my ($rc, $out, $err) = $node->psql('postgres', $sql,
		extra_params => [ '-v', 'ON_ERROR_STOP=1' ]);
	is($rc, 0, 'README example ' . ($i + 1) . " runs: $first")
	  or diag("$sql\n$err");
}

# A worker that ended by itself (runs => 1) may take a moment to leave.
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'dynbgw'"
	),
	'the examples stopped every worker they started');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM pg_extension WHERE extname = 'dynbgw'
		 UNION ALL
		 SELECT count(*) FROM pg_roles WHERE rolname = 'dynbgw_user'"),
	"0\n0",
	'the uninstall example removed the extension and dynbgw_user');
log_is_clean($node);

$node->stop;
done_testing();
