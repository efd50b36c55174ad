# SPDX-License-Identifier: Apache-2.0
"""packaging/kubernetes and packaging/docker. No cluster and no container engine are needed:
the manifests are parsed (python3-yaml) and checked for their kinds, the fields Kubernetes
requires, and agreement with picket itself (probe paths and ports, the admin port's default,
Dapr's credential and token layout); the picket.ini they carry runs a real `picket run`, and
`picket sentry` runs with their flags. The image's file system (what the Dockerfile copies onto
its distroless base) is assembled with the same script and run in a chroot as user 65532."""
import json
import os
import re
import shutil
import stat
import subprocess

import pytest

from conftest import http_get
from harness import REPO, Proc, free_port, picket_bin, port_open, run, sanitized, wait_for
from packaging_util import localize_ini

yaml = pytest.importorskip("yaml", reason="python3-yaml is needed to read the manifests")

K8S = os.path.join(REPO, "packaging", "kubernetes")
DOCKER = os.path.join(REPO, "packaging", "docker")
KUBERNETES = 2  # the token validator, as Sentry's protocol numbers it


def load(name):
    with open(os.path.join(K8S, name)) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        assert d.get("apiVersion") and d.get("kind"), d
        assert d["metadata"].get("name"), d
    return docs


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, [d["kind"] for d in docs])
    return found[0]


def default_admin_port():
    """The admin endpoint's default port, as 'picket run --help' states it."""
    m = re.search(r"\(default 127\.0\.0\.1:(\d+)\)", run([picket_bin(), "run", "--help"]).stdout)
    assert m
    return int(m.group(1))


def check_pod_spec(pod):
    """What Kubernetes requires and what picket's pods promise: named containers with images,
    mounts of declared volumes, probes on declared ports, non-root without privileges."""
    volumes = {v["name"] for v in pod.get("volumes", [])}
    containers = pod.get("initContainers", []) + pod["containers"]
    for c in containers:
        assert c["name"] and c["image"], c
        for m in c.get("volumeMounts", []):
            assert m["name"] in volumes and m["mountPath"].startswith("/"), m
        ports = {p["containerPort"] for p in c.get("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in c:
                assert c[probe]["httpGet"]["port"] in ports, (c["name"], probe)
        sc = c.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, c["name"]
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], c["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"


def check_deployment(dep):
    assert dep["apiVersion"] == "apps/v1"
    selector = dep["spec"]["selector"]["matchLabels"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    check_pod_spec(dep["spec"]["template"]["spec"])


def flag(args, name):
    for a in args:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    raise AssertionError(f"--{name} not in {args}")


def ini_of(docs):
    return one(docs, "ConfigMap", "picket-myapp")["data"]["picket.ini"]


def ini_value(ini, key):
    m = re.search(rf"^{key} = (.+)$", ini, flags=re.M)
    assert m, key
    return m.group(1)


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def test_sentry_manifest():
    docs = load("sentry.yaml")
    assert sorted(d["kind"] for d in docs) == ["ClusterRole", "ClusterRoleBinding", "ConfigMap",
                                               "Deployment", "Namespace", "Role", "RoleBinding",
                                               "Secret", "Service", "ServiceAccount"]
    ns = one(docs, "Namespace")["metadata"]["name"]
    for d in docs:
        if d["kind"] not in CLUSTER_SCOPED:
            assert d["metadata"]["namespace"] == ns, d["kind"]
    # Dapr's dapr-trust-bundle layout, Secret and ConfigMap, empty until the first start.
    secret = one(docs, "Secret", "dapr-trust-bundle")
    assert secret["stringData"] == {"ca.crt": "", "issuer.crt": "", "issuer.key": ""}
    assert one(docs, "ConfigMap", "dapr-trust-bundle")["data"] == {"ca.crt": ""}
    dep = one(docs, "Deployment", "dapr-sentry")
    check_deployment(dep)
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    args = c["args"]
    assert args[0] == "sentry" and flag(args, "mode") == "kubernetes"
    assert not any(a.startswith("--issuer-credentials") for a in args)  # read through the API
    assert "volumes" not in pod and "volumeMounts" not in c  # no key on any file system
    # The service account token picket sentry uses for the API server.
    sa = one(docs, "ServiceAccount", "dapr-sentry")
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is True
    assert c["env"][0]["name"] == "NAMESPACE"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": int(flag(args, "port")), "healthz": int(flag(args, "healthz-port")),
                     "metrics": int(flag(args, "metrics-port"))}
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": ports["healthz"]}
    svc = one(docs, "Service", "dapr-sentry")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    grpc = next(p for p in svc["spec"]["ports"] if p["name"] == "grpc")
    assert grpc["port"] == 443 and grpc["targetPort"] == ports["grpc"]


def test_sentry_rbac_is_exactly_what_it_uses():
    """TokenReview create, pods and Dapr Configurations get (cluster-wide: apps live in every
    namespace), and get/update of the two dapr-trust-bundle objects in Sentry's namespace only;
    each bound to Sentry's service account alone."""
    docs = load("sentry.yaml")
    ns = one(docs, "Namespace")["metadata"]["name"]
    subject = [{"kind": "ServiceAccount", "name": "dapr-sentry", "namespace": ns}]
    cluster = one(docs, "ClusterRole", "dapr-sentry")
    assert cluster["rules"] == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"],
         "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": ["dapr.io"], "resources": ["configurations"], "verbs": ["get"]},
    ]
    role = one(docs, "Role", "dapr-sentry")
    assert role["metadata"]["namespace"] == ns
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets", "configmaps"],
         "resourceNames": ["dapr-trust-bundle"], "verbs": ["get", "update"]},
    ]
    for kind, ref_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        b = one(docs, kind, "dapr-sentry")
        assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind,
                                "name": "dapr-sentry"}
        assert b["subjects"] == subject


def test_sidecar_manifest():
    docs = load("sidecar.yaml")
    sentry_docs = load("sentry.yaml")
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "Service"]
    dep = one(docs, "Deployment", "myapp")
    check_deployment(dep)
    pod = dep["spec"]["template"]["spec"]
    (sidecar,) = pod["initContainers"]
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar, not a run-once init
    # daprd's mode as the injector passes it: the projected token, validator KUBERNETES.
    assert sidecar["args"] == ["run", "--config-file", "/etc/picket/picket.ini",
                               "--mode", "kubernetes"]
    config_path = sidecar["args"][2]
    ini = ini_of(docs)

    # The app id is the pod's dapr.io/app-id annotation, the one Dapr's Sentry checks the
    # token's pod against; the namespace is the pod's. Nothing in picket.ini contradicts them.
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in sidecar["env"]}
    assert env == {"APP_ID": "metadata.annotations['dapr.io/app-id']",
                   "NAMESPACE": "metadata.namespace"}
    assert dep["spec"]["template"]["metadata"]["annotations"]["dapr.io/app-id"] == "myapp"
    assert "dapr.io/enabled" not in dep["spec"]["template"]["metadata"]["annotations"]
    assert not re.search(r"^(app_id|namespace) *=", ini, re.M)

    # The probes: /readyz and /healthz of the admin endpoint, on the port picket.ini sets,
    # which is picket's default admin port.
    admin_port = int(ini_value(ini, "listen").rsplit(":", 1)[1])
    assert admin_port == default_admin_port()
    for probe, path in (("startupProbe", "/readyz"), ("readinessProbe", "/readyz"),
                        ("livenessProbe", "/healthz")):
        assert sidecar[probe]["httpGet"] == {"path": path, "port": admin_port}, probe
    assert ini_value(ini, "listen").startswith("0.0.0.0:")  # reachable by the kubelet

    # Mounts: the config where --config points, the anchors where picket.ini reads them, and
    # Dapr's projected service-account token where Dapr's injector puts it.
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    cfg_mount = next(n for n, p in mounts.items() if config_path.startswith(p + "/"))
    assert volumes[cfg_mount]["configMap"]["name"] == "picket-myapp"
    assert os.path.basename(config_path) == "picket.ini"
    # The anchors: Dapr's dapr-trust-bundle ConfigMap (copied into the app's namespace, so
    # not part of this file), its key ca.crt where picket.ini reads it.
    anchors = ini_value(ini, "trust_anchors_file")
    anchors_mount = next(n for n, p in mounts.items() if anchors.startswith(p + "/"))
    anchors_vol = volumes[anchors_mount]["configMap"]
    assert anchors_vol["name"] == "dapr-trust-bundle"
    assert "ca.crt" in one(sentry_docs, "ConfigMap", "dapr-trust-bundle")["data"]
    assert anchors_vol["items"] == [{"key": "ca.crt", "path": os.path.basename(anchors)}]
    assert not [d for d in docs if d["metadata"]["name"] == "dapr-trust-bundle"]
    assert mounts["dapr-identity-token"] == "/var/run/secrets/dapr.io/sentrytoken"
    projected = volumes["dapr-identity-token"]["projected"]
    assert projected["defaultMode"] == 0o644  # as the injector sets it: readable by picket
    (source,) = projected["sources"]
    token = source["serviceAccountToken"]
    assert token["path"] == "token" and token["expirationSeconds"] == 7200

    # Sentry: its address, identity and token audience agree with sentry.yaml.
    sentry_dep = one(sentry_docs, "Deployment", "dapr-sentry")
    sentry_args = sentry_dep["spec"]["template"]["spec"]["containers"][0]["args"]
    sentry_ns = sentry_dep["metadata"]["namespace"]
    td = flag(sentry_args, "trust-domain")
    assert ini_value(ini, "control_plane_trust_domain") == td
    assert ini_value(ini, "control_plane_namespace") == sentry_ns
    assert token["audience"] == f"spiffe://{td}/ns/{sentry_ns}/dapr-sentry"
    host, port = ini_value(ini, "address").rsplit(":", 1)
    assert host == f"dapr-sentry.{sentry_ns}.svc.cluster.local"
    svc_ports = one(sentry_docs, "Service", "dapr-sentry")["spec"]["ports"]
    assert int(port) in [p["port"] for p in svc_ports]

    # The Service reaches the inbound listener.
    inbound = int(re.search(r"^\[inbound \S+\]\nlisten = 0\.0\.0\.0:(\d+)", ini, re.M).group(1))
    assert {p["containerPort"] for p in sidecar["ports"]} >= {inbound, admin_port}
    svc = one(docs, "Service", "myapp")
    assert svc["spec"]["ports"][0]["targetPort"] == inbound


def pod_field(pod_meta, path):
    """What the downward API gives for a fieldRef's fieldPath."""
    m = re.fullmatch(r"metadata\.(annotations|labels)\['([^']+)'\]", path)
    if m:
        return pod_meta[m.group(1)][m.group(2)]
    assert path.startswith("metadata."), path
    return pod_meta[path.split(".", 1)[1]]


def test_sidecar_container_runs_as_written(tmp_path, py_sentry):
    """The sidecar container as the kubelet starts it: its args, its env with the downward
    API's values, its picket.ini, the projected token at Dapr's path. Only addresses and paths
    move: Sentry to a local one with the control plane's identity, /var/run/secrets into the
    test's directory (PICKET_TEST_SECRETS_DIR), the mounts to files the test writes. It becomes
    ready, and Sentry saw the request Dapr's Kubernetes validator expects."""
    docs = load("sidecar.yaml")
    dep = one(docs, "Deployment", "myapp")
    pod_meta = dict(dep["spec"]["template"]["metadata"], namespace=dep["metadata"]["namespace"],
                    name="myapp-7d4b9c-xk2lp")
    (sidecar,) = dep["spec"]["template"]["spec"]["initContainers"]
    ini = ini_of(docs)
    sentry = py_sentry(ttl=30, trust_domain=ini_value(ini, "control_plane_trust_domain"),
                       namespace=ini_value(ini, "control_plane_namespace"))

    # /var/run/secrets, as the pod has it: the projected token and the anchors' ConfigMap.
    secrets = tmp_path / "secrets"
    token_dir = secrets / "dapr.io" / "sentrytoken"
    token_dir.mkdir(parents=True)
    (token_dir / "token").write_text("projected.service-account.token")
    anchors = ini_value(ini, "trust_anchors_file")
    assert anchors.startswith("/var/run/secrets/")
    local_anchors = secrets / anchors[len("/var/run/secrets/"):]
    local_anchors.parent.mkdir(parents=True)
    shutil.copy(sentry.ca_file, local_anchors)

    admin, inbound = free_port(), free_port()
    text = localize_ini(ini, {
        f"address = {ini_value(ini, 'address')}": f"address = {sentry.address}",
        f"trust_anchors_file = {anchors}": f"trust_anchors_file = {local_anchors}",
        "listen = 0.0.0.0:9901": f"listen = 127.0.0.1:{admin}",
        "listen = 0.0.0.0:8443": f"listen = 127.0.0.1:{inbound}",
    })
    config = tmp_path / "picket.ini"
    config.write_text(text)
    args = [str(config) if a == "/etc/picket/picket.ini" else a for a in sidecar["args"]]
    assert args != sidecar["args"]

    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBERNETES_SERVICE_HOST", "DAPR_SENTRY_TOKEN_FILE", "PICKET_MODE",
                        "APP_ID", "NAMESPACE", "DAPR_TRUST_ANCHORS")}
    for e in sidecar["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            env[e["name"]] = pod_field(pod_meta, e["valueFrom"]["fieldRef"]["fieldPath"])
    env["PICKET_TEST_SECRETS_DIR"] = str(secrets)
    # `--check` accepts it as it is, then it runs.
    res = subprocess.run([picket_bin(), *args, "--check"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    proc = Proc([os.path.abspath(picket_bin()), *args], tmp_path / "run.log", env=env)

    def ready():
        if not proc.alive():
            raise RuntimeError(proc.output())
        return http_get(admin, "/readyz")[0] == 200
    wait_for(ready, 30, what="the sidecar container's /readyz")
    (req,) = sentry.requests[:1]
    assert (req.id, req.namespace, req.trust_domain) == ("myapp", "default", "")
    assert (req.token, req.token_validator) == ("projected.service-account.token", KUBERNETES)
    # The manifest logs JSON, as Dapr's sidecars do: each line an object, the identity a key.
    lines = [json.loads(ln) for ln in proc.output().splitlines() if ln.strip()]
    assert any(o.get("spiffe_id") == "spiffe://public/ns/default/myapp" for o in lines)
    assert "projected.service-account.token" not in proc.output()
    assert port_open(inbound)
    proc.stop()


def test_sentry_args_need_the_api_server(tmp_path):
    """picket sentry with the manifest's flags, outside a cluster, stops at once and says what is
    missing (the API server's address), without listening or writing anything."""
    dep = one(load("sentry.yaml"), "Deployment", "dapr-sentry")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env["NAMESPACE"] = "dapr-system"
    res = subprocess.run([picket_bin(), *args], env=env, capture_output=True, text=True,
                         timeout=30, cwd=tmp_path)
    assert res.returncode != 0
    assert "KUBERNETES_SERVICE_HOST" in res.stderr, res.stderr
    assert os.listdir(tmp_path) == []


def test_dockerfile_shape():
    with open(os.path.join(DOCKER, "Dockerfile")) as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert len(froms) == 2 and froms[0].endswith(" AS build")
    final = lines[lines.index(froms[1]):]
    assert froms[1] == "FROM gcr.io/distroless/base-nossl-debian12:nonroot"
    assert "COPY --from=build /rootfs/ /" in final
    assert "USER 65532:65532" in final
    assert 'ENTRYPOINT ["/usr/bin/picket"]' in final
    assert not any(ln.startswith("RUN ") for ln in final)  # no shell in the final image
    # The image's default command is the sidecar on the path sidecar.yaml mounts.
    assert 'CMD ["run", "--config-file", "/etc/picket/picket.ini"]' in final


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("chroot") is None,
                    reason="chroot needs root")
def test_image_rootfs_runs_as_nonroot(tmp_path):
    """collect-rootfs lays out the image's additions; with glibc added (as the distroless base
    provides it) picket runs in a chroot of exactly that, as 65532, as picket and as sentry."""
    if sanitized():
        pytest.skip("the sanitizer runtime needs /proc, which the chroot lacks (and the image "
                    "carries a release build, not a sanitizer one)")
    root = tmp_path / "rootfs"
    res = run([os.path.join(DOCKER, "collect-rootfs"), os.path.abspath(picket_bin()), root])
    assert res.returncode == 0, res.stderr
    added = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())
    assert "usr/bin/picket" in added and os.readlink(root / "usr/bin/sentry") == "picket"
    assert not any(os.path.basename(p).startswith(("libc.so", "ld-linux")) for p in added)
    # The base image's part: glibc and the loader at the paths the binary asks for.
    ldd = run(["ldd", picket_bin()]).stdout
    for line in ldd.splitlines():
        m = re.search(r"(/\S+)", line)
        if not m:
            continue
        path = m.group(1)
        # dpkg knows a file by the path its package ships it under (/lib or /usr/lib).
        owner = (run(["dpkg", "-S", os.path.realpath(path)]).stdout or
                 run(["dpkg", "-S", path]).stdout)
        if owner.startswith("libc6"):
            dest = root / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(os.path.realpath(path), dest)
    # The container runtime provides /dev; wolfCrypt seeds its generator from /dev/urandom.
    (root / "dev").mkdir()
    try:
        os.mknod(root / "dev" / "urandom", 0o666 | stat.S_IFCHR, os.makedev(1, 9))
    except PermissionError:
        pytest.skip("mknod is not permitted here, so the chroot cannot have /dev/urandom")
    (root / "tmp").mkdir(mode=0o1777)
    os.chmod(root / "tmp", 0o1777)

    def chrooted(*args):
        return subprocess.run(["chroot", "--userspec=65532:65532", root, *args],
                              capture_output=True, text=True)
    res = chrooted("/usr/bin/picket", "--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout == run([picket_bin(), "--version"]).stdout
    res = chrooted("/usr/bin/sentry", "--help")
    assert res.returncode == 0 and "usage: picket sentry" in res.stdout, res.stderr
    res = chrooted("/usr/bin/picket", "cert", "create-root", "--cert", "/tmp/ca.crt",
                   "--key", "/tmp/ca.key")
    assert res.returncode == 0, res.stderr
    assert os.stat(root / "tmp" / "ca.key").st_uid == 65532
