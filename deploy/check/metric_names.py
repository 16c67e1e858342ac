#!/usr/bin/env python3
"""Checks that every metric the alert rules and the Grafana dashboard use exists.

A name passes when relay-worker exports it (a string literal in a counter!,
gauge! or histogram! call of relay-worker/src/metrics.rs; a histogram also as
<name>_bucket, _sum and _count) or when deploy/check/metrics-external.txt lists
it (RabbitMQ's, the Moodle plugin's, Prometheus' own, and names still being
added, marked "pending"). Anything else fails, naming the rule or panel and
its expression. Python 3 standard library only.

    metric_names.py [--root DIR]                 check alerts.yml and deploy/grafana/*.json
    metric_names.py --expr ALERT [--root DIR]    print one alert's expression
    metric_names.py --dashboard-rules FILE       also write the dashboard's expressions as
                                                 recording rules, for `promtool check rules`
    metric_names.py --scrape FILE                also require every "rabbitmq" name of the
                                                 list in this scraped exposition text

Exit status: 0 all names known, 1 some unknown or a file could not be read.
"""

import argparse
import json
import re
import sys
from pathlib import Path

ALERTS = Path("deploy/prometheus/alerts.yml")
DASHBOARDS = Path("deploy/grafana")
METRICS_RS = Path("relay-worker/src/metrics.rs")
EXTERNAL = Path("deploy/check/metrics-external.txt")
PLUGIN = Path("moodle-plugin")

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# PromQL words that are not metric names when they are not followed by "(".
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "and", "or", "unless", "atan2", "inf", "nan", "start", "end",
}
# Grafana's built-in interval variables, replaced by a duration so the
# expression parses as PromQL.
GRAFANA_DURATIONS = {
    "__rate_interval": "5m", "__interval": "1m", "__range": "1h",
    "__interval_ms": "60000", "__range_s": "3600", "__range_ms": "3600000",
}


class Failure(Exception):
    """A file the check needs is missing or not in the expected shape."""


def worker_metrics(root):
    """Names and kinds (counter, gauge, histogram) relay-worker exports."""
    text = (root / METRICS_RS).read_text(encoding="utf-8")
    found = {}
    for kind, name in re.findall(r'\b(counter|gauge|histogram)!\s*\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"', text):
        found[name] = kind
    if len(found) < 5:
        raise Failure(f"{METRICS_RS}: found only {len(found)} metric names; has the file changed shape?")
    return found


def external_metrics(root):
    """{name: (source, pending)} from metrics-external.txt."""
    names = {}
    path = root / EXTERNAL
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) not in (2, 3) or (len(fields) == 3 and fields[2] != "pending"):
            raise Failure(f"{EXTERNAL}:{number}: expected 'name source [pending]', got {line!r}")
        if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", fields[0]):
            raise Failure(f"{EXTERNAL}:{number}: {fields[0]!r} is not a metric name")
        names[fields[0]] = (fields[1], len(fields) == 3)
    return names


def yaml_exprs(path):
    """(rule name, expression) for every rule of a Prometheus rules file.

    A small reader for the shapes rule files use: `- alert: NAME` or
    `- record: NAME`, then `expr:` on one line (plain or quoted) or as a block
    scalar (`|`, `>`). It fails when it finds fewer expressions than rules,
    so a shape it does not know cannot slip past.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    rules, exprs = [], []
    current = None
    i = 0
    while i < len(lines):
        line = lines[i]
        named = re.match(r"\s*-\s*(alert|record):\s*(\S+)\s*$", line)
        if named:
            current = named.group(2).strip("'\"")
            rules.append(current)
        found = re.match(r"(\s*)(?:-\s*)?expr:\s*(.*)$", line)
        if found:
            indent, value = len(found.group(1)), found.group(2).strip()
            if re.fullmatch(r"[|>][-+]?", value):
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i].rstrip())
                    i += 1
                margin = min(len(b) - len(b.lstrip()) for b in block if b) if any(block) else 0
                exprs.append((current, "\n".join(b[margin:] for b in block).strip()))
                continue
            if value[:1] in "'\"":
                if len(value) < 2 or value[-1] != value[0]:
                    raise Failure(f"{path}:{i + 1}: a quoted expr must end on its line")
                quote, value = value[0], value[1:-1]
                if quote == '"':
                    value = re.sub(r'\\(.)', r'\1', value)
                else:
                    value = value.replace("''", "'")
            exprs.append((current, value))
        i += 1
    if len(exprs) != len(rules) or any(not e for _, e in exprs):
        raise Failure(f"{path}: {len(rules)} rules but {len(exprs)} expressions read; unsupported YAML shape")
    return exprs


def dashboard_exprs(path):
    """(where, expression) for every Prometheus query of a Grafana dashboard."""
    data = json.loads(path.read_text(encoding="utf-8"))
    found = []

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(data.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                found.append((f"panel {panel.get('id')} '{panel.get('title', '')}' {target.get('refId', '?')}", target["expr"]))
    for var in data.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else (query or "")
        where = f"variable ${var.get('name')}"
        values = re.fullmatch(r"\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*", query)
        result = re.fullmatch(r"\s*query_result\((.*)\)\s*", query, re.S)
        if values or result:
            found.append((where, (values or result).group(1)))
        elif not re.fullmatch(r"\s*label_values\(\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*", query):
            raise Failure(f"{path}: {where}: query {query!r} is not label_values(...) or query_result(...)")
    return found


def grafana_to_promql(expr):
    """The expression with Grafana's variables replaced, so PromQL parses it."""
    def duration(m):
        return GRAFANA_DURATIONS.get(m.group(1) or m.group(2), "x")
    expr = re.sub(r"\$\{(__\w+)(?::\w+)?\}|\$(__\w+)", duration, expr)
    # Other variables appear only inside label matcher strings, e.g. site=~"$site".
    return expr


def metric_names(expr):
    """The metric names an expression selects."""
    text = grafana_to_promql(expr)
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', text)
    text = re.sub(r"#[^\n]*", " ", text)
    text = re.sub(r"\$\{?\w+(?::\w+)?\}?", " ", text)  # a Grafana variable outside a string
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", r" \1 ", text)
    names = []
    for m in re.finditer(r"[0-9][0-9.]*(?:[eE][-+]?[0-9]+)?[a-zA-Z]*|[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        token = m.group(0)
        if token[0].isdigit() or token.lower() in KEYWORDS:
            continue
        if re.match(r"\s*(\(|by\b|without\b)", text[m.end():]):
            continue  # a function, or an aggregation (sum by (...) (...))
        names.append(token)
    return names


def resolve(name, worker, external):
    """(ok, where the name comes from)."""
    if name in worker:
        return True, "relay-worker"
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and worker.get(base) == "histogram":
            return True, f"relay-worker histogram {base}"
    if worker.get(name) is None and name in external:
        source, pending = external[name]
        return True, source + (" (pending)" if pending else "")
    return False, ""


def check_external(root, worker, external, scrape):
    """Lines about the allow list itself; failures as a count."""
    lines, failed = [], 0
    plugin_text = None
    for name, (source, pending) in sorted(external.items()):
        if source == "relay-worker":
            if name in worker:
                lines.append(f"note {name}: now exported by {METRICS_RS}; drop it from {EXTERNAL}")
            elif not pending:
                lines.append(f"FAIL {name}: listed as relay-worker's but not in {METRICS_RS} (mark it pending?)")
                failed += 1
        elif source == "moodle-plugin":
            if plugin_text is None:
                plugin_text = "\n".join(
                    p.read_text(encoding="utf-8", errors="replace")
                    for p in (root / PLUGIN).rglob("*.php")
                )
            if name in plugin_text:
                if pending:
                    lines.append(f"note {name}: now in {PLUGIN}/; drop 'pending' in {EXTERNAL}")
            elif not pending:
                lines.append(f"FAIL {name}: listed as the Moodle plugin's but no file under {PLUGIN}/ has it")
                failed += 1
        elif source == "rabbitmq" and scrape is not None:
            if re.search(rf"^{re.escape(name)}[{{ ]", scrape, re.M):
                lines.append(f"ok   {name}: present in RabbitMQ's scrape")
            else:
                lines.append(f"FAIL {name}: not in RabbitMQ's scrape")
                failed += 1
    return lines, failed


def write_rules(path, exprs):
    """The dashboard's expressions as recording rules (JSON is valid YAML)."""
    rules = [
        {"record": f"dashboard:expr_{n}", "expr": grafana_to_promql(expr).replace("$site", ".*").replace("${site}", ".*")}
        for n, (_, expr) in enumerate(exprs)
    ]
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}, indent=1), encoding="utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2],
                        help="repository root (default: two folders above this script)")
    parser.add_argument("--expr", metavar="ALERT", help="print this alert's expression and exit")
    parser.add_argument("--dashboard-rules", type=Path, metavar="FILE")
    parser.add_argument("--scrape", type=Path, metavar="FILE")
    args = parser.parse_args()
    root = args.root
    try:
        alerts = yaml_exprs(root / ALERTS)
        if args.expr:
            for name, expr in alerts:
                if name == args.expr:
                    print(expr)
                    return 0
            print(f"no alert {args.expr} in {ALERTS}", file=sys.stderr)
            return 1
        worker = worker_metrics(root)
        external = external_metrics(root)
        dashboards = sorted((root / DASHBOARDS).glob("*.json"))
        if not dashboards:
            raise Failure(f"no dashboard in {DASHBOARDS}/")
        uses = [(f"{ALERTS.name} {name}", expr) for name, expr in alerts]
        panel_exprs = []
        for path in dashboards:
            found = dashboard_exprs(path)
            panel_exprs += found
            uses += [(f"{path.name} {where}", expr) for where, expr in found]
        scrape = args.scrape.read_text(encoding="utf-8") if args.scrape else None
    except (OSError, ValueError, Failure) as e:
        print(f"FAIL {e}")
        return 1

    failed = 0
    used = set()
    for where, expr in uses:
        names = metric_names(expr)
        if not names:
            print(f"FAIL {where}: selects no metric: {expr}")
            failed += 1
            continue
        unknown, bare = [], []
        for name in names:
            ok, _ = resolve(name, worker, external)
            used.add(name)
            if not ok:
                unknown.append(name)
            elif worker.get(name) == "histogram":
                bare.append(name)
        flat = " ".join(expr.split())
        if unknown:
            print(f"FAIL {where}: {', '.join(unknown)} not exported by relay-worker ({METRICS_RS}) "
                  f"nor listed in {EXTERNAL}: {flat}")
        if bare:
            print(f"FAIL {where}: {', '.join(bare)} is a histogram, which Prometheus stores only as "
                  f"<name>_bucket, _sum and _count: {flat}")
        if unknown or bare:
            failed += 1
        else:
            print(f"ok   {where}: {', '.join(sorted(set(names)))}")

    lines, bad_external = check_external(root, worker, external, scrape)
    for line in lines:
        print(line)
    failed += bad_external
    unused = sorted(n for n in worker if n not in used and not any(n + s in used for s in HISTOGRAM_SUFFIXES))
    if unused:
        print(f"note relay-worker metrics used by no rule or panel: {', '.join(unused)}")
    if args.dashboard_rules:
        write_rules(args.dashboard_rules, panel_exprs)
    print(f"{'ok  ' if not failed else 'FAIL'} metric names: {len(uses)} expressions, "
          f"{len(used)} names, {failed} failing")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
