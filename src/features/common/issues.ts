// IssuesList ([["name", "regular expression"], ...] in [AutoTracing] and
// [EventTracing]): a captured context (a stack, an event's fields) that a
// rule's expression matches is marked known_issue = the rule's name.

export interface KnownIssue {
  readonly name: string;
  readonly re: RegExp;
}

/** Compiles [["name", "regex"], ...] (the config validated the regexes); rules with an empty regex are dropped. */
export function compileIssues(list: readonly (readonly [string, string])[]): KnownIssue[] {
  return list.filter(([, re]) => re !== "").map(([name, re]) => ({ name, re: new RegExp(re) }));
}

/** Name of the first issue whose regex matches @context. */
export function matchIssue(context: string, issues: readonly KnownIssue[]): string | undefined {
  return issues.find((i) => i.re.test(context))?.name;
}
