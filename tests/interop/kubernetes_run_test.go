// SPDX-License-Identifier: Apache-2.0

package interop

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// runStatus is the part of picket run's /status these tests read.
type runStatus struct {
	State    string `json:"state"`
	Ready    bool   `json:"ready"`
	Identity *struct {
		SpiffeID string `json:"spiffe_id"`
	} `json:"identity"`
	Rotation struct {
		InitialFailures int    `json:"initial_failures"`
		LastError       string `json:"last_error"`
	} `json:"rotation"`
	SentryRequests map[string]int `json:"sentry_requests"`
}

// status reads /status; ok is false while picket's admin endpoint does not answer 200.
func (r *picketRun) status(t *testing.T) (runStatus, bool) {
	t.Helper()
	var st runStatus
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/status", addr(r.adminPort)))
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return st, false
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("/status is not JSON: %v\n%s", err, body)
	}
	return st, true
}

// TestPicketRunKubernetesWithDaprSentry: picket run --mode kubernetes presents the pod's
// projected service-account token to Dapr's own Sentry in Kubernetes mode (KUBERNETES
// validator, TokenReview and the pod read from the API server) and installs the identity of the
// pod's app id; with the pod annotated for another app id than picket's --app-id, Dapr's Sentry
// refuses and picket never becomes ready, the refusal shown in /status.
func TestPicketRunKubernetesWithDaprSentry(t *testing.T) {
	user := "system:serviceaccount:" + kubeAppNS + ":" + kubeSA
	aud := "spiffe://" + kubeTD + "/ns/" + kubeSentryNS + "/dapr-sentry"
	good, annot := fakeJWT("run", "mypod"), fakeJWT("run-annot", "annotpod")
	kc := startKubeCluster(t, map[string]kubeToken{
		good:  {user: user, pod: "mypod", audience: aud},
		annot: {user: user, pod: "annotpod", audience: aud},
	}, []corev1.Pod{
		kubePod(kubeAppNS, "mypod", kubeSA, map[string]string{"dapr.io/app-id": "myappid"}),
		kubePod(kubeAppNS, "annotpod", kubeSA, map[string]string{"dapr.io/app-id": "someone-else"}),
	})
	sentry := startDaprKubeSentry(t, kc)
	anchors := filepath.Join(t.TempDir(), "ca.crt")
	writeFile(t, anchors, kc.bundle.X509.TrustAnchors, 0o644)

	// run starts picket run as the pod's sidecar: --mode kubernetes, the token projected under
	// the secrets directory (mode 0644, as Dapr's injector projects it), NAMESPACE the pod's.
	run := func(t *testing.T, name, token string) *picketRun {
		secrets := t.TempDir()
		tokenPath := filepath.Join(secrets, "dapr.io", "sentrytoken", "token")
		if err := os.MkdirAll(filepath.Dir(tokenPath), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, tokenPath, []byte(token), 0o644)
		return startPicketRunWith(t, name, []string{
			"[agent]\nretry_initial = 200ms\nretry_max = 1s",
			fmt.Sprintf("[sentry]\naddress = %s\ntrust_anchors_file = %s\n"+
				"control_plane_trust_domain = %s\ncontrol_plane_namespace = %s",
				sentry.address(), anchors, kubeTD, kubeSentryNS),
		}, []string{"PICKET_TEST_SECRETS_DIR=" + secrets, "NAMESPACE=" + kubeAppNS},
			[]string{"--mode", "kubernetes", "--app-id", "myappid"}, false)
	}

	t.Run("the pod's app id", func(t *testing.T) {
		const want = "spiffe://public/ns/" + kubeAppNS + "/myappid"
		r := run(t, "picket-run-kube", good)
		var st runStatus
		waitFor(t, 60*time.Second, "picket run ready with an identity in /status", func() bool {
			if !r.p.alive() {
				t.Fatalf("picket run exited:\n%s", r.p.output())
			}
			var ok bool
			st, ok = r.status(t)
			return ok && st.Ready && st.Identity != nil
		})
		if st.Identity.SpiffeID != want {
			t.Fatalf("picket run installed %s, want %s", st.Identity.SpiffeID, want)
		}
		if got := r.waitInstalled(t, 1, 10*time.Second)[0]; got[1] != want {
			t.Fatalf("picket run logged %v, want %s", got, want)
		}
		if httpStatus(r.adminPort, "/readyz") != 200 {
			t.Fatal("/status ready but /readyz not 200")
		}
		if kc.reviewsStarted(good) == 0 {
			t.Fatal("Dapr's Sentry never reviewed the projected token")
		}
		if strings.Contains(r.p.output(), good) {
			t.Fatal("picket run logged the projected token")
		}
		t.Logf("picket run installed %s (Sentry requests %v)", st.Identity.SpiffeID, st.SentryRequests)
	})

	t.Run("annotation names another app id", func(t *testing.T) {
		r := run(t, "picket-run-kube-annot", annot)
		var st runStatus
		// Three refusals in a row: picket keeps asking, and is never ready meanwhile.
		waitFor(t, 60*time.Second, "three refusals in /status", func() bool {
			if !r.p.alive() {
				t.Fatalf("picket run exited:\n%s", r.p.output())
			}
			var ok bool
			st, ok = r.status(t)
			if ok && (st.Ready || st.Identity != nil) {
				t.Fatalf("picket run became ready with the pod of another app id: %+v", st)
			}
			if httpStatus(r.adminPort, "/readyz") == 200 {
				t.Fatal("/readyz 200 with the pod of another app id")
			}
			return ok && st.SentryRequests["PERMISSION_DENIED"] >= 3
		})
		if !strings.Contains(st.Rotation.LastError, "PERMISSION_DENIED") {
			t.Errorf("/status rotation.last_error does not show the refusal: %q", st.Rotation.LastError)
		}
		if n := kc.reviewsStarted(annot); n < 3 {
			t.Errorf("Dapr's Sentry reviewed the projected token %d times for 3 refusals", n)
		}
		if n := len(r.installed()); n != 0 {
			t.Fatalf("picket run installed %d identities", n)
		}
		if other := st.SentryRequests; len(other) != 1 {
			t.Errorf("Sentry answered other than PERMISSION_DENIED: %v", other)
		}
		t.Logf("picket run, as expected: state %s, last_error %q", st.State, st.Rotation.LastError)
	})
}
