/** IAM policy statements and the wildcard matching IAM applies to their actions and resources. */
export interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: string | string[];
}

/** One call a role must be allowed to make. */
export interface Need {
  action: string;
  resource: string;
  why: string;
}

/** IAM's wildcard match: `*` any run of characters, `?` one. */
export const matches = (pattern: string, value: string) =>
  new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  ).test(value);

export const list = (v: string | string[]) => (Array.isArray(v) ? v : [v]);

export const allows = (statements: Statement[], need: Pick<Need, 'action' | 'resource'>) =>
  statements.some(
    (s) =>
      s.Effect === 'Allow' &&
      list(s.Action).some((a) => matches(a, need.action)) &&
      list(s.Resource).some((r) => matches(r, need.resource)),
  );
