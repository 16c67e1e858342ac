#!/usr/bin/env python3
"""Checks the Kubernetes manifests in deploy/kubernetes/ (run by kubernetes.sh).

Four parts, each printing one line per check (`ok` or `FAIL` and why):

- lint: yamllint on every file, relaxed rules, where any warning fails.
- schema: every object against a schema. Core objects (ConfigMap, Secret,
  Deployment, Service, PodDisruptionBudget) with the `kubernetes-validate`
  package in strict mode (unknown fields fail) for the Kubernetes versions
  given; KEDA's ScaledObject and TriggerAuthentication and prometheus-operator's
  ServiceMonitor against JSON schemas generated from the `cloudcoil-models-keda`
  and `cloudcoil-models-prometheus-operator` packages (models generated from
  those projects' CRDs), made strict the same way. An object of any other kind
  fails: nothing goes unchecked.
- structure: how the objects fit together and with the worker: names and
  label selectors that must match, the ConfigMap's relay.toml accepted by
  `relay-worker --check-config`, file paths in it that resolve to Secret keys,
  probe and scrape ports equal to worker.listen, the grace period above
  shutdown_grace_s, the KEDA trigger's settings and that its queue regex
  matches exactly the ingest queues the worker declares.
- live (with --live-vhost): the real worker started with the ConfigMap's
  relay.toml (secret paths pointed at temporary files, worker.listen moved to a
  free loopback port, Moodle at a closed local port) against a scratch vhost:
  the liveness and readiness probe paths answer 200, the scrape path serves
  relay_ metrics, the queues it declared are the ones the KEDA regex counts,
  and after SIGTERM it exits 0 within terminationGracePeriodSeconds.

Exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import yaml

# Measured (issue 12): peak RSS while draining a 1,000,000-event backlog.
MEASURED_PEAK_RSS = 42.9 * 1024 * 1024
# The worker's defaults (relay-worker/src/config.rs).
DEFAULT_LISTEN = "127.0.0.1:9464"
DEFAULT_SHUTDOWN_GRACE_S = 30
# Files in deploy/kubernetes/ that kustomization.yaml must not list.
NOT_APPLIED = {"secret.example.yaml", "servicemonitor.yaml"}
PLACEHOLDER = "CHANGE-ME"
IMAGE = "moodle-event-relay/relay-worker"


class Failed(Exception):
    """A check's failure, with the reason."""


class Report:
    def __init__(self) -> None:
        self.failures = 0
        self.passed = 0

    def check(self, title: str, fn: Callable[[], str | None]) -> None:
        try:
            detail = fn()
        except Failed as e:
            self.failures += 1
            print(f"FAIL {title}: {e}", flush=True)
        except Exception as e:  # a bug or a missing object: still a failure, with its reason
            self.failures += 1
            print(f"FAIL {title}: {type(e).__name__}: {e}", flush=True)
        else:
            self.passed += 1
            print(f"ok   {title}" + (f" ({detail})" if detail else ""), flush=True)


def need(cond: Any, why: str) -> None:
    if not cond:
        raise Failed(why)


# --- loading -----------------------------------------------------------------


class Manifests:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.docs: list[tuple[str, dict]] = []
        for path in sorted(root.glob("*.yaml")):
            if path.name == "kustomization.yaml":
                continue
            for doc in yaml.safe_load_all(path.read_text()):
                if doc is not None:
                    self.docs.append((path.name, doc))
        self.kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())

    def all(self, kind: str) -> list[dict]:
        return [d for _, d in self.docs if d.get("kind") == kind]

    def one(self, kind: str, name: str | None = None) -> dict:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        need(len(found) == 1, f"expected one {kind}{' ' + name if name else ''}, found {len(found)}")
        return found[0]

    def file_of(self, kind: str, name: str) -> str:
        for file, d in self.docs:
            if d.get("kind") == kind and d["metadata"]["name"] == name:
                return file
        raise Failed(f"no {kind} {name}")


def quantity(text: str | int) -> float:
    """A Kubernetes quantity (64Mi, 100m, 1G) as a number (bytes, cores)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
             "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    need(m and (m.group(2) in units or m.group(2) == ""), f"not a quantity: {text!r}")
    return float(m.group(1)) * units.get(m.group(2), 1)


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# --- the worker's view of the manifests ---------------------------------------


class Worker:
    """The Deployment's container, its mounts and its effective configuration."""

    def __init__(self, m: Manifests, deployment_name: str) -> None:
        self.m = m
        self.deployment = m.one("Deployment", deployment_name)
        self.pod = self.deployment["spec"]["template"]["spec"]
        self.pod_labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        containers = self.pod["containers"]
        need(len(containers) == 1, f"expected one container, found {len(containers)}")
        self.container = containers[0]
        self.env = {e["name"]: e["value"] for e in self.container.get("env", []) if "value" in e}
        self.volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        self.mounts = self.container.get("volumeMounts", [])

    def config_path(self) -> str:
        argv = self.container.get("command", []) + self.container.get("args", [])
        need("--config" in argv, f"no --config in {argv}")
        i = argv.index("--config")
        need(i + 1 < len(argv), "--config without a path")
        return argv[i + 1]

    def resolve(self, path: str) -> tuple[str, dict, str]:
        """Which volume a file path in the container comes from: (kind, source, key)."""
        for mount in self.mounts:
            prefix = mount["mountPath"].rstrip("/") + "/"
            if not path.startswith(prefix):
                continue
            need("subPath" not in mount, f"{mount['mountPath']} uses subPath: updates never reach the pod")
            rel = path[len(prefix):]
            volume = self.volumes.get(mount["name"])
            need(volume, f"volume {mount['name']} is mounted but not defined")
            for kind in ("configMap", "secret"):
                if kind in volume:
                    source = volume[kind]
                    items = source.get("items")
                    if items:
                        keys = [i["key"] for i in items if i["path"] == rel]
                        need(keys, f"{path}: no item of volume {mount['name']} has path {rel}")
                        return kind, source, keys[0]
                    return kind, source, rel
            raise Failed(f"{path}: volume {mount['name']} is neither a ConfigMap nor a Secret")
        raise Failed(f"{path} is not under any volume mount of the container")

    def config_text(self) -> str:
        kind, source, key = self.resolve(self.config_path())
        need(kind == "configMap", f"--config {self.config_path()} is not from a ConfigMap")
        cm = self.m.one("ConfigMap", source["name"])
        need(key in cm.get("data", {}), f"ConfigMap {source['name']} has no key {key}")
        return cm["data"][key]

    def toml(self) -> dict:
        return tomllib.loads(self.config_text())

    def effective(self, env_key: str, section: str, key: str, default: Any) -> Any:
        """A setting as the worker sees it: the env var wins over the file."""
        if env_key in self.env:
            return self.env[env_key]
        return self.toml().get(section, {}).get(key, default)

    def listen_port(self) -> int:
        listen = self.effective("RELAY_WORKER_LISTEN", "worker", "listen", DEFAULT_LISTEN)
        return int(listen.rsplit(":", 1)[1])

    def port_number(self, port: int | str) -> int:
        if isinstance(port, int):
            return port
        named = [p["containerPort"] for p in self.container.get("ports", []) if p.get("name") == port]
        need(named, f"no container port named {port!r}")
        return named[0]

    def secret_key(self, path: str) -> str:
        kind, source, key = self.resolve(path)
        need(kind == "secret", f"{path} is not from a Secret volume")
        secret = self.m.one("Secret", source["secretName"])
        need(key in secret.get("stringData", {}), f"{path}: Secret {source['secretName']} has no key {key}")
        return f"{source['secretName']}/{key}"


# --- lint ------------------------------------------------------------------

LINT_CONFIG = """
extends: relaxed
rules:
  line-length: {max: 120}
  indentation: {spaces: 2, indent-sequences: consistent}
  trailing-spaces: enable
  new-line-at-end-of-file: enable
"""


def lint_checks(r: Report, root: Path) -> None:
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    conf = YamlLintConfig(LINT_CONFIG)
    for path in sorted(root.glob("*.yaml")):
        def lint(path: Path = path) -> None:
            problems = list(linter.run(path.read_text(), conf, str(path)))
            need(not problems, "; ".join(f"line {p.line}:{p.column} {p.level}: {p.desc} ({p.rule})"
                                         for p in problems[:5]))
        r.check(f"yamllint {path.name}", lint)


# --- schema ------------------------------------------------------------------


def strict_schema(model: Any) -> dict:
    """The model's JSON schema with unknown properties forbidden everywhere."""
    schema = model.model_json_schema(by_alias=True, mode="validation")

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return schema


def schema_checks(r: Report, m: Manifests, versions: list[str]) -> None:
    import jsonschema
    import kubernetes_validate
    from cloudcoil.models.keda import v1alpha1 as keda
    from cloudcoil.models.prometheus_operator import v1 as prom

    crds = {
        ("keda.sh/v1alpha1", "ScaledObject"): keda.ScaledObject,
        ("keda.sh/v1alpha1", "TriggerAuthentication"): keda.TriggerAuthentication,
        ("monitoring.coreos.com/v1", "ServiceMonitor"): prom.ServiceMonitor,
    }
    for file, doc in m.docs:
        what = f"{file}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key in crds:
            def crd(doc: dict = doc, model: Any = crds[key], key: tuple = key) -> str:
                validator = jsonschema.Draft202012Validator(strict_schema(model))
                errors = sorted(validator.iter_errors(doc), key=lambda e: e.json_path)
                need(not errors, "; ".join(f"{e.json_path}: {e.message}" for e in errors[:5]))
                return f"strict, CRD schema of {model.__module__.split('.')[2]} {key[0]}"
            r.check(f"schema {what}", crd)
            continue

        def core(doc: dict = doc, key: tuple = key) -> str:
            for version in versions:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.SchemaNotFoundError:
                    raise Failed(f"no Kubernetes {version} schema for {key[0]} {key[1]} "
                                 "(and no CRD schema here)") from None
                except kubernetes_validate.ValidationError as e:
                    path = "/".join(str(p) for p in e.path)
                    raise Failed(f"Kubernetes {version}: at {path or '/'}: {e.message}") from None
            return "strict, Kubernetes " + " and ".join(versions)
        r.check(f"schema {what}", core)


# --- structure ---------------------------------------------------------------


def run_worker_cli(binary: str, args: list[str], env_extra: dict[str, str], tmp: Path) -> subprocess.CompletedProcess:
    """relay-worker with no RELAY_* from the caller's environment, the broker URL
    file replaced by a generated one (the Secret's path does not exist here)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    url_file = tmp / "amqp-url"
    # Never used to connect: only parsed. Generated, so no password is committed.
    url_file.write_text(f"amqp://relay-worker:{secrets.token_hex(12)}@rabbitmq.invalid:5672/%2f\n")
    env.update(env_extra)
    env["RELAY_AMQP_URL_FILE"] = str(url_file)
    return subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=60)


def structure_checks(r: Report, m: Manifests, binary: str, repo: Path, tmp: Path) -> None:
    so = m.one("ScaledObject")
    target = so["spec"]["scaleTargetRef"]
    w = Worker(m, target["name"])
    config_file = tmp / "relay.toml"

    def kustomization() -> str:
        k = m.kustomization
        need("namespace" not in k, "kustomization.yaml sets a namespace: keep the manifests namespace-agnostic")
        listed = k.get("resources", [])
        for res in listed:
            need((m.root / res).is_file(), f"resource {res} does not exist")
        files = {p.name for p in m.root.glob("*.yaml")} - {"kustomization.yaml"}
        need(not (set(listed) & NOT_APPLIED), f"{sorted(set(listed) & NOT_APPLIED)} must not be applied by default")
        missing = files - NOT_APPLIED - set(listed)
        need(not missing, f"not listed in resources: {sorted(missing)}")
        return f"{len(listed)} resources"
    r.check("kustomization.yaml lists every manifest but the secret example and the ServiceMonitor", kustomization)

    def namespaces() -> None:
        set_ns = [f"{f}: {d['kind']}" for f, d in m.docs if "namespace" in d.get("metadata", {})]
        need(not set_ns, f"metadata.namespace set in {set_ns}")
    r.check("no object names a namespace", namespaces)

    def placeholders() -> str:
        count = 0
        for s in m.all("Secret"):
            need("data" not in s, f"Secret {s['metadata']['name']} has base64 `data`: use placeholders in stringData")
            for k, v in s.get("stringData", {}).items():
                need(PLACEHOLDER in v, f"Secret {s['metadata']['name']} key {k} holds no {PLACEHOLDER} placeholder")
                count += 1
        need(count, "no Secret example")
        return f"{count} values"
    r.check(f"Secret examples hold {PLACEHOLDER} placeholders only", placeholders)

    def selector() -> None:
        sel = w.deployment["spec"]["selector"]["matchLabels"]
        need(matches(sel, w.pod_labels), f"selector {sel} does not match the pod labels {w.pod_labels}")
    r.check("Deployment selector matches its pod labels", selector)

    def image() -> str:
        cargo = tomllib.loads((repo / "Cargo.toml").read_text())
        version = cargo["workspace"]["package"]["version"]
        want = f"{IMAGE}:{version}"
        need(w.container["image"] == want, f"image {w.container['image']}, expected {want} (the workspace version)")
        return want
    r.check("image is the relay-worker image of this version", image)

    def security() -> None:
        pod_sc = w.pod.get("securityContext", {})
        sc = w.container.get("securityContext", {})
        merged = {**pod_sc, **sc}
        need(merged.get("runAsNonRoot") is True, "runAsNonRoot is not true")
        need(merged.get("runAsUser") == 65532, f"runAsUser {merged.get('runAsUser')}, the image's user is 65532")
        need(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem is not true")
        need(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation is not false")
        need(sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities do not drop ALL")
        need(not sc.get("capabilities", {}).get("add"), "capabilities added")
        need(merged.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccompProfile is not RuntimeDefault")
        need(w.pod.get("automountServiceAccountToken") is False, "a service account token is mounted")
    r.check("pod runs as 65532, non-root, read-only root, no capabilities, seccomp RuntimeDefault, no API token",
            security)

    def config_check() -> str:
        config_file.write_text(w.config_text())
        extra = {k: v for k, v in w.env.items() if k.startswith("RELAY_")}
        out = run_worker_cli(binary, ["--config", str(config_file), "--check-config"], extra, tmp)
        need(out.returncode == 0, f"exit {out.returncode}: {out.stderr.strip() or out.stdout.strip()}")
        ids = [s["id"] for s in w.toml().get("sites", [])]
        want = f"configuration OK: sites {', '.join(ids)}"
        need(out.stdout.strip() == want, f"printed {out.stdout.strip()!r}, expected {want!r}")
        return want
    r.check("relay.toml from the ConfigMap passes relay-worker --check-config", config_check)

    def secret_files() -> str:
        conf = w.toml()
        need("url" not in conf.get("amqp", {}), "amqp.url is in the ConfigMap: the broker password belongs in a Secret")
        url_file = conf.get("amqp", {}).get("url_file")
        need(url_file, "amqp.url_file is not set")
        found = [w.secret_key(url_file)]
        for site in conf.get("sites", []):
            if site.get("moodle_url"):
                need("token_env" not in site, f"site {site['id']}: token_env; use token_file from the Secret")
                need(site.get("token_file"), f"site {site['id']} has moodle_url but no token_file")
                found.append(w.secret_key(site["token_file"]))
        return ", ".join(found)
    r.check("url_file and token_file are keys of the mounted Secret (whole-directory mount)", secret_files)

    def probes() -> str:
        port = w.listen_port()
        listen = w.effective("RELAY_WORKER_LISTEN", "worker", "listen", DEFAULT_LISTEN)
        host = listen.rsplit(":", 1)[0]
        need(host in ("0.0.0.0", "[::]"), f"worker.listen {listen}: the kubelet cannot reach a loopback address")
        live = w.container.get("livenessProbe", {}).get("httpGet", {})
        ready = w.container.get("readinessProbe", {}).get("httpGet", {})
        need(live.get("path") == "/healthz", f"liveness path {live.get('path')}, expected /healthz")
        need(ready.get("path") == "/readyz", f"readiness path {ready.get('path')}, expected /readyz")
        for name, probe in (("liveness", live), ("readiness", ready)):
            got = w.port_number(probe.get("port"))
            need(got == port, f"{name} probe port {got} is not worker.listen's {port}")
        return f"port {port}"
    r.check("probes: liveness /healthz, readiness /readyz, on worker.listen's port", probes)

    def grace() -> str:
        shutdown = int(w.effective("RELAY_WORKER_SHUTDOWN_GRACE_S", "worker", "shutdown_grace_s",
                                   DEFAULT_SHUTDOWN_GRACE_S))
        period = w.pod.get("terminationGracePeriodSeconds", 30)
        need(period >= shutdown + 10, f"terminationGracePeriodSeconds {period} is not above "
             f"shutdown_grace_s {shutdown} + 10 s for returning messages and closing")
        return f"{period} s > {shutdown} s"
    r.check("terminationGracePeriodSeconds above shutdown_grace_s", grace)

    def resources() -> str:
        res = w.container.get("resources", {})
        req, lim = res.get("requests", {}), res.get("limits", {})
        need("cpu" in req and "memory" in req and "memory" in lim, "requests cpu/memory and a memory limit are needed")
        mem_req, mem_lim = quantity(req["memory"]), quantity(lim["memory"])
        need(mem_req >= MEASURED_PEAK_RSS, f"memory request {req['memory']} is below the measured peak 42.9 MiB")
        need(mem_lim >= 2 * MEASURED_PEAK_RSS, f"memory limit {lim['memory']} is below 2x the measured peak")
        need(mem_lim >= mem_req, "memory limit below the request")
        need(0 < quantity(req["cpu"]) <= 1, f"cpu request {req['cpu']} out of 1m..1")
        return f"requests {req['cpu']} / {req['memory']}, limit {lim['memory']}"
    r.check("resources from the measured RSS (request >= 42.9 MiB, limit >= 2x)", resources)

    def spread() -> str:
        tsc = w.pod.get("topologySpreadConstraints", [])
        anti = w.pod.get("affinity", {}).get("podAntiAffinity")
        need(tsc or anti, "neither topologySpreadConstraints nor podAntiAffinity")
        for c in tsc:
            need(matches(c["labelSelector"]["matchLabels"], w.pod_labels),
                 f"spread constraint on {c['topologyKey']} does not select the pods")
        need(any(c["topologyKey"] == "kubernetes.io/hostname" for c in tsc) or anti, "pods are not spread over nodes")
        return ", ".join(c["topologyKey"] for c in tsc)
    r.check("pods spread over nodes", spread)

    svc = m.one("Service")

    def service() -> str:
        need(matches(svc["spec"]["selector"], w.pod_labels), "Service selector does not match the pods")
        port = w.listen_port()
        for p in svc["spec"]["ports"]:
            need(w.port_number(p.get("targetPort", p["port"])) == port, f"Service port {p['name']} misses {port}")
        ann = svc["metadata"].get("annotations", {})
        need(ann.get("prometheus.io/scrape") == "true", "prometheus.io/scrape is not \"true\"")
        need(ann.get("prometheus.io/port") == str(port), f"prometheus.io/port {ann.get('prometheus.io/port')}")
        need(ann.get("prometheus.io/path") == "/metrics", f"prometheus.io/path {ann.get('prometheus.io/path')}")
        return f"{svc['metadata']['name']} -> :{port}/metrics"
    r.check("metrics Service selects the pods; its scrape annotations name /metrics on worker.listen's port",
            service)

    def service_monitor() -> None:
        sm = m.one("ServiceMonitor")
        need(matches(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]),
             "ServiceMonitor selector does not select the metrics Service")
        names = {p["name"] for p in svc["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            need(ep.get("port") in names, f"endpoint port {ep.get('port')} is not a port of the Service")
            need(ep.get("path", "/metrics") == "/metrics", f"endpoint path {ep.get('path')}")
    r.check("ServiceMonitor selects the metrics Service's port and /metrics", service_monitor)

    def pdb() -> str:
        budget = m.one("PodDisruptionBudget")
        need(matches(budget["spec"]["selector"]["matchLabels"], w.pod_labels), "PDB selector does not match the pods")
        spec = budget["spec"]
        if "maxUnavailable" in spec:
            need(spec["maxUnavailable"] == 1, f"maxUnavailable {spec['maxUnavailable']}, expected 1")
        else:
            need(spec.get("minAvailable") == 1, f"minAvailable {spec.get('minAvailable')}, expected 1")
        need(so["spec"].get("minReplicaCount", 0) > 1, "with fewer than 2 replicas the budget blocks every drain")
        return "maxUnavailable 1" if "maxUnavailable" in spec else "minAvailable 1"
    r.check("PodDisruptionBudget selects the pods and lets one go at a time", pdb)

    def scaled_object() -> str:
        need(target.get("kind", "Deployment") == "Deployment", f"scaleTargetRef kind {target.get('kind')}")
        need(target.get("apiVersion", "apps/v1") == "apps/v1", f"scaleTargetRef apiVersion {target.get('apiVersion')}")
        spec = so["spec"]
        lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        need(lo >= 2, f"minReplicaCount {lo}: the floor must be 2")
        need(hi >= lo, f"maxReplicaCount {hi} below minReplicaCount {lo}")
        need("replicas" not in w.deployment["spec"], "the Deployment sets replicas, which fights the HPA")
        return f"Deployment {target['name']}, {lo}..{hi} replicas"
    r.check("ScaledObject scales the Deployment, floor 2", scaled_object)

    trigger: dict = {}

    def rabbitmq_trigger() -> str:
        triggers = so["spec"]["triggers"]
        need(len(triggers) == 1 and triggers[0]["type"] == "rabbitmq", "expected one trigger of type rabbitmq")
        trigger.update(triggers[0])
        md = trigger["metadata"]
        need(all(isinstance(v, str) for v in md.values()), "trigger metadata values must all be strings")
        need(md.get("protocol") == "http", "protocol must be http: counting several queues needs the management API")
        need(md.get("mode") == "QueueLength", f"mode {md.get('mode')}, expected QueueLength")
        need(re.fullmatch(r"[1-9][0-9]*", md.get("value", "")), f"value {md.get('value')!r} is not a positive integer")
        need(md.get("useRegex") == "true", "useRegex must be \"true\"")
        need(md.get("operation") in ("sum", "max"), f"operation {md.get('operation')}, expected sum or max")
        need(md.get("excludeUnacknowledged", "false") in ("true", "false"), "excludeUnacknowledged not true/false")
        page = md.get("pageSize", "100")
        need(re.fullmatch(r"[0-9]+", page) and 1 <= int(page) <= 500,
             f"pageSize {page}: the management API serves at most 500 per page")
        for k in ("host", "hostFromEnv", "username", "password", "usernameFromEnv", "passwordFromEnv"):
            need(k not in md, f"{k} in trigger metadata: credentials go through the TriggerAuthentication")
        need(trigger.get("metricType", "AverageValue") == "AverageValue", "metricType must be AverageValue")
        return f"{md['operation']} of {md['queueName']}, {md['value']} per replica"
    r.check("KEDA rabbitmq trigger: http, QueueLength, useRegex, operation, pageSize <= 500, no credentials",
            rabbitmq_trigger)

    def trigger_auth() -> str:
        ref = trigger["authenticationRef"]
        need(ref.get("kind", "TriggerAuthentication") == "TriggerAuthentication", f"authenticationRef kind {ref}")
        ta = m.one("TriggerAuthentication", ref["name"])
        params = {}
        for t in ta["spec"]["secretTargetRef"]:
            secret = m.one("Secret", t["name"])
            need(t["key"] in secret.get("stringData", {}), f"Secret {t['name']} has no key {t['key']}")
            params[t["parameter"]] = f"{t['name']}/{t['key']}"
        need("host" in params, "no host parameter")
        need(("username" in params) == ("password" in params), "username and password must come together")
        need(set(params) <= {"host", "username", "password", "vhostName", "tls", "ca", "cert", "key"},
             f"unknown parameters {sorted(set(params))}")
        host = m.one("Secret", ta["spec"]["secretTargetRef"][0]["name"])["stringData"][
            next(t["key"] for t in ta["spec"]["secretTargetRef"] if t["parameter"] == "host")]
        need(re.fullmatch(r"https?://[^@/]+/[^/]+", host), f"host {host!r} is not http(s)://host:port/<vhost>")
        return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    r.check("TriggerAuthentication exists and takes host, username, password from the example Secret", trigger_auth)

    def regex() -> str:
        out = run_worker_cli(binary, ["--config", str(config_file), "definitions"],
                             {k: v for k, v in w.env.items() if k.startswith("RELAY_")}, tmp)
        need(out.returncode == 0, f"relay-worker definitions: exit {out.returncode}: {out.stderr.strip()}")
        defs = json.loads(out.stdout)
        ingest = {b["destination"] for b in defs["bindings"]
                  if b["source"] == "moodle.ingest" and b["destination_type"] == "queue"}
        need(ingest, "the definitions bind no queue to moodle.ingest")
        queues = {q["name"] for q in defs["queues"]}
        pattern = re.compile(trigger["metadata"]["queueName"])
        # Also names that must never count, whatever the configuration.
        others = queues - ingest | {"relay.ingest", "relay.ingest.", "relay.ingestx.a", "moodle.ingest",
                                   "relay.dlq", "relay.retry.1000ms", "x.relay.ingest.a"}
        missed = sorted(q for q in ingest if not pattern.search(q))
        extra = sorted(q for q in others if pattern.search(q))
        need(not missed, f"queueName misses ingest queues {missed}")
        need(not extra, f"queueName also counts {extra}")
        return f"{len(ingest)} ingest queue(s) of {len(queues)}"
    r.check("trigger queueName matches the ingest queues the worker declares, and nothing else", regex)


# --- live --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def wait_for(url: str, seconds: float) -> tuple[int, str]:
    deadline = time.monotonic() + seconds
    status, body = 0, ""
    while time.monotonic() < deadline:
        status, body = http_get(url)
        # Only "not yet" is worth waiting for: no answer, or 503 (not ready).
        if status not in (0, 503):
            break
        time.sleep(0.2)
    return status, body


def live_checks(r: Report, m: Manifests, binary: str, vhost: str, broker: str, pid_file: Path | None,
                tmp: Path, rabbitmqctl: list[str]) -> None:
    so = m.one("ScaledObject")
    w = Worker(m, so["spec"]["scaleTargetRef"]["name"])
    failures_before = r.failures
    text = w.config_text()
    # The Secret's mount becomes a temporary directory with generated contents.
    secret_mounts = [mt["mountPath"].rstrip("/") for mt in w.mounts if "secret" in w.volumes[mt["name"]]]
    secret_dir = tmp / "secrets"
    secret_dir.mkdir()
    conf = tomllib.loads(text)
    (secret_dir / "amqp-url").write_text(f"amqp://guest:guest@{broker}/{vhost}\n")
    for site in conf.get("sites", []):
        if site.get("token_file"):
            rel = site["token_file"].rsplit("/", 1)[1]
            (secret_dir / rel).write_text(secrets.token_hex(16) + "\n")
    for mount in secret_mounts:
        text = text.replace(mount + "/", str(secret_dir) + "/")
    # No traffic to the Internet: Moodle is a local port nothing listens on.
    text = re.sub(r'(?m)^(\s*moodle_url\s*=\s*)"[^"]*"', rf'\1"http://127.0.0.1:{free_port()}"', text)
    config_file = tmp / "relay.toml"
    config_file.write_text(text)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update({k: v for k, v in w.env.items() if k.startswith("RELAY_")})
    env["RELAY_WORKER_LISTEN"] = f"127.0.0.1:{port}"
    log = open(tmp / "worker.log", "w")
    proc = subprocess.Popen([binary, "--config", str(config_file)], env=env, stdout=log, stderr=log)
    if pid_file:
        pid_file.write_text(str(proc.pid))
    base = f"http://127.0.0.1:{port}"
    live = w.container["livenessProbe"]["httpGet"]["path"]
    ready = w.container["readinessProbe"]["httpGet"]["path"]
    scrape = m.one("Service")["metadata"]["annotations"]["prometheus.io/path"]
    try:
        def liveness() -> str:
            status, _ = wait_for(base + live, 10)
            need(status == 200, f"GET {live}: {status or 'no answer'} (waited up to 10 s)")
            return live
        r.check("live: liveness probe path answers 200", liveness)

        def readiness() -> str:
            status, body = wait_for(base + ready, 30)
            said = f" {body.strip()}" if body.strip() else ""
            need(status == 200, f"GET {ready}: {status or 'no answer'}{said} (waited up to 30 s)")
            return ready
        r.check("live: readiness probe path answers 200 once connected and consuming", readiness)

        def metrics() -> str:
            status, body = http_get(base + scrape)
            need(status == 200, f"GET {scrape}: {status}")
            need("relay_broker_connected 1" in body, "relay_broker_connected 1 not in the metrics")
            return scrape
        r.check("live: the scrape path serves the relay_ metrics", metrics)

        def queues() -> str:
            out = subprocess.run([*rabbitmqctl, "list_queues", "-q", "-p", vhost, "name"],
                                 capture_output=True, text=True, timeout=60)
            need(out.returncode == 0, f"rabbitmqctl list_queues: {out.stderr.strip()}")
            names = [n for n in out.stdout.split() if n != "name"]
            pattern = re.compile(so["spec"]["triggers"][0]["metadata"]["queueName"])
            counted = sorted(n for n in names if pattern.search(n))
            want = sorted(f"relay.ingest.{s['id']}" for s in conf.get("sites", []))
            need(counted == want, f"the regex counts {counted} of the declared {sorted(names)}, expected {want}")
            return ", ".join(counted)
        r.check("live: of the queues the worker declared, the KEDA regex counts the ingest queues", queues)

        def sigterm() -> str:
            period = w.pod.get("terminationGracePeriodSeconds", 30)
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=period)
            except subprocess.TimeoutExpired:
                raise Failed(f"still running {period} s after SIGTERM: the kubelet would SIGKILL it") from None
            took = time.monotonic() - start
            need(code == 0, f"exit status {code} after SIGTERM")
            return f"exit 0 after {took:.1f} s, grace {period} s"
        r.check("live: SIGTERM ends the worker within terminationGracePeriodSeconds", sigterm)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        if r.failures > failures_before:
            tail = (tmp / "worker.log").read_text().splitlines()[-15:]
            print("     worker log (last lines):\n       " + "\n       ".join(tail), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifests", type=Path, required=True)
    ap.add_argument("--repo", type=Path, required=True, help="repository root (for Cargo.toml)")
    ap.add_argument("--relay-worker", required=True, help="the relay-worker binary")
    ap.add_argument("--kubernetes-version", action="append", required=True, help="e.g. 1.30.0; repeatable")
    ap.add_argument("--live-vhost", help="scratch vhost for the live checks (skipped without)")
    ap.add_argument("--broker", default="127.0.0.1:5672")
    ap.add_argument("--rabbitmqctl", default="rabbitmqctl", help="how to run rabbitmqctl (e.g. via sudo -n)")
    ap.add_argument("--pid-file", type=Path, help="where to write the live worker's pid (for cleanup)")
    args = ap.parse_args()
    # Terminated (a CI time-out): unwind, so the live worker is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    r = Report()
    m = Manifests(args.manifests)
    with tempfile.TemporaryDirectory(prefix="k8s-check-") as tmp:
        lint_checks(r, args.manifests)
        schema_checks(r, m, args.kubernetes_version)
        structure = Path(tmp) / "structure"
        structure.mkdir()
        structure_checks(r, m, args.relay_worker, args.repo, structure)
        if args.live_vhost:
            live = Path(tmp) / "live"
            live.mkdir()
            live_checks(r, m, args.relay_worker, args.live_vhost, args.broker, args.pid_file, live,
                        shlex.split(args.rabbitmqctl))
    print(f"{r.passed} passed, {r.failures} failed", flush=True)
    return 1 if r.failures else 0


if __name__ == "__main__":
    sys.exit(main())
