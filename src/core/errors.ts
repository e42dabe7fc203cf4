import { IConstruct } from 'constructs';

/** Stable codes: users and tests match on them, so never reuse or rename one. */
export type MlInfraErrorCode =
  | 'INVALID_PROP'
  | 'MISSING_PROP'
  | 'OUT_OF_RANGE'
  | 'UNKNOWN_VALUE'
  | 'NOT_OFFERED'
  | 'CONFLICTING_PROPS'
  | 'MISSING_FILE'
  | 'MISSING_PACKAGE'
  | 'INCOMPATIBLE_PACKAGE'
  | 'CROSS_CLOUD_GRANT';

export interface MlInfraErrorDetails {
  readonly code: MlInfraErrorCode;
  /** Construct path (`stack/cluster`) or another locator for where the bad value came from. */
  readonly path: string;
  /** The prop, dotted for nested values (`nodes.max`). */
  readonly prop: string;
  readonly value: unknown;
  /** What would have been accepted. */
  readonly allowed: string;
}

/** The one error type every construct throws for bad input. */
export class MlInfraError extends Error {
  public readonly code: MlInfraErrorCode;
  public readonly path: string;
  public readonly prop: string;
  public readonly value: unknown;
  public readonly allowed: string;

  /** `problem` is a sentence about the prop; the default rendering adds the value and what is allowed. */
  constructor(details: MlInfraErrorDetails, problem: string, rendered?: string) {
    super(`[${details.code}] ${details.path}: ${rendered ?? `${details.prop} ${problem} (got ${show(details.value)}); allowed: ${details.allowed}`}`);
    this.name = 'MlInfraError';
    this.code = details.code;
    this.path = details.path;
    this.prop = details.prop;
    this.value = details.value;
    this.allowed = details.allowed;
  }
}

/** Renders a bad value for a message: short, unambiguous, never a multi-line dump. */
export function show(value: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(value) ?? String(value);
  } catch {
    s = String(value);
  }
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

type Where = IConstruct | string;
const pathOf = (where: Where): string => (typeof where === 'string' ? where : where.node.path);

/** Factories: the only way code in this package builds an MlInfraError. */
export const Errors = {
  invalid(where: Where, prop: string, value: unknown, allowed: string, problem = 'is invalid'): MlInfraError {
    return new MlInfraError({ code: 'INVALID_PROP', path: pathOf(where), prop, value, allowed }, problem);
  },
  missing(where: Where, prop: string, allowed: string): MlInfraError {
    return new MlInfraError({ code: 'MISSING_PROP', path: pathOf(where), prop, value: undefined, allowed }, 'is required');
  },
  outOfRange(where: Where, prop: string, value: unknown, allowed: string): MlInfraError {
    return new MlInfraError({ code: 'OUT_OF_RANGE', path: pathOf(where), prop, value, allowed }, 'is out of range');
  },
  unknown(where: Where, prop: string, value: unknown, known: readonly string[]): MlInfraError {
    return new MlInfraError(
      { code: 'UNKNOWN_VALUE', path: pathOf(where), prop, value, allowed: `one of ${known.join(', ')}` },
      'is not a known value',
    );
  },
  /** `what` reads as a sentence subject: "H100 x3 is not offered on gcp; offered: 1, 2, 4, 8". */
  notOffered(where: Where, prop: string, value: unknown, what: string, offered: string): MlInfraError {
    return new MlInfraError({ code: 'NOT_OFFERED', path: pathOf(where), prop, value, allowed: offered }, 'is not offered',
      `${prop}: ${what}; offered: ${offered}`);
  },
  conflict(where: Where, prop: string, value: unknown, allowed: string, problem: string): MlInfraError {
    return new MlInfraError({ code: 'CONFLICTING_PROPS', path: pathOf(where), prop, value, allowed }, problem);
  },
  /** A peer package the program needs (a target's provider) is not installed. */
  missingPackage(where: Where, prop: string, pkg: string, range: string): MlInfraError {
    return new MlInfraError({ code: 'MISSING_PACKAGE', path: pathOf(where), prop, value: pkg, allowed: `npm install ${pkg}@${range}` },
      'needs a package that is not installed', `${prop} needs ${pkg}, which is not installed; install it with: npm install ${pkg}@${range}`);
  },
  /** Two copies of `constructs`, or a major version this library was not built for. */
  incompatiblePackage(where: Where, prop: string, value: unknown, fix: string): MlInfraError {
    return new MlInfraError({ code: 'INCOMPATIBLE_PACKAGE', path: pathOf(where), prop, value, allowed: fix }, 'is incompatible');
  },
  /**
   * A grant whose grantee is on another cloud than the granting construct: IAM of one cloud cannot
   * name a principal of another. `method` is the grant method (`grantRead`), `owner` what grants (`the cluster`).
   */
  crossCloudGrant(where: Where, method: string, granteeKind: string, ownerKind: string, owner = 'the construct'): MlInfraError {
    return new MlInfraError({ code: 'CROSS_CLOUD_GRANT', path: pathOf(where), prop: method, value: granteeKind, allowed: `a grantee on ${ownerKind}` },
      'crosses clouds', `${method}: grantee is on ${granteeKind}, ${owner} on ${ownerKind}; grants do not cross clouds (allowed: a grantee on ${ownerKind})`);
  },
  missingFile(where: Where, prop: string, file: string, fix: string): MlInfraError {
    return new MlInfraError({ code: 'MISSING_FILE', path: pathOf(where), prop, value: file, allowed: fix }, 'names a file that does not exist');
  },
};
