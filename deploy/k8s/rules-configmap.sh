#!/usr/bin/env bash
# Serve vigil's rules from a ConfigMap instead of the copy baked into the image (README.md,
# "Rules from a ConfigMap"). Run from the repository root:
#
#   deploy/k8s/rules-configmap.sh configmap [RULES_DIR] | kubectl apply --server-side -f -
#   deploy/k8s/rules-configmap.sh patch [RULES_DIR] > rules-volume.json
#   kubectl patch statefulset vigil --patch-file rules-volume.json
#
# ConfigMap keys cannot contain `/`, and the rules directory has subdirectories, so each file is
# stored under its path with `/` written as `__` and the volume's `items` map it back. Both are
# generated from the same file list, so a new indicator file cannot be left out of one of them.
set -euo pipefail

mode=${1:-}
dir=${2:-rules}
dir=${dir%/}
if [[ $mode != configmap && $mode != patch ]] || [[ ! -d $dir ]]; then
  echo "usage: $0 configmap|patch [RULES_DIR]  (default RULES_DIR: rules)" >&2
  exit 2
fi

# The files vigil reads from a rules directory (vigil-rules, RuleFiles::load_dir).
shopt -s nullglob
files=()
for f in "$dir"/*.toml "$dir"/*.csv "$dir"/indicators/*.toml "$dir"/tests/*.jsonl; do
  files+=("${f#"$dir"/}")
done
if [[ ${#files[@]} -eq 0 ]]; then
  echo "$0: no rule files in $dir" >&2
  exit 1
fi
key() { printf '%s' "${1//\//__}"; }

case $mode in
  configmap)
    args=()
    for f in "${files[@]}"; do
      args+=("--from-file=$(key "$f")=$dir/$f")
    done
    kubectl create configmap vigil-rules "${args[@]}" --dry-run=client -o yaml
    ;;
  patch)
    # A strategic-merge patch for the StatefulSet, for `kubectl patch --patch-file` or, as it
    # names its target, for `patches: [{path: ...}]` in a kustomization.
    items=""
    for f in "${files[@]}"; do
      items+="${items:+,}{\"key\":\"$(key "$f")\",\"path\":\"$f\"}"
    done
    cat <<JSON
{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"vigil"},
 "spec":{"template":{"spec":{
  "containers":[{"name":"vigil","volumeMounts":[
    {"name":"rules","mountPath":"/etc/vigil/rules","readOnly":true}]}],
  "volumes":[{"name":"rules","configMap":{"name":"vigil-rules","items":[$items]}}]
}}}}
JSON
    ;;
esac
