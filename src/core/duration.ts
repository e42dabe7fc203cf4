import { Token } from 'cdktf';
import { Errors } from './errors';

/** A length of time. Stored in whole seconds: every consumer (TTLs, schedules, timeouts) wants seconds or coarser. */
export class Duration {
  public static seconds(amount: number): Duration {
    return new Duration(amount, 1, 'seconds');
  }
  public static minutes(amount: number): Duration {
    return new Duration(amount, 60, 'minutes');
  }
  public static hours(amount: number): Duration {
    return new Duration(amount, 3600, 'hours');
  }
  public static days(amount: number): Duration {
    return new Duration(amount, 86400, 'days');
  }

  private readonly totalSeconds: number;

  private constructor(private readonly amount: number, unitSeconds: number, private readonly unit: string) {
    // Durations become TTLs, schedules and timeouts computed at synth: a Terraform value cannot be one.
    if (Token.isUnresolved(amount)) throw Errors.invalid(`Duration.${unit}`, 'amount', '(a Terraform value)', 'a literal number >= 0', 'is not known at synth time');
    if (typeof amount !== 'number' || !Number.isFinite(amount) || amount < 0) {
      throw Errors.outOfRange(`Duration.${unit}`, 'amount', amount, 'a finite number >= 0');
    }
    const s = amount * unitSeconds;
    if (!Number.isInteger(Math.round(s * 1000) / 1000) || Math.abs(s - Math.round(s)) > 1e-9) {
      throw Errors.invalid(`Duration.${unit}`, 'amount', amount, `a whole number of seconds (${unit} x ${unitSeconds})`, 'is not a whole number of seconds');
    }
    this.totalSeconds = Math.round(s);
  }

  public toSeconds(): number {
    return this.totalSeconds;
  }
  /** Whole minutes; throws when the duration is not a whole number of minutes. */
  public toMinutes(): number {
    return this.whole(60, 'minutes');
  }
  public toHours(): number {
    return this.whole(3600, 'hours');
  }
  public toDays(): number {
    return this.whole(86400, 'days');
  }
  public toString(): string {
    return `${this.amount} ${this.unit}`;
  }

  private whole(unit: number, name: string): number {
    if (this.totalSeconds % unit !== 0) {
      throw Errors.invalid('Duration', `to${name[0].toUpperCase()}${name.slice(1)}()`, this.toString(), `a duration of whole ${name}`, `cannot be expressed in whole ${name}`);
    }
    return this.totalSeconds / unit;
  }
}
