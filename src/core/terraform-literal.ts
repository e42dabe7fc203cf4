/** Terraform reads every string as a template; a user's literal text must not be read as one. */
import { Token } from 'cdktf';

/**
 * `s` as a Terraform literal: `${` becomes `$${` and `%{` becomes `%%{` (Terraform's escapes), so
 * `${HOME}` reaches the host as `${HOME}`. Strings holding cdktf tokens are left as they are: their
 * `${...}` are the references. A function replacement, because in a replacement string `$$` is one `$`.
 */
export function tfLiteral(s: string): string {
  if (Token.isUnresolved(s)) return s;
  return s.replace(/\$\{/g, () => '$${').replace(/%\{/g, () => '%%{');
}
