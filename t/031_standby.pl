# dynbgw on a streaming standby: launching is refused during recovery with
# SQLSTATE 55000, while the view and the other functions work and show no
# workers.  The primary launches as usual, and so does the standby once it
# is promoted.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# A primary and a streaming standby made from its backup.
my $primary = new_node(
	'primary',
	max_worker_processes => 16,
	init => { allows_streaming => 1 });
$primary->backup('backup');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'),
	't', 'the standby is in recovery');

# ---- the standby refuses to launch ----

my $err = psql_error($standby, 'SELECT dynbgw_launch(1)',
	'dynbgw_launch fails on the standby');
like(
	$err,
	qr/ERROR:  55000: cannot launch dynbgw workers during recovery/,
	'with SQLSTATE 55000 and the documented message');

# Neither if_running => 'skip', a restart delay nor an entry point gets
# around it.
for my $call (
	"dynbgw_launch(2, 'SELECT 1', naptime => '1 s', if_running => 'skip')",
	"dynbgw_launch(3, restart => '1 s')",
	"dynbgw_launch_function(4, 'dynbgw', 'dynbgw_sleep_main')")
{
	(undef, undef, $err) = psql_verbose($standby, "SELECT $call");
	like($err, qr/ERROR:  55000:/, "standby refuses $call");
}

# The view works on the standby and lists nothing; the other functions
# answer as they do for numbers that are not running.
is($standby->safe_psql('postgres', 'SELECT count(*) FROM dynbgw_workers'),
	'0', 'the view works on the standby and is empty');
registry_is($standby, [], 'standby after refused launches');
is( $standby->safe_psql(
		'postgres',
		'SELECT dynbgw_pid(1) IS NULL, dynbgw_stop(n => 1), dynbgw_stop(NULL)'),
	't|f|f',
	'dynbgw_pid and dynbgw_stop work on the standby');
is(dynbgw_processes($standby), '0', 'no dynbgw process on the standby');

# ---- the primary launches as usual ----

my $pid = $primary->safe_psql('postgres',
	"SELECT dynbgw_launch(1, 'SELECT 1', naptime => '100 ms')");
like($pid, qr/^\d+$/, 'dynbgw_launch works on the primary');
registry_is($primary, [1], 'primary with worker 1');
$primary->poll_query_until('postgres',
	'SELECT runs >= 3 FROM dynbgw_workers WHERE n = 1');
pass('the primary\'s worker runs its command');

# The primary's registry is its own: the standby still lists nothing.
$primary->wait_for_catchup($standby);
registry_is($standby, [], 'standby while the primary runs a worker');

is($primary->safe_psql('postgres', 'SELECT dynbgw_stop(n => 1)'),
	't', 'the primary\'s worker stops');
registry_is($primary, [], 'primary after the stop');

# ---- once promoted, the former standby launches ----

$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()');
my $pid2 = $standby->safe_psql('postgres',
	"SELECT dynbgw_launch(2, naptime => '1 hour')");
like($pid2, qr/^\d+$/, 'the promoted standby launches workers');
registry_is($standby, [2], 'promoted standby with worker 2');
is($standby->safe_psql('postgres', 'SELECT dynbgw_stop(n => 2)'),
	't', 'and stops them');
registry_is($standby, [], 'promoted standby after the stop');

log_is_clean($_) for ($primary, $standby);

$standby->stop;
$primary->stop;
done_testing();
