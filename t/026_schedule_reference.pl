
# Copyright (c) dynbgw authors

# dynbgw_next_runs() against a reference engine written here, in Perl, from
# the rules in README.md, section "Schedules", and from nothing else.
#
# The reference does not search for the next run the way a cron engine
# does.  It takes the schedule literally: it lists the wall-clock times the
# schedule names, in order, day by day, and asks for each one at which
# instants the zone's clock shows it (one instant, two when the clock goes
# back, none when the clock jumps over it).  Then it applies the two rules
# for the nights clocks change: a skipped time is due at the first instant
# after the jump; a repeated time is due at both instants for a frequent
# schedule, at the first for any other.  The runs after "from" are the
# instants so found that are later than "from", in order, each once.
#
# What the zone's clock shows comes from the system's time zone data
# (localtime() with $ENV{TZ}); a check below makes sure the server reads
# the same clocks.  Zones and years are ones whose rules are settled, so
# that a server built with its own copy of the data agrees:
#
#   UTC                    no changes at all, sparse schedules over decades
#   America/New_York       2025-2027, 02:00 -> 03:00 and 02:00 -> 01:00
#   Europe/Berlin          2025-2027, at 01:00 UTC
#   Australia/Lord_Howe    2025-2027, a half-hour shift
#   America/Sao_Paulo      2017-2019, changes at midnight, DST abolished 2019
#   Europe/Moscow          2010-2015, permanent +4 in 2011, back to +3 in 2014
#   Pacific/Apia           2011-2012, 30 December 2011 skipped entirely
#
# Runs later than the end of a zone's years are not compared.
#
# The cases: random expressions (fixed seed) of every kind the README
# describes, each with a "from" placed just before, on, or after a clock
# change, or anywhere in the zone's years.  All are sent to the server in a
# few batched queries; each zone reports how many cases agreed and shows
# the first ones that did not.  A few cases worked out by hand from the
# README are checked literally at the end.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use DynbgwTest;
use POSIX qw(floor tzset);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::Local qw(timegm_modern timegm_posix);

# Fixed, so that a failure can be reproduced case by case.
srand(20260308);

# No zone may be 16 hours or more from UTC (README), so every instant at
# which a clock shows local time T lies within this many seconds of T.
my $MAX_OFFSET = 16 * 3600;

###########################################################################
# 1. The schedule language, as README.md "Schedules" defines it.
###########################################################################

# Fields in order: name, lowest, highest, names (index = value).
my @FIELDS = (
	[ 'second', 0, 59 ],
	[ 'minute', 0, 59 ],
	[ 'hour',   0, 23 ],
	[ 'day',    1, 31 ],
	[   'month', 1, 12,
		[qw(- jan feb mar apr may jun jul aug sep oct nov dec)] ],
	[ 'weekday', 0, 7, [qw(sun mon tue wed thu fri sat)] ],);

my %MACROS = (
	'@yearly'   => '0 0 1 1 *',
	'@annually' => '0 0 1 1 *',
	'@monthly'  => '0 0 1 * *',
	'@weekly'   => '0 0 * * 0',
	'@daily'    => '0 0 * * *',
	'@midnight' => '0 0 * * *',
	'@hourly'   => '0 * * * *',);

# One value of a field: a number, or a name where the field has names.
sub parse_value
{
	my ($text, $field) = @_;
	my (undef, $lo, $hi, $names) = @$field;
	my $v;
	if ($text =~ /^[0-9]+$/)
	{
		$v = $text + 0;
	}
	elsif ($names)
	{
		($v) = grep { $names->[$_] eq lc $text } 0 .. $#$names;
	}
	return defined $v && $v >= $lo && $v <= $hi ? $v : undef;
}

# The set of values a field names (a hash), or undef if the field is not
# valid.  Items: "*", "v", "a-b", each with an optional "/s"; "*/s" starts
# at the field's lowest value, "a/s" goes to its highest.
sub parse_field
{
	my ($text, $field) = @_;
	my (undef, $lo, $hi) = @$field;
	my %set;
	for my $item (split /,/, $text, -1)
	{
		my ($range, $step) = $item =~ m{^([^/]+)(?:/([0-9]+))?$} or return;
		return if defined $step && $step < 1;
		my ($from, $to);
		if ($range eq '*')
		{
			($from, $to) = ($lo, $hi);
		}
		elsif ($range =~ /^([^-]+)-([^-]+)$/)
		{
			$from = parse_value($1, $field);
			$to   = parse_value($2, $field);
			return unless defined $from && defined $to && $from <= $to;
		}
		else
		{
			$from = parse_value($range, $field);
			return unless defined $from;
			# "a/s" runs to the field's highest value, plain "a" is just a.
			$to = defined $step ? $hi : $from;
		}
		for (my $v = $from; $v <= $to; $v += $step // 1)
		{
			$set{$v} = 1;
		}
	}
	return \%set;
}

# A parsed schedule: the value sets, whether the day fields begin with
# "*", and whether it is frequent; undef if it is not valid.
sub parse_schedule
{
	my ($expr) = @_;
	$expr = $MACROS{ lc $expr } // $expr if $expr =~ /^@/;
	my @f = split /[ \t]+/, $expr;
	unshift @f, '0' if @f == 5;    # five fields: runs at second 0
	return unless @f == 6;
	my %s;
	for my $i (0 .. 5)
	{
		$s{ $FIELDS[$i][0] } = parse_field($f[$i], $FIELDS[$i]) or return;
	}
	# Weekday 7 is Sunday, however it was reached.
	$s{weekday}{0}   = 1 if delete $s{weekday}{7};
	$s{day_star}     = $f[3] =~ /^\*/;
	$s{weekday_star} = $f[5] =~ /^\*/;
	# Frequent: the seconds, minute or hour field begins with "*" (after
	# the macro is expanded; the implicit second 0 never does).
	$s{frequent} = scalar grep { /^\*/ } @f[ 0 .. 2 ];
	$s{sorted}   = {
		map {
			$_ => [ sort { $a <=> $b } keys %{ $s{$_} } ]
		} qw(second minute hour) };
	return \%s;
}

sub leap_year
{
	my ($y) = @_;
	return $y % 4 == 0 && ($y % 100 != 0 || $y % 400 == 0);
}

sub days_in_month
{
	my ($y, $m) = @_;
	return (31, leap_year($y) ? 29 : 28,
		31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[ $m - 1 ];
}

# Whether a local date is one of the schedule's days (Vixie cron): its
# month must match, then its day of the month AND its weekday if either
# day field begins with "*", its day of the month OR its weekday if not.
sub day_matches
{
	my ($s, $m, $d, $wday) = @_;
	return 0 unless $s->{month}{$m};
	my ($dm, $wm) = ($s->{day}{$d}, $s->{weekday}{$wday});
	return ($s->{day_star} || $s->{weekday_star})
	  ? ($dm && $wm)
	  : ($dm || $wm);
}

# Whether the schedule names a day that exists.  With "or" the weekdays
# alone name days (every month has every weekday).  With "and" a day of
# the month that exists in one of the months is enough: over the years
# every date falls on every weekday, 29 February included.
sub names_a_day
{
	my ($s) = @_;
	return 1 unless $s->{day_star} || $s->{weekday_star};
	for my $m (keys %{ $s->{month} })
	{
		return 1
		  if grep { $_ <= days_in_month(2000, $m) } keys %{ $s->{day} };
	}
	return 0;
}

###########################################################################
# 2. A zone's clock: the instants at which its offset from UTC changes.
#
# Found with localtime(): the offset is sampled every 6 hours (no zone
# here changes twice within 6 hours) and each change is narrowed down to
# its second by bisection.  The clock is then: from instant at[k] on (up
# to at[k+1]) it shows instant + off[k].  "Local seconds" below are wall-
# clock times written as if they were UTC (timegm of the clock's fields).
###########################################################################

sub utc
{
	my ($y, $mo, $d, $h, $mi, $s) = @_;
	return timegm_modern($s // 0, $mi // 0, $h // 0, $d, $mo - 1, $y);
}

sub timeline
{
	my ($zone, $lo, $hi) = @_;
	my $saved = $ENV{TZ};
	$ENV{TZ} = $zone;
	tzset();
	my $offset = sub {
		my ($t) = @_;
		return timegm_posix((localtime $t)[ 0 .. 5 ]) - $t;
	};
	my %tl = (
		zone => $zone,
		lo   => $lo,
		hi   => $hi,
		at   => [$lo],
		off  => [ $offset->($lo) ]);
	for (my $t = $lo; $t < $hi; $t += 6 * 3600)
	{
		my $u = $t + 6 * 3600;
		next if $offset->($u) == $tl{off}[-1];
		# The offset changes in (t, u]: find the first second of the new one.
		my ($before, $after) = ($t, $u);
		while ($after - $before > 1)
		{
			my $mid = floor(($before + $after) / 2);
			if   ($offset->($mid) == $tl{off}[-1]) { $before = $mid }
			else                                   { $after  = $mid }
		}
		push @{ $tl{at} },  $after;
		push @{ $tl{off} }, $offset->($after);
	}
	if (defined $saved) { $ENV{TZ} = $saved }
	else                { delete $ENV{TZ} }
	tzset();
	return \%tl;
}

# Index of the stretch of constant offset that instant $t falls in.
sub stretch
{
	my ($tl, $t) = @_;
	my ($i,  $j) = (0, $#{ $tl->{at} });
	while ($i < $j)
	{
		my $mid = int(($i + $j + 1) / 2);
		if   ($tl->{at}[$mid] <= $t) { $i = $mid }
		else                         { $j = $mid - 1 }
	}
	return $i;
}

# What the clock shows at instant $t, in local seconds.
sub clock
{
	my ($tl, $t) = @_;
	return $t + $tl->{off}[ stretch($tl, $t) ];
}

# (0, the instants in order at which the clock shows local time $T), or
# (1, the first instant after the jump) for a time the clock jumps over.
sub instants
{
	my ($tl,    $T)   = @_;
	my ($at,    $off) = @$tl{qw(at off)};
	my ($first, $last) =
	  (stretch($tl, $T - $MAX_OFFSET), stretch($tl, $T + $MAX_OFFSET));
	my @t;
	for my $k ($first .. $last)
	{
		my $t = $T - $off->[$k];
		push @t, $t
		  if $at->[$k] <= $t && ($k == $#$at || $t < $at->[ $k + 1 ]);
	}
	return (0, @t) if @t;
	# Not shown: the clock went forward at some at[k] from (at[k] - 1 +
	# off[k-1]) straight to (at[k] + off[k]), jumping over T.
	for my $k ($first + 1 .. $last)
	{
		return (1, $at->[$k])
		  if $at->[$k] + $off->[ $k - 1 ] <= $T
		  && $T < $at->[$k] + $off->[$k];
	}
	die "local time $T of $tl->{zone} is neither shown nor skipped";
}

# The first instant at which the clock shows local time T or a later one.
# No local time from T on is due before it: until then the clock shows
# earlier times only, and a jump over such a time ends at or after it.
sub first_showing
{
	my ($tl, $T)   = @_;
	my ($at, $off) = @$tl{qw(at off)};
	for my $k (stretch($tl, $T - $MAX_OFFSET) .. $#$at)
	{
		# Stretch k shows at[k] + off[k] up to, not including,
		# at[k+1] + off[k].
		my $t = $T - $off->[$k];
		$t = $at->[$k] if $t < $at->[$k];
		return $t if $k == $#$at || $t < $at->[ $k + 1 ];
	}
}

###########################################################################
# 3. The reference: the first $count runs after $from earlier than $limit.
###########################################################################

sub reference_runs
{
	my ($s, $tl, $from, $count, $limit, $stats) = @_;
	my $f = floor($from);    # runs are whole seconds: "> from" is "> f"

	# The earliest local time that can be due after f: what the clock
	# shows just after f, or a time it shows again after turning back
	# later on, or one it jumps over right after f.
	my $T0 = clock($tl, $f) + 1;
	for my $k (0 .. $#{ $tl->{at} })
	{
		my $shown = $tl->{at}[$k] + $tl->{off}[$k];
		$T0 = $shown if $tl->{at}[$k] > $f && $shown < $T0;
	}

	# Done when local time T and the later ones can only be due after
	# the limit, or after the runs found so far once there are enough.
	my @runs;    # ascending
	my (%seen, %why, @not_again);
	my $done = sub {
		my ($T) = @_;
		my $t = first_showing($tl, $T);
		return $t >= $limit || (@runs >= $count && $t > $runs[ $count - 1 ]);
	};
	my $visit = sub {
		my ($T) = @_;
		my ($skipped, @t) = instants($tl, $T);
		# A repeated time: both times if frequent, else the first only
		# (decided before "from" is looked at: a first showing before
		# "from" is still the only run of that time).
		$why{ $t[0] } = 'skipped' if $skipped;
		$why{$_} = 'repeated' for @t[ 1 .. $#t ];
		push @not_again, splice(@t, 1) unless $s->{frequent};
		for my $t (@t)
		{
			next if $t <= $f || $t >= $limit || $seen{$t}++;
			my $i = @runs;
			$i-- while $i > 0 && $runs[ $i - 1 ] > $t;
			splice @runs, $i, 0, $t;
		}
	};

	my ($y, $m, $d) = (gmtime($T0))[ 5, 4, 3 ];
	($y, $m) = ($y + 1900, $m + 1);
	my ($H, $M, $S) = @{ $s->{sorted} }{qw(hour minute second)};
  DAY:
	while (1)
	{
		if (!$s->{month}{$m} || $d > days_in_month($y, $m))
		{
			# No day of this month (left) can match: next month.
			($y, $m, $d) = $m == 12 ? ($y + 1, 1, 1) : ($y, $m + 1, 1);
			last if $done->(utc($y, $m, 1));
			next;
		}
		my $day = utc($y, $m, $d);
		last if $done->($day);
		# 1970-01-01 was a Thursday (weekday 4).
		my $wday = (floor($day / 86400) + 4) % 7;
		if (day_matches($s, $m, $d, $wday))
		{
			for my $h (@$H)
			{
				next if $day + $h * 3600 + 3599 < $T0;
				for my $mi (@$M)
				{
					next if $day + $h * 3600 + $mi * 60 + 59 < $T0;
					for my $se (@$S)
					{
						my $T = $day + $h * 3600 + $mi * 60 + $se;
						next     if $T < $T0;
						last DAY if $done->($T);
						$visit->($T);
					}
				}
			}
		}
		$d++;
	}
	splice @runs, $count if @runs > $count;
	# What the case tries: runs for skipped or repeated times, and second
	# showings of a fixed schedule's times left out.
	if ($stats)
	{
		my $end = @runs == $count ? $runs[-1] : $limit;
		$stats->{ $why{$_} }++ for grep { $why{$_} } @runs;
		my $left_out = grep { $_ > $f && $_ < $end } @not_again;
		$stats->{left_out} += $left_out if $left_out;
	}
	return @runs;
}

###########################################################################
# 4. Random valid expressions.
###########################################################################

sub pick { return $_[ int rand @_ ] }

# A name in random case: "jan", "JAN", "jAn".
sub mixed_case
{
	my ($name) = @_;
	return join '', map { rand() < 0.5 ? uc : $_ } split //, $name;
}

# One value of a field, sometimes one of the @$hint values, sometimes
# written as a name.
sub gen_value
{
	my ($field, $hint) = @_;
	my (undef, $lo, $hi, $names) = @$field;
	my $v = $lo + int rand($hi - $lo + 1);
	$v = pick(@$hint) if $hint && rand() < 0.5;
	my $name = $names ? $names->[$v] // '-' : '-';
	return ($v, $name ne '-' && rand() < 0.5 ? mixed_case($name) : $v);
}

# A step: mostly small, sometimes beyond the field (minute "*/90").
sub gen_step
{
	my ($field) = @_;
	my $width = $field->[2] - $field->[1] + 1;
	return $width + int rand(2 * $width) if rand() < 0.15;
	return 1 + int rand($width <= 8 ? $width : $width / 2);
}

sub gen_item
{
	my ($field, $hint) = @_;
	my $r = rand();
	return '*/' . gen_step($field) if $r < 0.15;
	my ($x, $xt) = gen_value($field, $hint);
	return $xt                       if $r < 0.55;
	return "$xt/" . gen_step($field) if $r < 0.65;
	my ($y, $yt) = gen_value($field);
	($xt, $yt) = ($yt, $xt) if $y < $x;
	return "$xt-$yt" if $r < 0.9;
	return "$xt-$yt/" . gen_step($field);
}

# A field: "*" with probability $p_star, else a list of one to three items
# (rarely with a "*" item that is not the first).
sub gen_field
{
	my ($field, $p_star, $hint) = @_;
	return '*' if rand() < $p_star;
	my @items = map { gen_item($field, $hint) } 1 .. pick(1, 1, 1, 2, 3);
	push @items, pick('*', '*/' . gen_step($field)) if rand() < 0.03;
	return join ',', @items;
}

# A field that does not begin with "*".
sub gen_fixed_field
{
	my ($field, $hint) = @_;
	while (1)
	{
		my $f = gen_field($field, 0, $hint);
		return $f if $f !~ /^\*/;
	}
}

# Some shapes worth having regardless of chance.
my @SHAPES = (
	'* * * * * *',
	'*/10 * * * * *',
	'* * * * *',
	'*/90 * * * *',
	'0 0 29 2 *',
	'0 0 29 FEB */7',
	'0 0 29 feb mon',
	'0 0 31 * *',
	'0-59 0-23 * * *',
	'0,30 * * * * *',
	'15 * * * *',
	'0 12 * * 5-7',
	'0 0 * * 1/3',
	'30 2 * * sun',
	'0 0 13 * fri',
	'0 0 */2 * fri',
	'0 1-3 * * *',
	'*/20 1-2 * * *',
	'59 59 * * * *',
	'30 1 * * *',
	'0 0 * * 7',
	'0 0 1-7 * 7');

# A valid expression, with its parsed form.  Given @$hint, local hours
# worth testing (those around a clock change), it names them more often,
# and more often every day.
sub gen_schedule
{
	my ($hint) = @_;
	my $p_day = $hint ? 0.85 : 0.65;
	while (1)
	{
		my $expr;
		my $r = rand();
		if ($r < 0.06)
		{
			$expr = mixed_case(pick(sort keys %MACROS));
		}
		elsif ($r < 0.12)
		{
			$expr = pick(@SHAPES);
		}
		elsif ($hint && $r < 0.3)
		{
			# Not frequent, every day, at hours around the change.
			my @f =
			  map { gen_fixed_field($FIELDS[$_], $_ == 2 ? $hint : undef) }
			  (rand() < 0.4 ? (0, 1, 2) : (1, 2));
			$expr = join ' ', @f, '* * *';
		}
		else
		{
			my $six = rand() < 0.4;
			my @f   = (
				$six ? gen_field($FIELDS[0], 0.3) : (),
				gen_field($FIELDS[1], 0.3),
				gen_field($FIELDS[2], 0.35, $hint),
				gen_field($FIELDS[3], $p_day),
				gen_field($FIELDS[4], 0.75),
				gen_field($FIELDS[5], $p_day));
			$expr = join ' ', @f;
		}
		my $s = parse_schedule($expr);
		die "generated an invalid expression: $expr" unless $s;
		return ($expr, $s) if names_a_day($s);
	}
}

###########################################################################
# 5. Zones, their years, and the cases.
###########################################################################

my @ZONES = (
	[ 'UTC',                 utc(2000, 1, 1), utc(2150, 1, 1) ],
	[ 'America/New_York',    utc(2025, 1, 1), utc(2028, 1, 1) ],
	[ 'Europe/Berlin',       utc(2025, 1, 1), utc(2028, 1, 1) ],
	[ 'Australia/Lord_Howe', utc(2025, 1, 1), utc(2028, 1, 1) ],
	[ 'America/Sao_Paulo',   utc(2017, 1, 1), utc(2020, 1, 1) ],
	[ 'Europe/Moscow',       utc(2010, 1, 1), utc(2016, 1, 1) ],
	[ 'Pacific/Apia',        utc(2011, 1, 1), utc(2013, 1, 1) ],);

# Where "from" goes relative to a clock change, in seconds: just before,
# on, and after the jump, and an hour or two around it.
my @NEAR = (
	-7200, -3601, -3600, -3599, -1801, -1800, -61,  -60,
	-11,   -10,   -2,    -1,    -0.5,  0,     0.5,  1,
	59,    60,    1799,  1800,  3599,  3600,  5400, 7200);

my (%cases, %timelines);
for my $z (@ZONES)
{
	my ($zone, $lo, $hi) = @$z;
	my $tl = timeline($zone, $lo - 3 * 86400, $hi + 3 * 86400);
	$timelines{$zone} = $tl;
	my @list;
	my $add = sub {
		my ($from, $hint) = @_;
		my ($expr, $s)    = gen_schedule($hint);
		push @list,
		  { expr  => $expr,
			s     => $s,
			from  => $from,
			count => pick(5, 5, 5, 8, 40), };
	};

	# Around each change: the local hours on both sides of the jump.
	my @changes = grep { $_ > 0 } 0 .. $#{ $tl->{at} };
	for my $k (@changes)
	{
		my $t = $tl->{at}[$k];
		next if $t < $lo || $t >= $hi;
		my @hint = map {
			my $h = (gmtime($_))[2];
			(($h + 23) % 24, $h, ($h + 1) % 24)
		} ($t - 1 + $tl->{off}[ $k - 1 ], $t + $tl->{off}[$k]);
		for my $near (@NEAR)
		{
			$add->($t + $near, \@hint) for 1 .. 6;
		}
		$add->($t + int(rand(8 * 3600)) - 4 * 3600,   \@hint) for 1 .. 30;
		$add->($t + int(rand(4 * 86400)) - 2 * 86400, \@hint) for 1 .. 10;
	}
	# Anywhere in the zone's years.
	my $n_random = $zone eq 'UTC' ? 1500 : 300;
	$add->(
		$lo + 86400 + int(rand($hi - $lo - 2 * 86400)) + pick(0, 0, 0, 0.25))
	  for 1 .. $n_random;
	$cases{$zone} = \@list;
}

# Month, year and leap-day ends in UTC.
for my $from (
	utc(2023, 12, 31, 23, 59, 59),
	utc(2024, 2,  28, 23, 59, 59),
	utc(2024, 2,  29, 23, 59, 59),
	utc(2100, 2,  28, 12),
	utc(2026, 4,  30, 23, 59, 59))
{
	for (1 .. 20)
	{
		my ($expr, $s) = gen_schedule();
		push @{ $cases{UTC} },
		  { expr => $expr, s => $s, from => $from, count => 5 };
	}
}

###########################################################################
# 6. The server.
###########################################################################

my $node = new_node('main');

# The runs of one case as epochs in the server's order, or the error.
$node->safe_psql(
	'postgres', q{
CREATE FUNCTION runs_or_error(s text, z text, f timestamptz, n int)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RETURN (SELECT coalesce(string_agg(extract(epoch FROM x)::text, ' '
	                                   ORDER BY o), '')
	          FROM dynbgw_next_runs(s, z, f, n) WITH ORDINALITY AS r(x, o));
EXCEPTION WHEN OTHERS THEN
	RETURN 'ERROR ' || SQLSTATE || ' ' || regexp_replace(SQLERRM, '\s+', ' ', 'g');
END $$});

my $session = "SET TimeZone = 'UTC';\nSET DateStyle = 'ISO, YMD';\n";

# The server's answers for @$list, one string per case.
sub server_runs
{
	my ($zone, $list) = @_;
	my @rows;
	for my $i (0 .. $#$list)
	{
		my $c = $list->[$i];
		push @rows,
		  sprintf("(%d, '%s', %.6f::float8, %d)",
			$i, $c->{expr}, $c->{from}, $c->{count});
	}
	my $out = $node->safe_psql(
		'postgres', $session . qq{
SELECT c.i, runs_or_error(c.s, '$zone', to_timestamp(c.f), c.n)
  FROM (VALUES } . join(",\n", @rows) . q{) AS c(i, s, f, n)
 ORDER BY c.i});
	my @got;
	for my $line (split /\n/, $out)
	{
		my ($i, $runs) = split /\|/, $line, 2;
		$got[$i] = $runs // '';
	}
	$got[$_] //= 'ERROR: no answer' for 0 .. $#$list;
	return \@got;
}

# Epochs from the server: "1772953200.000000" is 1772953200.
sub whole_seconds
{
	my ($text) = @_;
	return map { /^(-?[0-9]+)(?:\.0*)?$/ ? $1 : $_ } split / /, $text;
}

sub show_instant
{
	my ($t) = @_;
	return $t unless $t =~ /^-?[0-9]+(\.[0-9]+)?$/;
	my @g    = gmtime(floor($t));
	my $frac = $t - floor($t);
	return sprintf(
		'%04d-%02d-%02d %02d:%02d:%02d%s',
		$g[5] + 1900,
		$g[4] + 1,
		@g[ 3, 2, 1, 0 ],
		$frac ? sprintf('%.6f', $frac) =~ s/^0//r : '');
}

###########################################################################
# 7. The server reads the same clocks: around every change, and at random
# instants, its local time in each zone is the one the reference uses.
###########################################################################

{
	my (@rows, @want);
	for my $zone (sort keys %timelines)
	{
		my $tl = $timelines{$zone};
		my @t  = map { ($_ - 1, $_) } @{ $tl->{at} }[ 1 .. $#{ $tl->{at} } ];
		push @t, map { $tl->{lo} + int rand($tl->{hi} - $tl->{lo}) } 1 .. 20;
		for my $t (@t)
		{
			push @rows, '(' . scalar(@rows) . ", $t, '$zone')";
			push @want, "$zone " . show_instant(clock($tl, $t));
		}
	}
	my @got = split /\n/, $node->safe_psql(
		'postgres', $session . q{
SELECT z || ' '
       || to_char(to_timestamp(t) AT TIME ZONE z, 'YYYY-MM-DD HH24:MI:SS')
  FROM (VALUES } . join(",\n", @rows) . q{) AS c(i, t, z)
 ORDER BY c.i});
	my @bad = grep { ($got[$_] // '') ne $want[$_] } 0 .. $#want;
	diag "server shows $got[$_], reference $want[$_]"
	  for @bad[ 0 .. ($#bad < 9 ? $#bad : 9) ];
	is(scalar(@bad), 0,
		scalar(@want) . ' local times agree between server and reference');
}

###########################################################################
# 8. The comparison, zone by zone.
###########################################################################

my ($total, $total_runs, %tried) = (0, 0);
for my $z (@ZONES)
{
	my ($zone, $lo, $hi) = @$z;
	my $list = $cases{$zone};
	my $tl   = $timelines{$zone};
	my $got  = server_runs($zone, $list);
	my ($agree, $runs) = (0, 0);
	my (%zone_tried, @diff);
	for my $i (0 .. $#$list)
	{
		my $c    = $list->[$i];
		my $case = sprintf(
			"'%s' in %s from %s (%d runs)",
			$c->{expr}, $zone, show_instant($c->{from}),
			$c->{count});
		$total++;
		# Every expression here is valid: a refusal is a difference too.
		if ($got->[$i] =~ /^ERROR/)
		{
			push @diff, "$case:\n    $got->[$i]";
			next;
		}
		my %st;
		my @want =
		  reference_runs($c->{s}, $tl, $c->{from}, $c->{count}, $hi, \%st);
		$zone_tried{$_}++ for keys %st;
		# Only runs within the zone's years are compared.
		my @server =
		  grep { !/^-?[0-9]+$/ || $_ < $hi } whole_seconds($got->[$i]);
		if ("@want" eq "@server")
		{
			$agree++;
			$runs += @want;
			next;
		}
		push @diff,
			"$case:\n    expected "
		  . join(', ', map { show_instant($_) } @want)
		  . "\n    got      "
		  . join(', ', map { show_instant($_) } @server);
	}
	$total_runs += $runs;
	$tried{$_}  += $zone_tried{$_} for keys %zone_tried;
	my $name = sprintf(
		'%s: %d of %d cases agree (%d runs; %d with runs for skipped '
		  . 'times, %d for repeated times, %d leaving out repeated times)',
		$zone, $agree, scalar(@$list), $runs,
		map { $zone_tried{$_} // 0 } qw(skipped repeated left_out));
	next if is($agree, scalar(@$list), $name);
	diag join "\n", scalar(@diff) . ' differences, the first ones (UTC):',
	  @diff[ 0 .. ($#diff < 9 ? $#diff : 9) ];
}

cmp_ok($total,      '>=', 5000,  "enough cases compared ($total)");
cmp_ok($total_runs, '>=', 50000, "enough runs compared ($total_runs)");
# The two rules for the nights clocks change are what most cases are
# about: enough of them must meet each.
for my $rule (
	[ skipped => 250, 'have a run for skipped times' ],
	[   repeated => 200,
		'have a run at the second showing of a repeated time' ],
	[ left_out => 100, 'leave out the second showing of a repeated time' ])
{
	my ($key, $least, $what) = @$rule;
	cmp_ok($tried{$key} // 0, '>=', $least, "enough cases $what");
}

###########################################################################
# 9. Known cases, worked out by hand from the README.
###########################################################################

# The runs as text, comma-separated, in UTC.
sub runs
{
	my ($expr, $zone, $from, $count) = @_;
	return $node->safe_psql(
		'postgres', $session . qq{
SELECT string_agg(x::text, ',' ORDER BY o)
  FROM dynbgw_next_runs('$expr', '$zone', '$from', $count)
       WITH ORDINALITY AS r(x, o)});
}

# Largest gap in seconds between consecutive runs, and the number of runs.
sub largest_gap
{
	my ($expr, $zone, $from, $count) = @_;
	return $node->safe_psql(
		'postgres', $session . qq{
SELECT max(extract(epoch FROM x - p))::int || ' ' || count(*)
  FROM (SELECT x, lag(x) OVER (ORDER BY o) AS p
          FROM dynbgw_next_runs('$expr', '$zone', '$from', $count)
               WITH ORDINALITY AS r(x, o)) AS g});
}

# New York jumps from 01:59:59 EST to 03:00:00 EDT at 07:00 UTC: 02:30 is
# due at 03:00 EDT, also from the very last second before the jump.
is( runs('30 2 * * *', 'America/New_York', '2026-03-08 06:59:59+00', 1),
	'2026-03-08 07:00:00+00',
	'New York 02:30 in the gap runs at 03:00 EDT, from the second before');
is( runs('30 2 * * *', 'America/New_York', '2026-03-08 06:00:00+00', 2),
	'2026-03-08 07:00:00+00,2026-03-09 06:30:00+00',
	'New York 02:30 in the gap, then the next day');
# Six skipped times of */10, due together once, at 03:00.
is( runs('*/10 * * * *', 'America/New_York', '2026-03-08 06:45:00+00', 3),
	'2026-03-08 06:50:00+00,2026-03-08 07:00:00+00,2026-03-08 07:10:00+00',
	'New York */10 runs once at 03:00 for the skipped hour');
is( runs('30 * * * *', 'America/New_York', '2026-03-08 06:00:00+00', 3),
	'2026-03-08 06:30:00+00,2026-03-08 07:00:00+00,2026-03-08 07:30:00+00',
	'New York 30 * runs at 03:00 for the skipped 02:30');

# Berlin jumps from 02:00 CET to 03:00 CEST at 01:00 UTC: 01:59:59 CET,
# then 02:59:59 (skipped) at 03:00:00 CEST, then 03:59:59 CEST.
is( runs('59 59 * * * *', 'Europe/Berlin', '2026-03-29 00:00:00+00', 3),
	'2026-03-29 00:59:59+00,2026-03-29 01:00:00+00,2026-03-29 01:59:59+00',
	'Berlin 02:59:59 in the gap runs at 03:00:00 CEST');

# New York goes back from 01:59:59 EDT to 01:00:00 EST at 06:00 UTC: a
# frequent schedule runs through both hours that read 01.
my $ny = 'America/New_York';
is(largest_gap('*/10 * * * * *', $ny, '2026-11-01 05:59:50+00', 13),
	'10 13', 'New York */10 seconds: every 10 s across the turn back');
is(largest_gap('*/10 * * * * *', $ny, '2026-11-01 04:30:00+00', 1260),
	'10 1260', 'New York */10 seconds: every 10 s through both 01 hours');
is( runs('*/10 * * * * *', 'America/New_York', '2026-11-01 05:59:50+00', 2),
	'2026-11-01 06:00:00+00,2026-11-01 06:00:10+00',
	'New York */10 seconds: 01:00:00 EST follows 01:59:50 EDT');
is( runs('15 * * * *', 'America/New_York', '2026-11-01 05:00:00+00', 3),
	'2026-11-01 05:15:00+00,2026-11-01 06:15:00+00,2026-11-01 07:15:00+00',
	'New York 15 * runs at 01:15 EDT and 01:15 EST');
# Berlin goes back from 03:00 CEST to 02:00 CET at 01:00 UTC.
is( largest_gap('* * * * *', 'Europe/Berlin', '2026-10-25 00:00:00+00', 120),
	'60 120',
	'Berlin every minute: no gap across the turn back');
is( runs('* * * * *', 'Europe/Berlin', '2026-10-25 00:59:00+00', 2),
	'2026-10-25 01:00:00+00,2026-10-25 01:01:00+00',
	'Berlin every minute: 02:00 CET follows 02:59 CEST');

# A fixed schedule runs at the first 01:30 only.
is( runs('30 1 * * *', 'America/New_York', '2026-11-01 04:00:00+00', 2),
	'2026-11-01 05:30:00+00,2026-11-02 06:30:00+00',
	'New York 01:30 runs once, at 01:30 EDT');
is( runs('30 1 * * *', 'America/New_York', '2026-11-01 05:30:00+00', 1),
	'2026-11-02 06:30:00+00',
	'New York 01:30: no run at 01:30 EST');
# Not frequent although it names every minute: no field begins with "*".
is( runs('0-59 0-23 * * *', 'America/New_York', '2026-11-01 05:59:00+00', 2),
	'2026-11-01 07:00:00+00,2026-11-01 07:01:00+00',
	'New York 0-59 0-23: the repeated hour once only');

# Apia skipped Friday 30 December 2011: 2011-12-29 23:59:59 -10 was followed
# by 2011-12-31 00:00:00 +14, at 2011-12-30 10:00:00 UTC.
is( runs('0 12 * * *', 'Pacific/Apia', '2011-12-29 12:00:00+00', 3),
	'2011-12-29 22:00:00+00,2011-12-30 10:00:00+00,2011-12-30 22:00:00+00',
	'Apia noon on the skipped day runs at the jump');
is( runs('0 0 * * fri', 'Pacific/Apia', '2011-12-25 00:00:00+00', 2),
	'2011-12-30 10:00:00+00,2012-01-05 10:00:00+00',
	'Apia the skipped Friday runs at the jump');

# Sao Paulo went from 2017-10-15 00:00 -03 to 01:00 -02 (03:00 UTC).
is( runs('@daily', 'America/Sao_Paulo', '2017-10-14 02:00:00+00', 2),
	'2017-10-14 03:00:00+00,2017-10-15 03:00:00+00',
	'Sao Paulo midnight in the gap runs at 01:00');

# A schedule that names no day that exists is refused.  (dynbgw_next_runs()
# just lists no run for it.)  One wrongly accepted would launch a worker,
# which the check after the loop sees.
for my $expr ('0 0 31 4 *', '0 0 30 2 *', '0 0 30 feb */2', '0 0 31 2,4,6 *')
{
	my $err = psql_error(
		$node,
		"SELECT dynbgw_launch(1, 'SELECT 1', schedule => '$expr')",
		"'$expr' names no day and is refused");
	like($err, qr/22023/, "'$expr' is refused with SQLSTATE 22023");
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM dynbgw_workers'),
	'0', 'no worker was launched');

$node->stop;
done_testing();
