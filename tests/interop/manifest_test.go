// SPDX-License-Identifier: Apache-2.0

package interop

import (
	"bufio"
	"bytes"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

// TestSentryManifestTypes decodes every document of packaging/kubernetes/sentry.yaml into the
// Kubernetes API types strictly (an unknown or misspelt field, a wrong type or a kind the API
// does not know fails) and checks the service account the Deployment runs as is the one the
// RBAC binds.
func TestSentryManifestTypes(t *testing.T) {
	data := readFile(t, filepath.Join("..", "..", "packaging", "kubernetes", "sentry.yaml"))
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	reader := utilyaml.NewYAMLReader(bufioReader(data))
	var objs []runtime.Object
	for {
		doc, err := reader.Read()
		if err != nil {
			break
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, gvk, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("document %d: %v", len(objs)+1, err)
		}
		t.Logf("%s %s", gvk.Kind, gvk.GroupVersion())
		objs = append(objs, obj)
	}
	if len(objs) != 10 {
		t.Fatalf("%d documents, want 10", len(objs))
	}
	var sa string
	var bound []string
	for _, o := range objs {
		switch v := o.(type) {
		case *appsv1.Deployment:
			sa = v.Spec.Template.Spec.ServiceAccountName
			if c := v.Spec.Template.Spec.Containers[0]; c.SecurityContext == nil || *c.SecurityContext.ReadOnlyRootFilesystem != true {
				t.Errorf("container %s: root file system not read-only", c.Name)
			}
		case *rbacv1.ClusterRoleBinding:
			for _, s := range v.Subjects {
				bound = append(bound, s.Namespace+"/"+s.Name)
			}
		case *rbacv1.RoleBinding:
			for _, s := range v.Subjects {
				bound = append(bound, s.Namespace+"/"+s.Name)
			}
		case *corev1.Secret:
			if v.Type != corev1.SecretTypeOpaque {
				t.Errorf("Secret type %s", v.Type)
			}
		}
	}
	if sa == "" || len(bound) != 2 || bound[0] != "dapr-system/"+sa || bound[1] != "dapr-system/"+sa {
		t.Fatalf("Deployment runs as %q, bindings name %v", sa, bound)
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
