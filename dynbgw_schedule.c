/*-------------------------------------------------------------------------
 *
 * dynbgw_schedule.c
 *		Cron schedules: parsing an expression, and the next time it is due
 *		in a time zone.
 *
 * An expression has the five classic fields (minute hour day-of-month month
 * day-of-week), or six with a leading seconds field, or is one of @yearly,
 * @annually, @monthly, @weekly, @daily, @midnight, @hourly.  A field is a
 * list of *, a value or a range, each with an optional /step; months and
 * weekdays also by their English three-letter names; weekday 7 is Sunday.
 * As in Vixie cron, when both day fields are restricted a day matches
 * either, otherwise both must match (a field that begins with * is not
 * restricted).
 *
 * Times are found in local wall-clock time and then placed on the time
 * line.  Local times the clocks skip when they go forward are due together
 * at the first instant after the jump.  Local times that happen twice when
 * the clocks go back are due at both instants for a frequent schedule (its
 * seconds, minute or hour field begins with *, Vixie cron's "wildcard"
 * jobs), and at the first only for any other.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "dynbgw.h"

PG_FUNCTION_INFO_V1(dynbgw_next_runs);

typedef struct DynbgwField
{
	const char *name;
	int			min;
	int			max;
	const char *const *names;	/* names of min, min + 1, ..., or NULL */
} DynbgwField;

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec", NULL
};

static const char *const weekday_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

/* In the order of a six-field expression. */
static const DynbgwField fields[] = {
	{"second", 0, 59, NULL},
	{"minute", 0, 59, NULL},
	{"hour", 0, 23, NULL},
	{"day-of-month", 1, 31, NULL},
	{"month", 1, 12, month_names},
	{"day-of-week", 0, 7, weekday_names}
};

static const struct
{
	const char *macro;
	const char *expansion;
}			macros[] = {
	{"@yearly", "0 0 1 1 *"},
	{"@annually", "0 0 1 1 *"},
	{"@monthly", "0 0 1 * *"},
	{"@weekly", "0 0 * * 0"},
	{"@daily", "0 0 * * *"},
	{"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"}
};

static void
dynbgw_schedule_error(const char *expr, int field, int position,
					  const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid cron schedule \"%s\"", expr),
			 field >= 0 ?
			 errdetail("In the %s field, at position %d: %s.",
					   fields[field].name, position, problem) :
			 errdetail("%s.", problem),
			 errhint("A schedule has five fields (minute hour day-of-month month day-of-week), or six with seconds first, or is one of @yearly, @monthly, @weekly, @daily, @hourly.")));
}

/* A number or, where the field has them, a name; NULL end if neither. */
static int
dynbgw_field_value(const DynbgwField *f, const char *p, const char **end)
{
	if (isdigit((unsigned char) *p))
	{
		int			v = 0;

		while (isdigit((unsigned char) *p) && v < 1000)
			v = v * 10 + (*p++ - '0');
		*end = p;
		return v;
	}
	if (f->names != NULL)
	{
		for (int i = 0; f->names[i] != NULL; i++)
		{
			if (pg_strncasecmp(p, f->names[i], 3) == 0 &&
				!isalpha((unsigned char) p[3]))
			{
				*end = p + 3;
				return f->min + i;
			}
		}
	}
	*end = NULL;
	return 0;
}

/*
 * Parse field number field, the text from start to end of expr, into a set
 * of values.  Returns whether it begins with *.
 */
static bool
dynbgw_parse_field(const char *expr, int field, const char *start,
				   const char *end, uint64 *set)
{
	const DynbgwField *f = &fields[field];
	const char *p = start;

	*set = 0;
	for (;;)
	{
		int			lo;
		int			hi;
		int			step = 1;
		bool		range = false;
		const char *item = p;
		const char *after;

		if (*p == '*')
		{
			lo = f->min;
			hi = f->max;
			p++;
		}
		else
		{
			lo = dynbgw_field_value(f, p, &after);
			if (after == NULL)
				dynbgw_schedule_error(expr, field, (int) (p - expr) + 1,
									  "a number, a name or * was expected");
			p = after;
			hi = lo;
			if (*p == '-')
			{
				range = true;
				p++;
				hi = dynbgw_field_value(f, p, &after);
				if (after == NULL)
					dynbgw_schedule_error(expr, field, (int) (p - expr) + 1,
										  "the end of the range is missing");
				p = after;
			}
			if (lo < f->min || hi > f->max || lo > hi)
				dynbgw_schedule_error(expr, field, (int) (item - expr) + 1,
									  psprintf("values must be between %d and %d, in ascending order",
											   f->min, f->max));
		}
		if (*p == '/')
		{
			p++;
			step = dynbgw_field_value(f, p, &after);
			if (after == NULL || step < 1)
				dynbgw_schedule_error(expr, field, (int) (p - expr) + 1,
									  "a step must be a number of at least 1");
			p = after;
			/* "5/15" means from 5 to the end, every 15 */
			if (item[0] != '*' && !range)
				hi = f->max;
		}
		for (int v = lo; v <= hi; v += step)
			*set |= UINT64CONST(1) << v;
		if (p == end)
			break;
		if (*p != ',')
			dynbgw_schedule_error(expr, field, (int) (p - expr) + 1,
								  "a comma, a range or a step was expected");
		p++;
	}
	return start[0] == '*';
}

/*
 * Parse a cron expression into schedule; errors are 22023 and say which
 * field is wrong where.
 */
void
dynbgw_schedule_parse(const char *expr, DynbgwSchedule *schedule)
{
	const char *text = expr;
	const char *starts[6];
	const char *ends[6];
	int			count = 0;
	int			first;
	uint64		sets[6];
	bool		stars[6];

	if (strlen(expr) >= DYNBGW_MAX_SCHEDULE)
		dynbgw_schedule_error(expr, -1, 0,
							  psprintf("A schedule has at most %d bytes",
									   DYNBGW_MAX_SCHEDULE - 1));
	while (isspace((unsigned char) *text))
		text++;
	if (*text == '@')
	{
		size_t		len = strcspn(text, " \t\n");

		if (strspn(text + len, " \t\n") != strlen(text + len))
			dynbgw_schedule_error(expr, -1, 0,
								  "Nothing may follow an @ keyword");
		for (size_t i = 0; i < lengthof(macros); i++)
		{
			if (strlen(macros[i].macro) == len &&
				pg_strncasecmp(text, macros[i].macro, len) == 0)
			{
				dynbgw_schedule_parse(macros[i].expansion, schedule);
				return;
			}
		}
		dynbgw_schedule_error(expr, -1, 0, "Unknown @ keyword");
	}

	for (const char *p = text; *p != '\0';)
	{
		if (isspace((unsigned char) *p))
		{
			p++;
			continue;
		}
		if (count == 6)
			dynbgw_schedule_error(expr, -1, 0, "It has more than six fields");
		starts[count] = p;
		while (*p != '\0' && !isspace((unsigned char) *p))
			p++;
		ends[count++] = p;
	}
	if (count < 5)
		dynbgw_schedule_error(expr, -1, 0,
							  psprintf("It has %d field%s; five or six are needed",
									   count, count == 1 ? "" : "s"));

	/* Five fields: no seconds field, the second is 0. */
	first = 6 - count;
	sets[0] = UINT64CONST(1);
	stars[0] = false;
	for (int i = 0; i < count; i++)
		stars[first + i] = dynbgw_parse_field(expr, first + i, starts[i],
											  ends[i], &sets[first + i]);

	schedule->seconds = sets[0];
	schedule->minutes = sets[1];
	schedule->hours = (uint32) sets[2];
	schedule->days = (uint32) sets[3];
	schedule->months = (uint16) sets[4];
	/* 7 is Sunday too */
	schedule->weekdays = (uint8) ((sets[5] | (sets[5] >> 7)) & 0x7f);
	schedule->days_restricted = !stars[3];
	schedule->weekdays_restricted = !stars[5];
	schedule->frequent = stars[0] || stars[1] || stars[2];
}

static bool
dynbgw_day_matches(const DynbgwSchedule *s, int year, int month, int day)
{
	bool		dom = (s->days & (UINT64CONST(1) << day)) != 0;
	bool		dow = (s->weekdays &
					   (1 << j2day(date2j(year, month, day)))) != 0;

	if (s->days_restricted && s->weekdays_restricted)
		return dom || dow;
	return dom && dow;
}

/*
 * Move tm to the start of the next month, day, hour, minute or second.  A
 * day past the end of its month is moved on by dynbgw_next_local().
 */
static void
dynbgw_next_month(struct pg_tm *tm)
{
	tm->tm_mday = 1;
	tm->tm_hour = tm->tm_min = tm->tm_sec = 0;
	if (++tm->tm_mon > MONTHS_PER_YEAR)
	{
		tm->tm_mon = 1;
		tm->tm_year++;
	}
}

static void
dynbgw_next_day(struct pg_tm *tm)
{
	tm->tm_mday++;
	tm->tm_hour = tm->tm_min = tm->tm_sec = 0;
}

static void
dynbgw_next_hour(struct pg_tm *tm)
{
	tm->tm_min = tm->tm_sec = 0;
	if (++tm->tm_hour == HOURS_PER_DAY)
		dynbgw_next_day(tm);
}

static void
dynbgw_next_minute(struct pg_tm *tm)
{
	tm->tm_sec = 0;
	if (++tm->tm_min == MINS_PER_HOUR)
		dynbgw_next_hour(tm);
}

static void
dynbgw_next_second(struct pg_tm *tm)
{
	if (++tm->tm_sec == SECS_PER_MINUTE)
		dynbgw_next_minute(tm);
}

/*
 * The first local wall-clock time at or after tm that the schedule
 * matches, in tm.  False if none within the horizon.
 */
static bool
dynbgw_next_local(const DynbgwSchedule *s, struct pg_tm *tm)
{
	int			last_year = tm->tm_year + DYNBGW_SCHEDULE_HORIZON_YEARS;

	while (tm->tm_year <= last_year)
	{
		if (!(s->months & (1 << tm->tm_mon)) ||
			tm->tm_mday > day_tab[isleap(tm->tm_year)][tm->tm_mon - 1])
			dynbgw_next_month(tm);
		else if (!dynbgw_day_matches(s, tm->tm_year, tm->tm_mon, tm->tm_mday))
			dynbgw_next_day(tm);
		else if (!(s->hours & (UINT64CONST(1) << tm->tm_hour)))
			dynbgw_next_hour(tm);
		else if (!(s->minutes & (UINT64CONST(1) << tm->tm_min)))
			dynbgw_next_minute(tm);
		else if (!(s->seconds & (UINT64CONST(1) << tm->tm_sec)))
			dynbgw_next_second(tm);
		else
			return true;
	}
	return false;
}

/*
 * Seconds east of UTC in zone tz at instant t, which is brought into the
 * range of timestamps first.  An offset of 16 hours or more is refused, as
 * in a timestamptz: the search below relies on that bound
 * (DYNBGW_MAX_OFFSET_US).
 */
static int
dynbgw_gmtoff(TimestampTz t, pg_tz *tz)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tzoff;

	t = Max(t, MIN_TIMESTAMP);
	t = Min(t, END_TIMESTAMP - 1);
	if (timestamp2tm(t, &tzoff, &tm, &fsec, NULL, tz) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	if (tzoff <= -TZDISP_LIMIT || tzoff >= TZDISP_LIMIT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TIME_ZONE_DISPLACEMENT_VALUE),
				 errmsg("time zone \"%s\" is too far from UTC",
						pg_get_timezone_name(tz)),
				 errdetail("Its offset from UTC reaches 16 hours, which a timestamptz cannot carry.")));
	return -tzoff;
}

/* t rounded down to a whole second, before 2000 too. */
static TimestampTz
dynbgw_floor_second(TimestampTz t)
{
	return t - ((t % USECS_PER_SEC) + USECS_PER_SEC) % USECS_PER_SEC;
}

/* The local wall-clock time in tz at instant t, as a timestamp. */
static Timestamp
dynbgw_local(TimestampTz t, pg_tz *tz)
{
	return t + (TimestampTz) dynbgw_gmtoff(t, tz) * USECS_PER_SEC;
}

/*
 * Every instant that shows a given local time lies less than this from it,
 * as offsets are less than 16 hours.
 */
#define DYNBGW_MAX_OFFSET_US	((TimestampTz) TZDISP_LIMIT * USECS_PER_SEC)

/*
 * More changes of offset than this within 32 hours are not looked at: no
 * zone has more than two.
 */
#define DYNBGW_MAX_CHANGES		8

/* A change of a zone's offset: from "before" to "after" seconds east, at "at". */
typedef struct DynbgwChange
{
	TimestampTz at;
	int			before;
	int			after;
} DynbgwChange;

/*
 * The first whole second after lo, and no later than hi, at which the
 * offset of tz is no longer what it is at lo.  Offsets change on whole
 * seconds.
 */
static TimestampTz
dynbgw_offset_change(TimestampTz lo, TimestampTz hi, pg_tz *tz)
{
	int			off = dynbgw_gmtoff(lo, tz);

	while (hi - lo > USECS_PER_SEC)
	{
		TimestampTz mid = lo + (hi - lo) / 2;

		if (dynbgw_gmtoff(mid, tz) == off)
			lo = mid;
		else
			hi = mid;
	}
	return dynbgw_floor_second(hi);
}

/*
 * The changes of offset of tz after "from" and up to "to", in order, into
 * changes; returns how many.
 */
static int
dynbgw_offset_changes(pg_tz *tz, TimestampTz from, TimestampTz to,
					  DynbgwChange *changes)
{
	TimestampTz last = Max(from, MIN_TIMESTAMP);
	int			count = 0;

	to = Min(to, END_TIMESTAMP - USECS_PER_SEC);
	while (count < DYNBGW_MAX_CHANGES && last < to)
	{
		pg_time_t	t = timestamptz_to_time_t(last);
		pg_time_t	boundary;
		long int	before_gmtoff;
		long int	after_gmtoff;
		int			before_isdst;
		int			after_isdst;
		TimestampTz at;

		if (pg_next_dst_boundary(&t, &before_gmtoff, &before_isdst, &boundary,
								 &after_gmtoff, &after_isdst, tz) == 1 &&
			time_t_to_timestamptz(boundary) > last)
			at = time_t_to_timestamptz(boundary);
		else if (dynbgw_gmtoff(last, tz) != dynbgw_gmtoff(to, tz))
		{
			/*
			 * pg_next_dst_boundary() has nothing to say, or nothing sound,
			 * where a zone's table of changes ends (a POSIX rule's in 2770)
			 * and near the end of time, though pg_localtime() carries the
			 * rule on.
			 */
			at = dynbgw_offset_change(last, to, tz);
		}
		else
			break;
		if (at > to)
			break;
		/* What pg_localtime() says, as everywhere else; a type may change alone. */
		changes[count].at = at;
		changes[count].before = dynbgw_gmtoff(at - USECS_PER_SEC, tz);
		changes[count].after = dynbgw_gmtoff(at, tz);
		if (changes[count].before != changes[count].after)
			count++;
		last = at;
	}
	return count;
}

/*
 * The instants at which a run for the local time "local" is due, in order,
 * into instants: each instant the clock of tz shows it, and, if the clock
 * jumps forward over it, the first instant after the jump.  Returns how
 * many; at least one, since the clock passes every local time.
 */
static int
dynbgw_local_instants(Timestamp local, pg_tz *tz, TimestampTz *instants)
{
	TimestampTz from = local - DYNBGW_MAX_OFFSET_US;
	DynbgwChange changes[DYNBGW_MAX_CHANGES];
	int			nchanges = dynbgw_offset_changes(tz, from,
												 local + DYNBGW_MAX_OFFSET_US,
												 changes);
	TimestampTz start = from;
	int			off = dynbgw_gmtoff(from, tz);
	int			count = 0;

	for (int i = 0; i <= nchanges; i++)
	{
		TimestampTz t = local - (TimestampTz) off * USECS_PER_SEC;

		/* shown while the offset is off */
		if (t >= start && (i == nchanges || t < changes[i].at))
			instants[count++] = t;
		if (i == nchanges)
			break;
		/* jumped over */
		if (local >= changes[i].at + (TimestampTz) changes[i].before * USECS_PER_SEC &&
			local < changes[i].at + (TimestampTz) changes[i].after * USECS_PER_SEC)
			instants[count++] = changes[i].at;
		start = changes[i].at;
		off = changes[i].after;
	}
	Assert(count > 0);
	return count;
}

/*
 * Local times are timestamps for arithmetic and a struct pg_tm for
 * dynbgw_next_local(), and range up to 16 hours beyond either end of the
 * range of timestamps: the local time of an instant in range may.  The
 * conversions of timestamp.c stop at the ends.
 */
#define DYNBGW_FIRST_LOCAL	(MIN_TIMESTAMP - DYNBGW_MAX_OFFSET_US)
#define DYNBGW_END_LOCAL	(END_TIMESTAMP + DYNBGW_MAX_OFFSET_US)

static void
dynbgw_local_to_tm(Timestamp local, struct pg_tm *tm)
{
	int64		days = local / USECS_PER_DAY;
	int64		secs;

	if (local % USECS_PER_DAY < 0)
		days--;
	secs = (local - days * USECS_PER_DAY) / USECS_PER_SEC;
	j2date((int) (days + POSTGRES_EPOCH_JDATE),
		   &tm->tm_year, &tm->tm_mon, &tm->tm_mday);
	tm->tm_hour = (int) (secs / SECS_PER_HOUR);
	tm->tm_min = (int) (secs / SECS_PER_MINUTE % MINS_PER_HOUR);
	tm->tm_sec = (int) (secs % SECS_PER_MINUTE);
}

/* DT_NOEND past the last local time. */
static Timestamp
dynbgw_tm_to_local(const struct pg_tm *tm)
{
	int			julian = date2j(tm->tm_year, tm->tm_mon, tm->tm_mday);

	/* before the product can overflow */
	if (julian > TIMESTAMP_END_JULIAN + 1)
		return DT_NOEND;
	return ((Timestamp) (julian - POSTGRES_EPOCH_JDATE) * SECS_PER_DAY +
			(tm->tm_hour * MINS_PER_HOUR + tm->tm_min) * SECS_PER_MINUTE +
			tm->tm_sec) * USECS_PER_SEC;
}

/*
 * The first matching local time at or after "from", or DT_NOEND if none
 * within the horizon or the local times of the range of timestamps.
 */
static Timestamp
dynbgw_next_match(const DynbgwSchedule *s, Timestamp from)
{
	struct pg_tm tm;
	Timestamp	local;

	from = Max(from, DYNBGW_FIRST_LOCAL);
	if (from >= DYNBGW_END_LOCAL)
		return DT_NOEND;
	dynbgw_local_to_tm(from, &tm);
	if (!dynbgw_next_local(s, &tm))
		return DT_NOEND;
	local = dynbgw_tm_to_local(&tm);
	return local < DYNBGW_END_LOCAL ? local : DT_NOEND;
}

/*
 * The first instant after last at which the schedule is due, among those of
 * the local times after that of last, taken in order.  A local time's
 * first instant is never earlier than that of a local time before it, so
 * the first found is the answer for a schedule due at first instants only;
 * and the clock cannot reach a later local time without passing this one,
 * so it is the answer for a frequent schedule too.
 */
static TimestampTz
dynbgw_next_ahead(const DynbgwSchedule *s, pg_tz *tz, TimestampTz last)
{
	Timestamp	from = dynbgw_local(last, tz) + USECS_PER_SEC;

	for (;;)
	{
		Timestamp	local = dynbgw_next_match(s, from);
		TimestampTz instants[2 * DYNBGW_MAX_CHANGES + 1];
		int			count;

		if (local == DT_NOEND)
			return DT_NOEND;
		count = dynbgw_local_instants(local, tz, instants);
		for (int i = 0; i < (s->frequent ? count : 1); i++)
		{
			if (instants[i] > last)
				return instants[i];
		}
		from = local + USECS_PER_SEC;
	}
}

/*
 * For a frequent schedule: the first instant after last at which it is due
 * for a local time no later than that of last, once the clocks have gone
 * back; DT_NOEND if there is none.  Such an instant shows, or jumps over, a
 * time no later than that of last, so it comes less than 16 hours after it.
 * The stretches of constant offset after last are taken in order.
 */
static TimestampTz
dynbgw_next_behind(const DynbgwSchedule *s, pg_tz *tz, TimestampTz last)
{
	Timestamp	last_local = dynbgw_local(last, tz);
	DynbgwChange changes[DYNBGW_MAX_CHANGES];
	int			nchanges = dynbgw_offset_changes(tz, last,
												 last_local + DYNBGW_MAX_OFFSET_US,
												 changes);

	for (int i = 0; i < nchanges; i++)
	{
		TimestampTz before = (TimestampTz) changes[i].before * USECS_PER_SEC;
		TimestampTz after = (TimestampTz) changes[i].after * USECS_PER_SEC;
		Timestamp	to;
		Timestamp	local;

		/* the times it jumps over */
		to = Min(changes[i].at + after - USECS_PER_SEC, last_local);
		if (after > before && changes[i].at + before <= to)
		{
			local = dynbgw_next_match(s, changes[i].at + before);
			if (local <= to)
				return changes[i].at;
		}

		/* the times it shows until the next change */
		to = last_local;
		if (i + 1 < nchanges)
			to = Min(to, changes[i + 1].at + after - USECS_PER_SEC);
		if (changes[i].at + after <= to)
		{
			local = dynbgw_next_match(s, changes[i].at + after);
			if (local <= to)
				return local - after;
		}
	}
	return DT_NOEND;
}

/*
 * The first instant after "after" at which the schedule is due in tz, or
 * DT_NOEND if it never is within the range of timestamps.
 */
TimestampTz
dynbgw_schedule_next(const DynbgwSchedule *s, pg_tz *tz, TimestampTz after)
{
	TimestampTz last;
	TimestampTz next;

	if (TIMESTAMP_NOT_FINITE(after))
		return DT_NOEND;
	last = dynbgw_floor_second(after);
	next = dynbgw_next_ahead(s, tz, last);
	if (s->frequent)
		next = Min(next, dynbgw_next_behind(s, tz, last));
	if (next != DT_NOEND && !IS_VALID_TIMESTAMP(next))
		return DT_NOEND;
	return next;
}

/*
 * Refuse a zone whose offset from UTC reaches 16 hours within the coming
 * year, which sees every offset of a POSIX rule such as "<+25>-25".
 */
static void
dynbgw_check_offsets(pg_tz *tz)
{
	pg_time_t	t = timestamptz_to_time_t(GetCurrentTimestamp());
	pg_time_t	end = t + 366 * SECS_PER_DAY;
	pg_time_t	boundary;
	long int	before_gmtoff;
	long int	after_gmtoff;
	int			before_isdst;
	int			after_isdst;

	(void) dynbgw_gmtoff(time_t_to_timestamptz(t), tz);
	while (t < end &&
		   pg_next_dst_boundary(&t, &before_gmtoff, &before_isdst, &boundary,
								&after_gmtoff, &after_isdst, tz) == 1)
	{
		(void) dynbgw_gmtoff(time_t_to_timestamptz(boundary), tz);
		t = boundary;
	}
}

/*
 * A time zone argument: a name PostgreSQL knows, or the session's TimeZone
 * when NULL.  Returns the zone; its canonical name goes to name.
 */
pg_tz *
dynbgw_timezone_arg(FunctionCallInfo fcinfo, int argno, char *name)
{
	pg_tz	   *tz = session_timezone;

	if (!PG_ARGISNULL(argno))
	{
		char	   *tzname = text_to_cstring(PG_GETARG_TEXT_PP(argno));

		tz = pg_tzset(tzname);
		if (tz == NULL || !pg_tz_acceptable(tz))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("time zone \"%s\" not recognized", tzname),
					 errhint("Use a name from pg_timezone_names.")));
	}
	dynbgw_check_offsets(tz);
	strlcpy(name, pg_get_timezone_name(tz), DYNBGW_MAX_TIMEZONE);
	return tz;
}

/*
 * dynbgw_next_runs(schedule, timezone, from, count) returns setof timestamptz
 *
 * The next count times at which schedule is due in timezone after from: to
 * check an expression before launching a worker with it.
 */
Datum
dynbgw_next_runs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DynbgwSchedule schedule;
	char		tzname[DYNBGW_MAX_TIMEZONE];
	pg_tz	   *tz;
	TimestampTz t;
	int			count;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("schedule, from and count must not be null")));
	dynbgw_schedule_parse(text_to_cstring(PG_GETARG_TEXT_PP(0)), &schedule);
	tz = dynbgw_timezone_arg(fcinfo, 1, tzname);
	t = PG_GETARG_TIMESTAMPTZ(2);
	if (TIMESTAMP_NOT_FINITE(t))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("from must be a finite timestamp")));
	count = PG_GETARG_INT32(3);
	if (count < 0 || count > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("count must be between 0 and 100000")));

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	for (int i = 0; i < count; i++)
	{
		Datum		value;
		bool		isnull = false;

		CHECK_FOR_INTERRUPTS();
		t = dynbgw_schedule_next(&schedule, tz, t);
		if (t == DT_NOEND)
			break;
		value = TimestampTzGetDatum(t);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value,
							 &isnull);
	}
	return (Datum) 0;
}
