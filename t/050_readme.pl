# Copyright (c) dynbgw authors

# The README's SQL examples run as printed: every ```sql block of README.md,
# in the order they appear, on one fresh cluster with dynbgw created in
# database postgres (as "bash test/try" leaves it), each through psql with
# ON_ERROR_STOP, as its superuser.  Then:
# - every block succeeded;
# - no run of any worker the examples started failed;
# - the examples stopped every worker they started (the last block, from
#   "Uninstalling", drops the extension and dynbgw_user, so this is read
#   from pg_stat_activity), and the extension and role are gone.
# Output shown in the README is in ```text blocks, which are not run.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $readme = slurp_file("$FindBin::RealBin/../README.md");

# [first line, SQL] of each block; a block indented under a list item
# loses its indent.
my @blocks;
while ($readme =~ /^([ \t]*)```sql\n(.*?)^\1```$/msg)
{
	my ($indent, $sql) = ($1, $2);
	$sql =~ s/^\Q$indent\E//mg;
	my ($first) = $sql =~ /^(.*)$/m;
	push @blocks, [ $first, $sql ];
}
cmp_ok(scalar @blocks, '>=', 10, 'README.md has its SQL examples');
like($blocks[-1][1], qr/DROP EXTENSION dynbgw/,
	'the last example is the one that uninstalls');

my $node = new_node('readme');

for my $i (0 .. $#blocks)
{
	my ($first, $sql) = @{ $blocks[$i] };
	if ($i == $#blocks)
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
