/** When a TrainingPipeline runs: a 5-field cron or a fixed rate, converted to each scheduler's dialect. */
import { Duration } from '../../core/duration';
import { Errors } from '../../core/errors';

const CRON_ALLOWED = 'five fields "minute hour day-of-month month day-of-week" with numbers, names (JAN, MON), *, ranges a-b, lists a,b and steps */n, e.g. "0 3 * * *"';
const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

interface Field {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  /** Names accepted for values, indexed from `nameBase`. */
  readonly names?: readonly string[];
  readonly nameBase?: number;
}
const FIELDS: readonly Field[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTHS, nameBase: 1 },
  // 0 and 7 are both Sunday, as in Vixie cron.
  { name: 'day-of-week', min: 0, max: 7, names: DAYS, nameBase: 0 },
];

/** The values a cron field selects; throws an error naming the field. */
function expandField(expr: string, field: Field, whole: string): Set<number> {
  const fail = (problem: string) => Errors.invalid('Schedule.cron', 'expression', whole, CRON_ALLOWED, `${field.name} field "${expr}" ${problem}`);
  const value = (text: string): number => {
    const upper = text.toUpperCase();
    const named = field.names?.indexOf(upper) ?? -1;
    if (named >= 0) return named + (field.nameBase ?? 0);
    if (!/^\d+$/.test(text)) throw fail(`has "${text}", which is not a number${field.names ? ' or a name' : ''}`);
    const n = Number(text);
    if (n < field.min || n > field.max) throw fail(`has ${n}, outside ${field.min}-${field.max}`);
    return n;
  };
  const out = new Set<number>();
  for (const part of expr.split(',')) {
    const m = /^(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:\/(\d+))?$/.exec(part);
    if (!m) throw fail(`has "${part}", which is not *, a value, a range a-b or a step x/n`);
    const step = m[2] === undefined ? 1 : Number(m[2]);
    if (step < 1) throw fail('has a step of 0');
    let lo: number;
    let hi: number;
    if (m[1] === '*') {
      lo = field.min;
      hi = field.max;
    } else if (m[1].includes('-')) {
      const [a, b] = m[1].split('-');
      lo = value(a);
      hi = value(b);
      if (lo > hi) throw fail(`has the backwards range ${m[1]}`);
    } else {
      lo = value(m[1]);
      hi = m[2] === undefined ? lo : field.max;
    }
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

/** Days of week (0-6, Sunday 0) as AWS names, consecutive runs of three or more as ranges. */
function awsDays(days: Set<number>): string {
  const sorted = [...days].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    if (j - i >= 2) parts.push(`${DAYS[sorted[i]]}-${DAYS[sorted[j]]}`);
    else for (let k = i; k <= j; k++) parts.push(DAYS[sorted[k]]);
    i = j + 1;
  }
  return parts.join(',');
}

export type ScheduleKind = 'cron' | 'rate';

/** When a pipeline runs. */
export class Schedule {
  /**
   * A standard 5-field cron expression (`minute hour day-of-month month day-of-week`), evaluated in
   * the pipeline's `timezone`. Restricting both day-of-month and day-of-week is refused: cron ORs
   * them, AWS cannot express that.
   */
  public static cron(expression: string): Schedule {
    if (typeof expression !== 'string') throw Errors.invalid('Schedule.cron', 'expression', expression, CRON_ALLOWED);
    const fields = expression.trim().split(/\s+/);
    if (fields.length !== 5) throw Errors.invalid('Schedule.cron', 'expression', expression, CRON_ALLOWED, `has ${fields.length} fields, not 5`);
    const sets = fields.map((f, i) => expandField(f, FIELDS[i], expression));
    const days = new Set([...sets[4]].map((d) => d % 7));
    const domAll = fields[2] === '*' || sets[2].size === 31;
    const dowAll = fields[4] === '*' || days.size === 7;
    if (!domAll && !dowAll) {
      throw Errors.invalid('Schedule.cron', 'expression', expression,
        `${CRON_ALLOWED}; restrict day-of-month or day-of-week, not both`,
        'restricts both day-of-month and day-of-week (cron runs on either; EventBridge Scheduler cannot express that)');
    }
    const upper = (f: string) => f.toUpperCase();
    const aws = [fields[0], fields[1], dowAll ? fields[2] : '?', upper(fields[3]), dowAll ? '?' : awsDays(days), '*'];
    return new Schedule('cron', fields.join(' '), `cron(${aws.join(' ')})`, undefined, () => cronPeriodSeconds(sets, domAll, dowAll));
  }

  /** Every `interval` (whole minutes, at least 1). GCP and Kubernetes take rates that divide an hour or a day evenly. */
  public static rate(interval: Duration): Schedule {
    if (!(interval instanceof Duration)) throw Errors.invalid('Schedule.rate', 'interval', interval, 'a Duration such as Duration.hours(6)');
    const s = interval.toSeconds();
    if (s < 60 || s % 60 !== 0) throw Errors.outOfRange('Schedule.rate', 'interval', interval.toString(), 'whole minutes, at least Duration.minutes(1)');
    const minutes = s / 60;
    const [n, unit] = minutes % 1440 === 0 ? [minutes / 1440, 'day'] : minutes % 60 === 0 ? [minutes / 60, 'hour'] : [minutes, 'minute'];
    let cron: string | undefined;
    if (minutes < 60 && 60 % minutes === 0) cron = minutes === 1 ? '* * * * *' : `*/${minutes} * * * *`;
    else if (minutes % 60 === 0 && minutes < 1440 && 1440 % minutes === 0) cron = minutes === 60 ? '0 * * * *' : `0 */${minutes / 60} * * *`;
    else if (minutes === 1440) cron = '0 0 * * *';
    return new Schedule('rate', cron, `rate(${n} ${unit}${n === 1 ? '' : 's'})`, interval, () => s);
  }

  private constructor(
    public readonly kind: ScheduleKind,
    private readonly unixCron: string | undefined,
    /** EventBridge Scheduler's form: `cron(m h dom mon dow year)` with `?`, or `rate(n unit)`. */
    public readonly awsExpression: string,
    public readonly interval?: Duration,
    private readonly period?: () => number,
  ) {}

  private periodCache?: number;
  /** The longest gap between two runs, in seconds (what a freshness alarm must allow); computed on first use. */
  public get periodSeconds(): number | undefined {
    if (this.period && this.periodCache === undefined) this.periodCache = this.period();
    return this.periodCache;
  }

  /** The 5-field cron Cloud Scheduler and Kubernetes CronJobs take; throws for a rate they cannot express. */
  public toCron(where: string, target: string): string {
    if (this.unixCron === undefined) {
      throw Errors.notOffered(where, 'schedule', this.interval?.toString(),
        `${this.awsExpression} cannot be written as a cron expression, which ${target} needs`,
        'rates that divide an hour or a day evenly (1-30 minutes, 1-12 hours, 1 day), or Schedule.cron(...)');
    }
    return this.unixCron;
  }

  /** A short description: the cron text or the rate. */
  public toString(): string {
    return this.kind === 'cron' ? this.unixCron! : this.awsExpression;
  }
}

/**
 * The longest gap between consecutive firings of a cron, found by walking minutes through a fixed
 * 62-day window in UTC (two months cover every monthly pattern; fixed so synth stays deterministic).
 */
function cronPeriodSeconds(sets: Set<number>[], domAll: boolean, dowAll: boolean): number {
  const [minutes, hours, doms, months, dows] = sets;
  const days = new Set([...dows].map((d) => d % 7));
  const start = Date.UTC(2025, 0, 1);
  let first: number | undefined;
  let last: number | undefined;
  let longest = 0;
  for (let m = 0; m < 62 * 1440; m++) {
    const t = new Date(start + m * 60_000);
    const dayOk = domAll && dowAll ? true : domAll ? days.has(t.getUTCDay()) : doms.has(t.getUTCDate());
    if (!minutes.has(t.getUTCMinutes()) || !hours.has(t.getUTCHours()) || !months.has(t.getUTCMonth() + 1) || !dayOk) continue;
    if (last !== undefined) longest = Math.max(longest, m - last);
    first ??= m;
    last = m;
  }
  // One firing in the window (a yearly cron): the gap is the window's own length at least.
  if (first === undefined || first === last) return 366 * 86400;
  return longest * 60;
}
