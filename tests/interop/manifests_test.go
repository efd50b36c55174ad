// SPDX-License-Identifier: Apache-2.0

package interop

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// TestManifestsDecodeStrictly decodes every document of every manifest in packaging/kubernetes
// into the Kubernetes API type its apiVersion and kind name, strictly: a kind the API does not
// know, an unknown or misspelt field, a duplicate key or a value of the wrong type fails, as
// `kubectl apply --validate=strict` would refuse it. (The JSON schemas kubeconform checks
// against are generated from the same types; they cannot be downloaded here.)
func TestManifestsDecodeStrictly(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "packaging", "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in packaging/kubernetes (%v)", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			docs := manifestDocs(t, readFile(t, file))
			if len(docs) == 0 {
				t.Fatal("no documents")
			}
			for i, doc := range docs {
				var meta struct {
					APIVersion string `json:"apiVersion"`
					Kind       string `json:"kind"`
				}
				if err := yaml.Unmarshal(doc, &meta); err != nil {
					t.Fatalf("document %d: %v", i+1, err)
				}
				gv, err := schema.ParseGroupVersion(meta.APIVersion)
				if err != nil {
					t.Fatalf("document %d: apiVersion %q: %v", i+1, meta.APIVersion, err)
				}
				obj, err := scheme.Scheme.New(gv.WithKind(meta.Kind))
				if err != nil {
					t.Fatalf("document %d: %s %s is not a Kubernetes API type: %v", i+1,
						meta.APIVersion, meta.Kind, err)
				}
				if err := yaml.UnmarshalStrict(doc, obj); err != nil {
					t.Fatalf("document %d (%s): %v", i+1, meta.Kind, err)
				}
				t.Logf("document %d: %s %s", i+1, meta.APIVersion, meta.Kind)
				if d, ok := obj.(*appsv1.Deployment); ok {
					checkPodSpec(t, d.Name, &d.Spec.Template.Spec)
				}
			}
		})
	}
}

// checkPodSpec checks what decoding alone does not: every mount names a volume of the pod, and
// every container is read-only, unprivileged and without capabilities.
func checkPodSpec(t *testing.T, name string, pod *corev1.PodSpec) {
	t.Helper()
	volumes := map[string]bool{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
	}
	all := append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...)
	for _, c := range all {
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				t.Errorf("%s: container %s mounts %q, which is not a volume of the pod", name,
					c.Name, m.Name)
			}
		}
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			t.Errorf("%s: container %s may escalate privileges or keeps capabilities", name, c.Name)
		}
	}
	for _, c := range pod.InitContainers {
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			continue // a run-once init container
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: sidecar %s has a writable root file system", name, c.Name)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil ||
			c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil ||
			c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: sidecar %s lacks the /readyz and /healthz probes", name, c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Errorf("%s: sidecar %s requests no CPU or memory", name, c.Name)
		}
	}
}

// manifestDocs splits a multi-document YAML file, skipping empty documents.
func manifestDocs(t *testing.T, data []byte) [][]byte {
	t.Helper()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}
}
