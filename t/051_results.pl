
# Copyright (c) dynbgw authors

# Kept results where they take settings, several sessions or databases,
# and restarts (sql/results.sql shows the rest).
#
# - dynbgw.max_result_size: a larger result fails its run with 54000,
#   saying the size it reached, and keeps nothing, also one of rows without
#   columns; a reload raises it.
# - dynbgw.max_total_result_size: a result that would pass it fails its
#   run with 53400; a worker replacing its own result is not held back by
#   it; a drop makes room.
# - Sessions of another database read built-in types, in both forms, text
#   exactly whatever the two databases' encodings (and reading in another
#   client encoding takes no memory for good), and are refused types of the
#   worker's database (0A000).
# - A role with a superuser's privileges but no SET ROLE to it (16+) does
#   not read the superuser's result.
# - Reads during runs that replace the result see one whole result, never
#   a mix.
# - A stopped run keeps nothing and the total comes back; what the run
#   before kept stays.
# - A saved definition keeps keep_result through dynbgw_restore().
# - The README's report script fails as a script should when the report
#   fails.
# - A restart empties the store.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = new_node('main');

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub set_and_reload
{
	my ($setting, $value) = @_;
	q1("LOAD 'dynbgw'; ALTER SYSTEM SET $setting = '$value'");
	q1('SELECT pg_reload_conf()');
	# Sessions and workers read the file at their next look.
	ok($node->poll_query_until('postgres', "SELECT current_setting('$setting') = '$value'"),
		"$setting is $value");
}

# The outcome of a launch of $n with runs => 1, as "outcome sqlstate".
sub outcome
{
	my ($n) = @_;
	return q1("SELECT outcome || ' ' || coalesce(sqlstate, '-') FROM dynbgw_wait($n, '60 s')");
}

sub total { return q1('SELECT coalesce(sum(size), 0) FROM dynbgw_results'); }

###########################################################################
# 1. One result is bounded.
###########################################################################

set_and_reload('dynbgw.max_result_size', '64kB');
my $thousand_rows =
  q{SELECT g AS id, repeat('x', 100) AS filler FROM generate_series(1, 1000) g};
q1("SELECT dynbgw_launch(1, \$\$$thousand_rows\$\$, runs => 1, keep_result => true)");
is(outcome(1), 'failed 54000', 'a result over dynbgw.max_result_size fails its run');
like(
	q1("SELECT message FROM dynbgw_runs WHERE n = 1"),
	qr/^result of this run reached \d+ bytes, more than "dynbgw.max_result_size" \(64 kB\)$/,
	'the failure says the size it reached');
is(q1('SELECT count(*) FROM dynbgw_results'), '0', 'and nothing is kept');
is(total(), '0', 'the total is back to nothing');
q1(q{SELECT dynbgw_launch(1, 'SELECT FROM generate_series(1, 1000000)', runs => 1, keep_result => true)});
is(outcome(1), 'failed 54000', 'rows without columns count too');

set_and_reload('dynbgw.max_result_size', '1MB');
q1("SELECT dynbgw_launch(1, \$\$$thousand_rows\$\$, runs => 1, keep_result => true)");
is(outcome(1), 'succeeded -', 'after a reload that raises it, the run keeps its result');
is( q1( "SELECT count(*) || ' ' || max(id) || ' ' || min(length(filler))
	     FROM dynbgw_result(1) AS (id integer, filler text)"),
	'1000 1000 100',
	'all 1,000 rows read back');
my ($size, $rows) = split /\|/, q1('SELECT size, rows FROM dynbgw_results WHERE n = 1');
cmp_ok($size / $rows, '<', 120, "a row of an integer and 100 bytes of text takes under 120 bytes ("
	  . int($size / $rows) . ')');

###########################################################################
# 2. All results together are bounded.
###########################################################################

set_and_reload('dynbgw.max_total_result_size', '200kB');
my $big = q{SELECT repeat('y', 120 * 1024) AS big};
q1("SELECT dynbgw_drop_result(1)");
q1("SELECT dynbgw_launch(2, \$\$$big\$\$, naptime => '1 hour', keep_result => true)");
ok($node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM dynbgw_results WHERE n = 2'),
	'a result of 120 kB is kept');
q1("SELECT dynbgw_launch(3, \$\$$big\$\$, runs => 1, keep_result => true)");
is(outcome(3), 'failed 53400', 'a second one would pass the total: its run fails');
like(q1("SELECT message FROM dynbgw_runs WHERE n = 3"),
	qr/would exceed "dynbgw.max_total_result_size" \(200 kB\)/, 'and says why');

# Replacing its own result, a worker needs no room for both.
q1('SELECT dynbgw_wake(2)');
ok( $node->poll_query_until(
		'postgres', "SELECT runs = 2 AND failures = 0 FROM dynbgw_workers WHERE n = 2"),
	'the worker holding most of the total replaces its own result');
q1('SELECT dynbgw_drop_result(2)');
q1("SELECT dynbgw_launch(3, \$\$$big\$\$, runs => 1, keep_result => true)");
is(outcome(3), 'succeeded -', 'once a result is dropped there is room again');
q1('SELECT dynbgw_stop(n => 2)');
q1('SELECT dynbgw_drop_result(3)');
set_and_reload('dynbgw.max_total_result_size', '64MB');

###########################################################################
# 3. From another database.
###########################################################################

q1('CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION dynbgw');
q1('CREATE TYPE local_pair AS (a integer, b text)');
q1(q{SELECT dynbgw_launch(4, $$SELECT 1 AS id, 'one'::text AS name, ARRAY[1.5, 2.5]::numeric[] AS nums, now() AS at$$, runs => 1, keep_result => true)});
is(outcome(4), 'succeeded -', 'a result of built-in types');
is( $node->safe_psql(
		'other',
		'SELECT id, name, nums FROM dynbgw_result(4) AS (id integer, name text, nums numeric[], at timestamptz)'),
	'1|one|{1.5,2.5}',
	'another database reads it with a column definition list');
is( $node->safe_psql('other', q{SELECT r - 'at' FROM dynbgw_result_json(4) r}),
	'{"id": 1, "name": "one", "nums": [1.5, 2.5]}',
	'and as jsonb');
q1(q{SELECT dynbgw_launch(4, $$SELECT ROW(1, 'x')::local_pair AS pair$$, runs => 1, keep_result => true)});
is(outcome(4), 'succeeded -', 'a result of a type of this database');
my ($ret, $out, $err) =
  $node->psql('other', "\\set VERBOSITY verbose\nSELECT * FROM dynbgw_result_json(4)");
like($err, qr/ERROR:  0A000: column "pair" of the result of dynbgw worker 4 has a type of another database/,
	'another database is refused it, clearly');
is(q1('SELECT * FROM dynbgw_result(4) AS (pair local_pair)'), '(1,x)',
	'its own database reads it');

# Text between databases of different encodings comes back as it was.
q1(q{CREATE DATABASE latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
$node->safe_psql('latin1', 'CREATE EXTENSION dynbgw');
$node->safe_psql('latin1',
	q{SELECT dynbgw_launch(4, $$SELECT 'caf' || chr(233) AS word$$, runs => 1, keep_result => true)});
is(outcome(4), 'succeeded -', 'a result kept in a LATIN1 database');
is( q1( q{SELECT word = 'caf' || chr(233) FROM dynbgw_result(4) AS (word text)}),
	't', 'reads the same in a UTF8 one');
q1(q{SELECT dynbgw_launch(4, $$SELECT 'na' || chr(239) || 've' AS word$$, runs => 1, keep_result => true)});
is(outcome(4), 'succeeded -', 'and one kept in the UTF8 database');
is( $node->safe_psql(
		'latin1', q{SELECT (r ->> 'word') = 'na' || chr(239) || 've' FROM dynbgw_result_json(4) r}),
	't', 'reads the same in the LATIN1 one');

# Reading a result in another client encoding takes no memory for good
# (14+ shows a session's memory).
SKIP:
{
	skip 'pg_backend_memory_contexts comes with 14', 1 if server_major($node) < 14;
	q1(q{SELECT dynbgw_launch(5, $$SET client_encoding = 'LATIN1'; SELECT 1 AS x WHERE false$$,
	                          runs => 1, keep_result => true)});
	is(outcome(5), 'succeeded -', 'an empty result in LATIN1');
	is( q1(
			q{SELECT total_bytes AS before FROM pg_backend_memory_contexts WHERE name = 'TopMemoryContext' \gset
			  SELECT count(*) FROM generate_series(1, 20000) AS g, LATERAL dynbgw_result(5 + g * 0) AS (x integer);
			  SELECT total_bytes - :before < 1000000 FROM pg_backend_memory_contexts WHERE name = 'TopMemoryContext'}
		),
		"0\nt",
		'read 20,000 times, it leaves the session\'s memory as it was');
	q1('SELECT dynbgw_drop_result(5)');
}

# A role with the privileges of a superuser but without SET ROLE to it
# (16+) may not read what the superuser's worker kept: it could not have
# run the command itself.
SKIP:
{
	skip 'SET and INHERIT options of role grants come with 16', 2
	  if server_major($node) < 16;
	q1(q{CREATE ROLE boss SUPERUSER; CREATE ROLE helper LOGIN;
		 GRANT boss TO helper WITH INHERIT TRUE, SET FALSE});
	q1(q{SET ROLE boss; SELECT dynbgw_launch(8, $$SELECT rolname FROM pg_authid WHERE rolsuper$$,
	                                          runs => 1, keep_result => true)});
	is(outcome(8), 'succeeded -', 'a superuser role\'s worker keeps rows of pg_authid');
	($ret, $out, $err) = psql_verbose($node,
		'SET ROLE helper; SELECT * FROM dynbgw_result(8) AS (rolname name)');
	like($err, qr/ERROR:  42501: permission denied for the result of dynbgw worker 8/,
		'a role that inherits its privileges but may not SET ROLE to it is refused');
	q1('SELECT dynbgw_drop_result(8)');
}

###########################################################################
# 4. Reads while runs replace the result.
###########################################################################

# Every run keeps 2,000 rows that carry the run's own stamp.
q1(q{SELECT dynbgw_launch(5, $$SELECT g, s.stamp FROM generate_series(1, 2000) g, (SELECT clock_timestamp()::text AS stamp) s$$, naptime => '0', keep_result => true)});
ok($node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM dynbgw_results WHERE n = 5'),
	'a worker replaces its result back to back');
($ret, $out, $err) = $node->psql(
	'postgres', q{DO $$
	DECLARE
		seen text[] := '{}';
		rows bigint;
		stamps bigint;
		stamp text;
	BEGIN
		FOR i IN 1 .. 300 LOOP
			SELECT count(*), count(DISTINCT r.stamp), min(r.stamp) INTO rows, stamps, stamp
			  FROM dynbgw_result(5) AS r(g integer, stamp text);
			IF rows <> 2000 OR stamps <> 1 THEN
				RAISE EXCEPTION 'read % rows of % runs', rows, stamps;
			END IF;
			IF NOT stamp = ANY (seen) THEN
				seen := seen || stamp;
			END IF;
		END LOOP;
		RAISE NOTICE 'results seen: %', cardinality(seen);
	END
	$$});
is($ret, 0, '300 reads during replacing runs each read one whole result');
like($err, qr/results seen: (\d+)/, 'and the reads saw results replaced');
my ($seen) = $err =~ /results seen: (\d+)/;
cmp_ok($seen // 0, '>', 1, "the reads met $seen different results");
q1('SELECT dynbgw_stop(n => 5)');

###########################################################################
# 5. A stopped run keeps nothing.
###########################################################################

q1('CREATE TABLE slow (on_ boolean)');
q1(q{SELECT dynbgw_launch(6, $$SELECT g FROM (SELECT pg_sleep(CASE WHEN EXISTS (SELECT FROM slow) THEN 60 ELSE 0 END)) s, generate_series(1, 100) g$$, naptime => '1 hour', keep_result => true)});
ok($node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM dynbgw_results WHERE n = 6'),
	'the first run keeps its result');
my $before = total();
q1('INSERT INTO slow VALUES (true)');
q1('SELECT dynbgw_wake(6)');
ok( $node->poll_query_until(
		'postgres', q{SELECT state = 'running' FROM dynbgw_workers WHERE n = 6}),
	'the second run sleeps');
q1('SELECT dynbgw_stop(n => 6)');
is(total(), $before, 'a run stopped midway keeps nothing: the total is as before');
is(q1('SELECT count(*) FROM dynbgw_result(6) AS (g integer)'), '100',
	'and the first run\'s result stays');
q1('SELECT dynbgw_drop_result(6)');

###########################################################################
# 6. Saved definitions carry keep_result.
###########################################################################

q1(q{SELECT dynbgw_launch(7, 'SELECT 7 AS seven', naptime => '1 hour', keep_result => true, persist => true)});
is(q1('SELECT keep_result FROM dynbgw_definitions WHERE n = 7'), 't', 'saved with keep_result');
like(q1('SELECT dynbgw_dump_definitions()'), qr/keep_result => 'true'/, 'and dumped with it');
q1('SELECT dynbgw_stop(n => 7)');
q1('SELECT dynbgw_drop_result(7)');
q1('SELECT count(*) FROM dynbgw_restore()');
is(q1('SELECT keep_result FROM dynbgw_workers WHERE n = 7'), 't', 'restored with keep_result');
ok($node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM dynbgw_results WHERE n = 7'),
	'and the restored worker keeps its result');

###########################################################################
# 7. The README's report script, when the report fails: psql ends with
#    status 3 and says why.
###########################################################################

my $report = readme_sql_block('-- /etc/dynbgw/report.sql');
ok(defined $report, 'the README has the report script');
($ret, $out, $err) = $node->psql('postgres', $report, extra_params => [ '-v', 'ON_ERROR_STOP=1' ]);
is($ret, 3, 'without the orders table the script fails');
like($err, qr/report failed: relation "orders" does not exist/, 'and says why');
q1('CREATE TABLE orders (placed date, amount numeric)');
q1(q{INSERT INTO orders VALUES (current_date, 2), (current_date, 3)});
($ret, $out, $err) = $node->psql('postgres', $report, extra_params => [ '-v', 'ON_ERROR_STOP=1' ]);
is($ret, 0, 'with it, the script succeeds');
like($out, qr/^\d{4}-\d\d-\d\d\|2\|5$/m, 'and prints the report\'s rows');

###########################################################################
# 7. A restart empties the store.
###########################################################################

$node->restart;
is(q1('SELECT count(*) FROM dynbgw_results'), '0', 'no result outlives a restart');
($ret, $out, $err) = psql_verbose($node, 'SELECT * FROM dynbgw_result(4) AS (pair local_pair)');
like($err, qr/ERROR:  55000: dynbgw worker 4 has no result/, 'reading one says there is none');

log_is_clean($node);
$node->stop;
done_testing();
