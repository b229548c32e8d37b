#!/usr/bin/python3
"""Checks the output of `prove -rv` over pjdfstest's tests against a list of expected failures.

Usage:
  check.py [--expected FILE] [--tests-dir DIR] [--title TEXT] PROVE_OUTPUT
      Prints a per-group table (files passed/total, assertions passed/total, totals) and exits 1
      when an assertion fails that FILE does not list (a new failure), when one FILE lists passes
      now (the list must be kept honest: shrink it), or when a .t file under DIR (a directory
      prove ran over; repeatable) is missing from the output (the run was cut short). Entries
      for files outside the DIRs given are not checked (a run over some groups only).
  check.py [--expected FILE] --write-expected PROVE_OUTPUT
      Prints the current failures in the list format, on stdout: FILE's comment blocks and
      reasons are kept for the files that still fail (their assertion numbers updated), blocks
      whose files all pass now are dropped, and files failing for the first time come last under
      a "# NEW" comment, with the reason left for a human to write.

PROVE_OUTPUT is what `prove -rv` wrote on stdout (stderr kept apart). A file section starts with
"<path>.t .. "; in it, "1..N" is the plan and "ok N" / "not ok N" the assertions. An assertion the
plan announces but the file never printed (the script died) counts as failed. "not ok N # TODO"
counts as passed, as prove counts it (pjdfstest marks a few known Linux deviations so).

List format, one entry a line, '#' starts a comment, blank lines separate blocks:
  tests/<group>/<file>.t <assertions> <reason>
<assertions> is a comma list of numbers and ranges (1,4,7-9) or * (the file fails, whichever
assertions). A listed assertion that passes is an error, and so is a '*' file that passes.
"""

import argparse
import collections
import os
import re
import sys

HEADER_RE = re.compile(r"^(\S.*\.t) \.{2,}(?: (.*))?$")  # prove pads the dots
PLAN_RE = re.compile(r"^1\.\.(\d+)")
RESULT_RE = re.compile(r"^(not )?ok (\d+)\b ?(.*)$")
END_RE = re.compile(r"^(Test Summary Report|All tests successful|Files=\d+)")
TODO_RE = re.compile(r"#\s*TODO\b", re.IGNORECASE)
MAX_REPORT = 300  # lines of new failures printed before "... and N more"


class TFile:
    """One .t file's results: plan (None: never printed), assertion number -> (passed, text)."""

    def __init__(self, name):
        self.name = name
        self.plan = None
        self.results = {}
        self.dubious = False

    def total(self):
        return self.plan if self.plan is not None else len(self.results)

    def passed(self):
        return sum(1 for n, (ok, _) in self.results.items() if ok and n <= self.total())

    def failing(self):
        """Numbers of the assertions that did not pass (missing ones included)."""
        return sorted(n for n in range(1, self.total() + 1)
                      if not self.results.get(n, (False, ""))[0])

    def broken(self):
        """Why the file failed as a whole (no plan, a bad exit), or None."""
        if self.plan is None:
            return "no plan printed"
        if self.dubious and not self.failing():
            return "non-zero exit status"
        return None

    def ok(self):
        return self.broken() is None and not self.failing()


def short_name(path):
    """'/tmp/x/pjdfstest/tests/chmod/00.t' -> 'tests/chmod/00.t'."""
    i = path.rfind("/tests/")
    return path[i + 1:] if i >= 0 else path


def parse_prove(lines):
    files = collections.OrderedDict()
    cur = None
    for raw in lines:
        line = raw.rstrip("\n")
        m = HEADER_RE.match(line)
        if m:
            cur = files.setdefault(short_name(m.group(1)), TFile(short_name(m.group(1))))
            line = m.group(2) or ""
        elif END_RE.match(line):
            cur = None
            continue
        if cur is None:
            continue
        m = PLAN_RE.match(line)
        if m and cur.plan is None:
            cur.plan = int(m.group(1))
            continue
        m = RESULT_RE.match(line)
        if m:
            passed = m.group(1) is None or bool(TODO_RE.search(m.group(3)))
            cur.results.setdefault(int(m.group(2)), (passed, line))
        elif line.startswith("Dubious,"):
            cur.dubious = True
    return files


# --- the list -----------------------------------------------------------------------------------

def parse_numbers(text):
    """'1,4,7-9' -> {1, 4, 7, 8, 9}; '*' -> None. Raises ValueError on anything else."""
    if text == "*":
        return None
    out = set()
    for part in text.split(","):
        a, sep, b = part.partition("-")
        if not a.isdigit() or (sep and not b.isdigit()):
            raise ValueError("'%s' is not a number or a range a-b" % part)
        lo, hi = int(a), int(b) if sep else int(a)
        if lo < 1 or hi < lo:
            raise ValueError("'%s' is not a range of assertion numbers (1 and up)" % part)
        out.update(range(lo, hi + 1))
    return out


def format_numbers(nums):
    """{1, 4, 7, 8, 9} -> '1,4,7-9'."""
    out, nums = [], sorted(nums)
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else "%d-%d" % (nums[i], nums[j]))
        i = j + 1
    return ",".join(out)


class Entry:
    def __init__(self, name, nums, reason, lineno):
        self.name, self.nums, self.reason, self.lineno = name, nums, reason, lineno


def read_expected(path):
    """Returns (entries by file name, blocks): a block is a list of lines (comments) and Entries,
    as they stand in the file between blank lines."""
    entries, blocks, block = {}, [], []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip():
                if block:
                    blocks.append(block)
                block = []
                continue
            if line.lstrip().startswith("#"):
                block.append(line)
                continue
            parts = line.split(None, 2)
            where = "%s:%d" % (path, lineno)
            if len(parts) < 3:
                sys.exit("%s: expected 'tests/<group>/<file>.t <assertions|*> <reason>', got "
                         "'%s'" % (where, line))
            name, nums, reason = parts
            if not re.match(r"^tests/[^/\s]+/[^/\s]+\.t$", name):
                sys.exit("%s: '%s' is not a test file name like tests/chmod/00.t" % (where, name))
            try:
                nums = parse_numbers(nums)
            except ValueError as e:
                sys.exit("%s: %s; accepted: a comma list of numbers and ranges (1,4,7-9) or *" %
                         (where, e))
            if name in entries:
                sys.exit("%s: %s is listed twice (first at line %d)" %
                         (where, name, entries[name].lineno))
            e = Entry(name, nums, reason, lineno)
            entries[name] = e
            block.append(e)
    if block:
        blocks.append(block)
    return entries, blocks


# --- comparing and reporting --------------------------------------------------------------------

def compare(files, entries, tests_dirs):
    """Returns (new failures, now passing) as lists of printable lines."""
    new, fixed = [], []
    for name, tf in files.items():
        e = entries.get(name)
        broken = tf.broken()
        failing = set(tf.failing())
        if e is not None and e.nums is None:
            if tf.ok():
                fixed.append("%s *: every assertion passes now (listed: %s)" % (name, e.reason))
            continue
        listed = e.nums if e is not None else set()
        if broken:
            new.append("%s: %s" % (name, broken))
        for n in sorted(failing - listed):
            text = tf.results.get(n, (False, "(never printed: the script stopped before it)"))[1]
            new.append("%s %d: %s" % (name, n, text))
        now = sorted(listed - failing)
        if now:
            fixed.append("%s %s: pass%s now (listed: %s)" %
                         (name, format_numbers(now), "es" if len(now) == 1 else "", e.reason))
    should_run = all_test_files(tests_dirs) if tests_dirs else None
    for name in sorted(set(entries) - set(files)):
        if should_run is None or name in should_run:
            new.append("%s: listed in the expected failures but not in the output" % name)
    for name in sorted((should_run or set()) - set(files) - set(entries)):
        new.append("%s: not run (missing from the output)" % name)
    return new, fixed


def all_test_files(dirs):
    out = set()
    for d in dirs:
        for root, _, names in os.walk(d):
            for n in names:
                if n.endswith(".t"):
                    out.add(short_name(os.path.join(os.path.abspath(root), n)))
    return out


def table(files, title):
    groups = collections.OrderedDict()
    for name in sorted(files):
        g = name.split("/")[1] if name.count("/") >= 2 else name
        groups.setdefault(g, []).append(files[name])
    rows = [("group", "files passed/total", "assertions passed/total")]
    tf = ta = pf = pa = 0
    for g, fs in groups.items():
        f_ok = sum(1 for f in fs if f.ok())
        a_ok = sum(f.passed() for f in fs)
        a_all = sum(f.total() for f in fs)
        rows.append((g, "%d/%d" % (f_ok, len(fs)), "%d/%d" % (a_ok, a_all)))
        pf, tf, pa, ta = pf + f_ok, tf + len(fs), pa + a_ok, ta + a_all
    pct = 100.0 * pa / ta if ta else 0.0
    rows.append(("**total**", "**%d/%d**" % (pf, tf), "**%d/%d** (%.1f %%)" % (pa, ta, pct)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    out = ["### %s" % title, ""] if title else []
    for i, r in enumerate(rows):
        out.append("| %s | %s | %s |" % (r[0].ljust(widths[0]), r[1].rjust(widths[1]),
                                         r[2].rjust(widths[2])))
        if i == 0:
            out.append("| %s | %s: | %s: |" % ("-" * widths[0], "-" * (widths[1] - 1),
                                               "-" * (widths[2] - 1)))
    return "\n".join(out)


def write_expected(files, blocks, out):
    """The list for the current failures, keeping BLOCKS' comments and reasons (see the usage)."""
    failing = {n: f for n, f in files.items() if not f.ok()}
    seen = set()
    chunks = []
    for block in blocks:
        lines, had_entries, kept = [], False, 0
        for item in block:
            if isinstance(item, str):
                lines.append(item)
                continue
            had_entries = True
            seen.add(item.name)
            f = failing.get(item.name)
            if f is None:
                print("dropped (passes now): %s" % item.name, file=sys.stderr)
                continue
            kept += 1
            lines.append("%s %s %s" % (item.name, spec(f, keep_star=item.nums is None),
                                       item.reason))
        if kept or not had_entries:
            chunks.append(lines)
    new = [n for n in failing if n not in seen]
    if new:
        lines = ["# NEW: failing since the list was last written; say why, or move them"]
        for n in sorted(new):
            lines.append("%s %s %s" % (n, spec(failing[n]), "TODO-reason"))
        chunks.append(lines)
    out.write("\n\n".join("\n".join(c) for c in chunks if c) + "\n")


def spec(f, keep_star=False):
    if keep_star or f.broken():
        return "*"
    return format_numbers(f.failing())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("output", help="what `prove -rv` printed on stdout")
    ap.add_argument("--expected", help="the list of expected failures")
    ap.add_argument("--tests-dir", action="append", default=[],
                    help="a directory prove ran over (repeatable): each .t in it must have run")
    ap.add_argument("--title", default="", help="a heading for the table")
    ap.add_argument("--write-expected", action="store_true",
                    help="print the current failures in the list format instead of checking")
    a = ap.parse_args()
    try:
        with open(a.output, encoding="utf-8", errors="replace") as f:
            files = parse_prove(f)
    except OSError as e:
        sys.exit("check.py: cannot read %s: %s" % (a.output, e.strerror))
    if not files:
        sys.exit("check.py: %s holds no test file section ('<file>.t .. '): not prove -rv "
                 "output?" % a.output)
    try:
        entries, blocks = read_expected(a.expected) if a.expected else ({}, [])
    except OSError as e:
        sys.exit("check.py: cannot read the list %s: %s" % (a.expected, e.strerror))
    if a.write_expected:
        write_expected(files, blocks, sys.stdout)
        return 0
    print(table(files, a.title))
    new, fixed = compare(files, entries, a.tests_dir)
    for lines, what in ((new, "NEW FAILURE"), (fixed, "NOW PASSES (remove it from the list)")):
        for line in lines[:MAX_REPORT]:
            print("%s: %s" % (what, line))
        if len(lines) > MAX_REPORT:
            print("%s: ... and %d more" % (what, len(lines) - MAX_REPORT))
    print("%d new failure(s), %d listed failure(s) passing now%s" %
          (len(new), len(fixed), "" if a.expected else " (no --expected list: all failures new)"))
    return 1 if new or fixed else 0


if __name__ == "__main__":
    sys.exit(main())
