// SPDX-License-Identifier: Apache-2.0

package interop

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sentryv1pb "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/dapr/dapr/pkg/sentry/server/ca/bundle"
	prockube "github.com/dapr/dapr/tests/integration/framework/process/kubernetes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	authapi "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	configapi "github.com/dapr/dapr/pkg/apis/configuration/v1alpha1"
)

// appConfigs are the Dapr Configurations of the apps' namespace: one naming a trust domain for
// its apps, one naming none.
var appConfigs = []configapi.Configuration{
	{
		TypeMeta:   metav1.TypeMeta{APIVersion: "dapr.io/v1alpha1", Kind: "Configuration"},
		ObjectMeta: metav1.ObjectMeta{Namespace: kubeAppNS, Name: "corpconfig"},
		Spec: configapi.ConfigurationSpec{AccessControlSpec: &configapi.AccessControlSpec{
			DefaultAction: "allow", TrustDomain: "corp.example"}},
	},
	{
		TypeMeta:   metav1.TypeMeta{APIVersion: "dapr.io/v1alpha1", Kind: "Configuration"},
		ObjectMeta: metav1.ObjectMeta{Namespace: kubeAppNS, Name: "plainconfig"},
		Spec:       configapi.ConfigurationSpec{},
	},
}

const (
	kubeTD       = "integration.test.dapr.io"
	kubeSentryNS = "sentrynamespace"
	kubeAppNS    = "mynamespace"
	kubeSA       = "myserviceaccount"
)

// kubeToken is what the fake API server's TokenReview knows of one token.
type kubeToken struct {
	user     string        // authenticated as this user; "" = not authenticated
	pod      string        // the pod named in the review's extra (and in the token's claim)
	audience string        // the one audience the token was issued for
	noExtra  bool          // the review carries no pod-name extra (an API server before 1.30)
	delay    time.Duration // the API server takes this long to review it
}

// fakeJWT is a token shaped like a projected service-account token: a JWS whose payload names
// the pod. The signature is never checked by Sentry (the TokenReview vouches for the token).
func fakeJWT(name, pod string) string {
	enc := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(map[string]any{
		"iss": "https://kubernetes.default.svc", "sub": name,
		"kubernetes.io": map[string]any{"pod": map[string]any{"name": pod}},
	})
	return enc([]byte(`{"alg":"RS256","kid":"test"}`)) + "." + enc(payload) + "." + enc([]byte("sig-"+name))
}

func kubePod(ns, name, sa string, annotations map[string]string) corev1.Pod {
	return corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec:       corev1.PodSpec{ServiceAccountName: sa},
	}
}

// kubeCluster is Dapr's own fake API server (the one Dapr's Sentry integration tests use) with
// the pods and tokens of the side-by-side table, serving both Sentries.
type kubeCluster struct {
	api     *prockube.Kubernetes
	bundle  bundle.Bundle
	tokens  map[string]kubeToken // by token text
	mu      sync.Mutex
	started map[string]int // TokenReviews begun, by token
	// kubeconfig's files: what picket sentry is given as --kube-* flags.
	caFile, certFile, keyFile string
}

func startKubeCluster(t *testing.T, tokens map[string]kubeToken, pods []corev1.Pod) *kubeCluster {
	return startKubeClusterWith(t, tokens, pods, nil)
}

// trustBundleStore is the dapr-trust-bundle Secret and ConfigMap of a fake API server that can
// be read and updated (with resourceVersion checked, as the real API server does).
type trustBundleStore struct {
	mu      sync.Mutex
	secret  corev1.Secret
	cm      corev1.ConfigMap
	updates int
}

func newTrustBundleStore(secretData map[string][]byte) *trustBundleStore {
	return &trustBundleStore{
		secret: corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Namespace: kubeSentryNS, Name: "dapr-trust-bundle",
				ResourceVersion: "1", Labels: map[string]string{"app": "dapr-sentry"}},
			Data: secretData},
		cm: corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Namespace: kubeSentryNS, Name: "dapr-trust-bundle",
				ResourceVersion: "1"}},
	}
}

func (s *trustBundleStore) snapshot() (corev1.Secret, corev1.ConfigMap, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.secret.DeepCopy(), *s.cm.DeepCopy(), s.updates
}

func (s *trustBundleStore) handler(t *testing.T, secret bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var obj any = &s.cm
		meta := &s.cm.ObjectMeta
		if secret {
			obj, meta = &s.secret, &s.secret.ObjectMeta
		}
		switch r.Method {
		case http.MethodGet:
		case http.MethodPut:
			var next corev1.Secret
			var nextCM corev1.ConfigMap
			var err error
			var rv string
			if secret {
				err = json.NewDecoder(r.Body).Decode(&next)
				rv = next.ResourceVersion
			} else {
				err = json.NewDecoder(r.Body).Decode(&nextCM)
				rv = nextCM.ResourceVersion
			}
			if err != nil {
				t.Errorf("PUT %s: %v", r.URL.Path, err)
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			if rv != meta.ResourceVersion {
				w.WriteHeader(http.StatusConflict)
				return
			}
			var n int
			fmt.Sscan(rv, &n)
			if secret {
				s.secret = next
			} else {
				s.cm = nextCM
			}
			meta.ResourceVersion = fmt.Sprint(n + 1)
			s.updates++
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		b, _ := json.Marshal(obj)
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}
}

func startKubeClusterWith(t *testing.T, tokens map[string]kubeToken, pods []corev1.Pod, store *trustBundleStore) *kubeCluster {
	t.Helper()
	_, rootKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x, err := bundle.GenerateX509(bundle.OptionsX509{X509RootKey: rootKey, TrustDomain: kubeTD,
		AllowedClockSkew: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	kc := &kubeCluster{bundle: bundle.Bundle{X509: x}, tokens: tokens, started: map[string]int{}}
	sentryID := "spiffe://" + kubeTD + "/ns/" + kubeSentryNS + "/dapr-sentry"

	opts := []prockube.Option{
		// Dapr's Sentry reads Configurations through an informer, picket sentry GETs the one a
		// pod names.
		prockube.WithClusterDaprConfigurationList(t, &configapi.ConfigurationList{
			TypeMeta: metav1.TypeMeta{APIVersion: "dapr.io/v1alpha1", Kind: "ConfigurationList"},
			Items:    appConfigs}),
		prockube.WithDaprConfigurationGet(t, &configapi.Configuration{
			TypeMeta:   metav1.TypeMeta{APIVersion: "dapr.io/v1alpha1", Kind: "Configuration"},
			ObjectMeta: metav1.ObjectMeta{Namespace: kubeSentryNS, Name: "daprsystem"},
			Spec: configapi.ConfigurationSpec{
				MTLSSpec: &configapi.MTLSSpec{ControlPlaneTrustDomain: kubeTD},
			},
		}),
	}
	if store == nil {
		opts = append(opts, prockube.WithSecretGet(t, &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Namespace: kubeSentryNS, Name: "dapr-trust-bundle"},
			Data: map[string][]byte{"ca.crt": x.TrustAnchors, "issuer.crt": x.IssChainPEM,
				"issuer.key": x.IssKeyPEM},
		}),
			prockube.WithConfigMapGet(t, &corev1.ConfigMap{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
				ObjectMeta: metav1.ObjectMeta{Namespace: kubeSentryNS, Name: "dapr-trust-bundle"},
				Data:       map[string]string{"ca.crt": string(x.TrustAnchors)},
			}))
	} else {
		opts = append(opts,
			prockube.WithPath("/api/v1/namespaces/"+kubeSentryNS+"/secrets/dapr-trust-bundle", store.handler(t, true)),
			prockube.WithPath("/api/v1/namespaces/"+kubeSentryNS+"/configmaps/dapr-trust-bundle", store.handler(t, false)))
	}
	opts = append(opts,
		// Dapr's Sentry reads pods through an informer (list and watch) ...
		prockube.WithClusterPodList(t, &corev1.PodList{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}, Items: pods}),
		prockube.WithPath("/apis/authentication.k8s.io/v1/tokenreviews", func(w http.ResponseWriter, r *http.Request) {
			var req authapi.TokenReview
			if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
				json.NewDecoder(r.Body).Decode(&req) != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			// Both Sentries must ask for Dapr's two audiences; a review without them is an error.
			if !slices.Equal(req.Spec.Audiences, []string{"dapr.io/sentry", sentryID}) {
				t.Errorf("TokenReview audiences %q", req.Spec.Audiences)
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			kc.mu.Lock()
			kc.started[req.Spec.Token]++
			kc.mu.Unlock()
			var st authapi.TokenReviewStatus
			tok, ok := kc.tokens[req.Spec.Token]
			time.Sleep(tok.delay)
			switch {
			case !ok || tok.user == "":
				st.Error = "invalid bearer token"
			case !slices.Contains(req.Spec.Audiences, tok.audience):
				st.Error = "token audiences [\"" + tok.audience + "\"] is invalid for the target audiences"
			default:
				st.Authenticated = true
				st.Audiences = []string{tok.audience}
				st.User = authapi.UserInfo{Username: tok.user}
				if !tok.noExtra {
					st.User.Extra = map[string]authapi.ExtraValue{
						"authentication.kubernetes.io/pod-name": {tok.pod}}
				}
			}
			b, _ := json.Marshal(&authapi.TokenReview{
				TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "TokenReview"},
				Status:   st})
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			w.Write(b)
		}),
	)
	for i := range appConfigs {
		opts = append(opts, prockube.WithDaprConfigurationGet(t, &appConfigs[i]))
	}
	// ... picket sentry GETs the one pod it needs.
	for i := range pods {
		pod := pods[i]
		opts = append(opts, prockube.WithPath(
			fmt.Sprintf("/api/v1/namespaces/%s/pods/%s", pod.Namespace, pod.Name),
			func(w http.ResponseWriter, r *http.Request) {
				b, _ := json.Marshal(&pod)
				w.Header().Set("Content-Type", "application/json")
				w.Write(b)
			}))
	}
	kc.api = prockube.New(t, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	kc.api.Run(t, ctx)
	t.Cleanup(func() { cancel(); kc.api.Cleanup(t) })

	// The kubeconfig Dapr's Sentry is given names the files picket sentry is given.
	var cfg struct {
		Clusters []struct {
			Cluster struct {
				CA string `json:"certificate-authority"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				Cert string `json:"client-certificate"`
				Key  string `json:"client-key"`
			} `json:"user"`
		} `json:"users"`
	}
	kubeconfig := kc.api.KubeconfigPath(t)
	if err := yaml.Unmarshal(readFile(t, kubeconfig), &cfg); err != nil || len(cfg.Clusters) != 1 || len(cfg.Users) != 1 {
		t.Fatalf("kubeconfig %s: %v", kubeconfig, err)
	}
	kc.caFile, kc.certFile, kc.keyFile = cfg.Clusters[0].Cluster.CA, cfg.Users[0].User.Cert, cfg.Users[0].User.Key
	t.Setenv("PICKET_TEST_KUBECONFIG", kubeconfig)
	return kc
}

func (kc *kubeCluster) reviewsStarted(token string) int {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	return kc.started[token]
}

// startDaprKubeSentry runs Dapr's Sentry in Kubernetes mode against the fake API server, as
// Dapr's own sentry/validator/kubernetes integration test does.
func startDaprKubeSentry(t *testing.T, kc *kubeCluster) *ca {
	t.Helper()
	c := &ca{port: freePort(t), healthzPort: freePort(t), trustDomain: kubeTD}
	c.p = startProc(t, "dapr-sentry-kube",
		[]string{"KUBERNETES_SERVICE_HOST=anything", "NAMESPACE=" + kubeSentryNS,
			// The tests run as whatever user runs them, root in CI containers.
			"DAPR_UNSAFE_SKIP_CONTAINER_UID_GID_CHECK=true"}, daprSentryBin,
		"-mode=kubernetes", "-kubeconfig="+os.Getenv("PICKET_TEST_KUBECONFIG"),
		"-trust-domain="+kubeTD, "-issuer-credentials="+t.TempDir(),
		"-port="+fmt.Sprint(c.port), "-listen-address=127.0.0.1",
		"-healthz-port="+fmt.Sprint(c.healthzPort), "-healthz-listen-address=127.0.0.1",
		"-metrics-port="+fmt.Sprint(freePort(t)), "-metrics-listen-address=127.0.0.1",
		"-log-level=info")
	c.waitHealthy(t)
	return c
}

// startPicketKubeSentry runs picket sentry with --mode kubernetes against the same API server.
// Its credentials come from the dapr-trust-bundle Secret, through the API.
func startPicketKubeSentry(t *testing.T, kc *kubeCluster, extra ...string) *ca {
	t.Helper()
	c := &ca{port: freePort(t), healthzPort: freePort(t), trustDomain: kubeTD}
	args := append([]string{"sentry", "--mode", "kubernetes", "--trust-domain", kubeTD,
		"--kube-ca-file", kc.caFile, "--kube-tls-server-name", "cluster.local",
		"--kube-client-certificate-file", kc.certFile, "--kube-client-key-file", kc.keyFile,
		"--kube-token-file", "",
		"--port", fmt.Sprint(c.port), "--listen-address", "127.0.0.1",
		"--healthz-port", fmt.Sprint(c.healthzPort), "--healthz-listen-address", "127.0.0.1",
		"--metrics-port", fmt.Sprint(freePort(t)), "--metrics-listen-address", "127.0.0.1"}, extra...)
	c.p = startProc(t, "picket-sentry-kube",
		[]string{"KUBERNETES_SERVICE_HOST=127.0.0.1", fmt.Sprintf("KUBERNETES_SERVICE_PORT=%d", kc.api.Port()),
			"NAMESPACE=" + kubeSentryNS}, picketBin, args...)
	c.waitHealthy(t)
	return c
}

func ptr[T any](v T) *T { return &v }

// signClient is a plain gRPC client of a Sentry that checks Sentry's SPIFFE ID.
func signClient(t *testing.T, sentry *ca, anchors []byte) sentryv1pb.CAClient {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(anchors) {
		t.Fatal("no anchors")
	}
	want := "spiffe://" + kubeTD + "/ns/" + kubeSentryNS + "/dapr-sentry"
	tlsConf := &tls.Config{
		InsecureSkipVerify: true, // replaced by the SPIFFE check below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			certs := make([]*x509.Certificate, 0, len(raw))
			for _, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs = append(certs, c)
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return err
			}
			if len(certs[0].URIs) != 1 || certs[0].URIs[0].String() != want {
				return fmt.Errorf("Sentry is %v, not %s", certs[0].URIs, want)
			}
			return nil
		},
	}
	conn, err := grpc.NewClient(sentry.address(), grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return sentryv1pb.NewCAClient(conn)
}

// signAs asks sentry for a certificate; it returns the gRPC code, the message and the SPIFFE ID
// issued.
func signAs(t *testing.T, client sentryv1pb.CAClient, id, ns, token string) (codes.Code, string, string) {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, new(x509.CertificateRequest), key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := client.SignCertificate(ctx, &sentryv1pb.SignCertificateRequest{
		Id: id, Namespace: ns, Token: token,
		TokenValidator:            sentryv1pb.SignCertificateRequest_KUBERNETES,
		CertificateSigningRequest: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}),
	})
	if err != nil {
		st, _ := status.FromError(err)
		return st.Code(), st.Message(), ""
	}
	certs := pemCerts(t, resp.GetWorkloadCertificate())
	if len(certs) == 0 || len(certs[0].URIs) != 1 {
		t.Fatalf("certificate without one URI SAN")
	}
	return codes.OK, "", certs[0].URIs[0].String()
}

// TestKubernetesValidatorSideBySide: Dapr's Sentry and picket sentry, both in Kubernetes mode
// against the same fake API server, answer one table of requests; every case gets the same gRPC
// code from both and, when issued, the same SPIFFE ID.
func TestKubernetesValidatorSideBySide(t *testing.T) {
	user := "system:serviceaccount:" + kubeAppNS + ":" + kubeSA
	tok := func(name, pod string) string { return fakeJWT(name, pod) }
	tokens := map[string]kubeToken{
		tok("good", "mypod"):        {user: user, pod: "mypod", audience: "spiffe://" + kubeTD + "/ns/" + kubeSentryNS + "/dapr-sentry"},
		tok("legacy-aud", "mypod"):  {user: user, pod: "mypod", audience: "dapr.io/sentry"},
		tok("noextra", "mypod"):     {user: user, pod: "mypod", audience: "dapr.io/sentry", noExtra: true},
		tok("plain", "plainpod"):    {user: user, pod: "plainpod", audience: "dapr.io/sentry"},
		tok("wrongsa", "otherpod"):  {user: user, pod: "otherpod", audience: "dapr.io/sentry"},
		tok("annot", "annotpod"):    {user: user, pod: "annotpod", audience: "dapr.io/sentry"},
		tok("ghost", "ghostpod"):    {user: user, pod: "ghostpod", audience: "dapr.io/sentry"},
		tok("unauth", "mypod"):      {pod: "mypod"},
		tok("otheraud", "mypod"):    {user: user, pod: "mypod", audience: "api"},
		tok("notsa", "mypod"):       {user: "alice", pod: "mypod", audience: "dapr.io/sentry"},
		tok("placement", "cppod"):   {user: "system:serviceaccount:" + kubeSentryNS + ":dapr-placement", pod: "cppod", audience: "dapr.io/sentry"},
		tok("corp", "corppod"):      {user: user, pod: "corppod", audience: "dapr.io/sentry"},
		tok("plaincfg", "cfgpod"):   {user: user, pod: "cfgpod", audience: "dapr.io/sentry"},
		tok("nocfg", "nocfgpod"):    {user: user, pod: "nocfgpod", audience: "dapr.io/sentry"},
		tok("sentry", "cpsentry"):   {user: "system:serviceaccount:" + kubeSentryNS + ":dapr-sentry", pod: "cpsentry", audience: "dapr.io/sentry"},
		tok("cpwrongns", "cpother"): {user: user, pod: "cpother", audience: "dapr.io/sentry"},
	}
	pods := []corev1.Pod{
		kubePod(kubeAppNS, "mypod", kubeSA, map[string]string{"dapr.io/app-id": "myappid"}),
		kubePod(kubeAppNS, "plainpod", kubeSA, nil),
		kubePod(kubeAppNS, "otherpod", "other-sa", map[string]string{"dapr.io/app-id": "myappid"}),
		kubePod(kubeAppNS, "annotpod", kubeSA, map[string]string{"dapr.io/app-id": "someone-else"}),
		kubePod(kubeSentryNS, "cppod", "dapr-placement", map[string]string{"dapr.io/control-plane": "placement"}),
		kubePod(kubeAppNS, "corppod", kubeSA, map[string]string{"dapr.io/app-id": "corpapp", "dapr.io/config": "corpconfig"}),
		kubePod(kubeAppNS, "cfgpod", kubeSA, map[string]string{"dapr.io/app-id": "cfgapp", "dapr.io/config": "plainconfig"}),
		kubePod(kubeAppNS, "nocfgpod", kubeSA, map[string]string{"dapr.io/app-id": "nocfgapp", "dapr.io/config": "missingconfig"}),
		kubePod(kubeSentryNS, "cpsentry", "dapr-sentry", map[string]string{"dapr.io/control-plane": "sentry"}),
		kubePod(kubeAppNS, "cpother", kubeSA, map[string]string{"dapr.io/control-plane": "placement"}),
	}
	kc := startKubeCluster(t, tokens, pods)

	daprS := startDaprKubeSentry(t, kc)
	// picket sentry signs only the trust domains it is told to; Dapr's signs whatever a
	// Configuration names.
	picketS := startPicketKubeSentry(t, kc, "--allowed-trust-domains", "corp.example")
	clients := map[string]sentryv1pb.CAClient{
		"dapr":   signClient(t, daprS, kc.bundle.X509.TrustAnchors),
		"picket": signClient(t, picketS, kc.bundle.X509.TrustAnchors),
	}

	cases := []struct {
		name, id, ns, token string
		want                codes.Code
		wantID              string
		picketWant          *codes.Code // where picket differs from Dapr on purpose
	}{
		{"the pod's app id", "myappid", kubeAppNS, tok("good", "mypod"), codes.OK, "spiffe://public/ns/mynamespace/myappid", nil},
		{"legacy audience", "myappid", kubeAppNS, tok("legacy-aud", "mypod"), codes.OK, "spiffe://public/ns/mynamespace/myappid", nil},
		{"pod name from the token's claim", "myappid", kubeAppNS, tok("noextra", "mypod"), codes.OK, "spiffe://public/ns/mynamespace/myappid", nil},
		{"pod name without app id annotation", "plainpod", kubeAppNS, tok("plain", "plainpod"), codes.OK, "spiffe://public/ns/mynamespace/plainpod", nil},
		{"control-plane pod", "dapr-placement", kubeSentryNS, tok("placement", "cppod"), codes.OK, "spiffe://" + kubeTD + "/ns/" + kubeSentryNS + "/dapr-placement", nil},
		{"wrong namespace", "myappid", "othernamespace", tok("good", "mypod"), codes.PermissionDenied, "", nil},
		{"wrong service account", "myappid", kubeAppNS, tok("wrongsa", "otherpod"), codes.PermissionDenied, "", nil},
		{"annotation names another app id", "myappid", kubeAppNS, tok("annot", "annotpod"), codes.PermissionDenied, "", nil},
		{"another app id than the annotation", "notmyappid", kubeAppNS, tok("good", "mypod"), codes.PermissionDenied, "", nil},
		{"missing pod", "ghostpod", kubeAppNS, tok("ghost", "ghostpod"), codes.PermissionDenied, "", nil},
		{"unauthenticated token", "myappid", kubeAppNS, tok("unauth", "mypod"), codes.PermissionDenied, "", nil},
		{"unknown token", "myappid", kubeAppNS, "not-a-token", codes.PermissionDenied, "", nil},
		{"wrong audience", "myappid", kubeAppNS, tok("otheraud", "mypod"), codes.PermissionDenied, "", nil},
		{"user not a service account", "myappid", kubeAppNS, tok("notsa", "mypod"), codes.PermissionDenied, "", nil},
		{"legacy namespace:account id", kubeAppNS + ":" + kubeSA, kubeAppNS, tok("good", "mypod"), codes.PermissionDenied, "", nil},
		{"control-plane annotation outside Sentry's namespace", "dapr-placement", kubeAppNS, tok("cpwrongns", "cpother"), codes.PermissionDenied, "", nil},
		{"empty token", "myappid", kubeAppNS, "", codes.PermissionDenied, "", nil},
		{"Configuration naming a trust domain", "corpapp", kubeAppNS, tok("corp", "corppod"), codes.OK, "spiffe://corp.example/ns/mynamespace/corpapp", nil},
		{"Configuration naming none", "cfgapp", kubeAppNS, tok("plaincfg", "cfgpod"), codes.OK, "spiffe://public/ns/mynamespace/cfgapp", nil},
		{"missing Configuration", "nocfgapp", kubeAppNS, tok("nocfg", "nocfgpod"), codes.PermissionDenied, "", nil},
		// Dapr issues Sentry's own identity to a pod annotated dapr.io/control-plane: sentry;
		// picket sentry never issues it to a request.
		{"control-plane pod asking for dapr-sentry", "dapr-sentry", kubeSentryNS, tok("sentry", "cpsentry"), codes.OK,
			"spiffe://" + kubeTD + "/ns/" + kubeSentryNS + "/dapr-sentry", ptr(codes.PermissionDenied)},
	}
	t.Logf("%-52s %-18s %-18s", "case", "Dapr's Sentry", "picket sentry")
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			got := map[string]codes.Code{}
			for _, who := range []string{"dapr", "picket"} {
				code, msg, id := signAs(t, clients[who], tc.id, tc.ns, tc.token)
				got[who] = code
				want := tc.want
				if who == "picket" && tc.picketWant != nil {
					want = *tc.picketWant
				}
				if code != want {
					t.Errorf("%s Sentry: %s %q, want %s", who, code, msg, want)
				}
				if code == codes.OK && id != tc.wantID {
					t.Errorf("%s Sentry issued %s, want %s", who, id, tc.wantID)
				}
				if code != codes.OK {
					t.Logf("%s: %s %q", who, code, msg)
				}
			}
			t.Logf("%-52s %-18s %-18s", tc.name, got["dapr"], got["picket"])
		})
	}
}

// TestDaprdKubernetesTokenWithPicketSentry: daprd's identity client in Kubernetes mode (token
// from DAPR_SENTRY_TOKEN_FILE, sent with the KUBERNETES validator) gets its identity from
// picket sentry, and one for an app id its pod does not carry is refused.
func TestDaprdKubernetesTokenWithPicketSentry(t *testing.T) {
	user := "system:serviceaccount:" + kubeAppNS + ":" + kubeSA
	token := fakeJWT("daprd", "mypod")
	kc := startKubeCluster(t, map[string]kubeToken{
		token: {user: user, pod: "mypod", audience: "spiffe://" + kubeTD + "/ns/" + kubeSentryNS + "/dapr-sentry"},
	}, []corev1.Pod{kubePod(kubeAppNS, "mypod", kubeSA, map[string]string{"dapr.io/app-id": "myappid"})})
	sentry := startPicketKubeSentry(t, kc)
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, []byte(token), 0o600)
	t.Setenv("DAPR_SENTRY_TOKEN_FILE", tokenFile)
	t.Setenv("DAPR_UNSAFE_SKIP_CONTAINER_UID_GID_CHECK", "true")
	captureDaprdLogs(t)

	run := func(appID string, timeout time.Duration) (*daprd, error) {
		return startDaprd(t, daprdOptions{appID: appID, sentry: sentry.address(), cpTrustDomain: kubeTD,
			anchors: kc.bundle.X509.TrustAnchors, timeout: timeout,
			kubernetes: true, cpNamespace: kubeSentryNS, requestNamespace: kubeAppNS})
	}
	d, err := run("myappid", 60*time.Second)
	if err != nil {
		t.Fatalf("daprd identity client got no certificate from picket sentry: %v", err)
	}
	if got := d.svid(t).ID.String(); got != "spiffe://public/ns/mynamespace/myappid" {
		t.Fatalf("daprd holds %s", got)
	}
	sentry.p.waitLog(t, `signed"? spiffe_id=spiffe://public/ns/mynamespace/myappid .*validator=kubernetes`, 30*time.Second, 0)

	if _, err := run("notmyappid", 10*time.Second); err == nil {
		t.Fatal("picket sentry issued notmyappid to mypod's token")
	}
	sentry.p.waitLog(t, `sign refused"? status=7 (field_)?app_id="?notmyappid"?.*app-id mismatch`, 30*time.Second, 0)
}

// TestKubernetesTrustBundleClearAndRestart: the seeds' procedure in Kubernetes. With an empty
// dapr-trust-bundle Secret, picket sentry generates a root and issuer and writes them to the
// Secret and the ConfigMap; started again it reads them back (same root, no update) and issues
// under them; and Dapr's own Sentry, started on the same objects, takes them as its own.
func TestKubernetesTrustBundleClearAndRestart(t *testing.T) {
	user := "system:serviceaccount:" + kubeAppNS + ":" + kubeSA
	token := fakeJWT("good", "mypod")
	store := newTrustBundleStore(map[string][]byte{"ca.crt": {}, "issuer.crt": {}, "issuer.key": {}})
	kc := startKubeClusterWith(t, map[string]kubeToken{
		token: {user: user, pod: "mypod", audience: "dapr.io/sentry"},
	}, []corev1.Pod{kubePod(kubeAppNS, "mypod", kubeSA, map[string]string{"dapr.io/app-id": "myappid"})}, store)

	first := startPicketKubeSentry(t, kc)
	first.p.waitLog(t, `generated a new root and issuer.*stored="Secret and ConfigMap sentrynamespace/dapr-trust-bundle"`, 30*time.Second, 0)
	secret, cm, updates := store.snapshot()
	if updates != 2 {
		t.Fatalf("%d updates of the Secret and the ConfigMap, want 2", updates)
	}
	roots := pemCerts(t, secret.Data["ca.crt"])
	if len(roots) != 1 || len(pemCerts(t, secret.Data["issuer.crt"])) != 1 {
		t.Fatalf("Secret holds %d roots and %d issuer certificates", len(roots), len(pemCerts(t, secret.Data["issuer.crt"])))
	}
	if blk, _ := pem.Decode(secret.Data["issuer.key"]); blk == nil || !strings.Contains(blk.Type, "PRIVATE KEY") {
		t.Fatalf("Secret's issuer.key is not a PEM private key")
	}
	if cm.Data["ca.crt"] != string(secret.Data["ca.crt"]) {
		t.Fatalf("ConfigMap ca.crt differs from the Secret's")
	}
	if secret.Labels["app"] != "dapr-sentry" {
		t.Fatalf("the update dropped the Secret's labels: %v", secret.Labels)
	}
	if code, msg, id := signAs(t, signClient(t, first, secret.Data["ca.crt"]), "myappid", kubeAppNS, token); code != codes.OK {
		t.Fatalf("first start: %s %q", code, msg)
	} else {
		t.Logf("first start issued %s", id)
	}
	first.p.stop()

	second := startPicketKubeSentry(t, kc)
	second.p.waitLog(t, `credentials read from Secret sentrynamespace/dapr-trust-bundle`, 30*time.Second, 0)
	if code, msg, _ := signAs(t, signClient(t, second, secret.Data["ca.crt"]), "myappid", kubeAppNS, token); code != codes.OK {
		t.Fatalf("second start, under the stored root: %s %q", code, msg)
	}
	if s2, _, u2 := store.snapshot(); u2 != updates || string(s2.Data["ca.crt"]) != string(secret.Data["ca.crt"]) {
		t.Fatalf("the second start changed the Secret (%d updates)", u2-updates)
	}
	second.p.stop()

	dapr := startDaprKubeSentry(t, kc)
	dapr.p.waitLog(t, `Root and issuer certs found: using credentials from store`, 30*time.Second, 0)
	if code, msg, _ := signAs(t, signClient(t, dapr, secret.Data["ca.crt"]), "myappid", kubeAppNS, token); code != codes.OK {
		t.Fatalf("Dapr's Sentry on picket's stored credentials: %s %q", code, msg)
	}
	if _, _, u3 := store.snapshot(); u3 != updates {
		t.Fatalf("Dapr's Sentry rewrote the bundle picket stored")
	}
}

// TestKubernetesValidatorDoesNotBlock: while one call waits for a slow TokenReview, picket
// sentry answers /healthz and completes another call: the API is asked on the event loop, the
// waiting call holds nothing but its own deferred reply.
func TestKubernetesValidatorDoesNotBlock(t *testing.T) {
	user := "system:serviceaccount:" + kubeAppNS + ":" + kubeSA
	slow, fast := fakeJWT("slow", "mypod"), fakeJWT("fast", "mypod")
	kc := startKubeCluster(t, map[string]kubeToken{
		slow: {user: user, pod: "mypod", audience: "dapr.io/sentry", delay: 4 * time.Second},
		fast: {user: user, pod: "mypod", audience: "dapr.io/sentry"},
	}, []corev1.Pod{kubePod(kubeAppNS, "mypod", kubeSA, map[string]string{"dapr.io/app-id": "myappid"})})
	sentry := startPicketKubeSentry(t, kc)
	client := signClient(t, sentry, kc.bundle.X509.TrustAnchors)

	slowDone := make(chan codes.Code, 1)
	go func() {
		code, _, _ := signAs(t, client, "myappid", kubeAppNS, slow)
		slowDone <- code
	}()
	// The slow review has reached the API server: picket sentry is waiting on it.
	waitFor(t, 10*time.Second, "the slow TokenReview to be asked", func() bool {
		return kc.reviewsStarted(slow) > 0
	})
	start := time.Now()
	if httpStatus(sentry.healthzPort, "/healthz") != 200 {
		t.Fatal("/healthz not 200 while a call waits for the API server")
	}
	if code, msg, _ := signAs(t, client, "myappid", kubeAppNS, fast); code != codes.OK {
		t.Fatalf("second call: %s %q", code, msg)
	}
	select {
	case code := <-slowDone:
		t.Fatalf("the slow call (%s) finished before the fast one: calls were serialised", code)
	default:
	}
	t.Logf("fast call and /healthz answered in %v while the slow review was pending", time.Since(start))
	if code := <-slowDone; code != codes.OK {
		t.Fatalf("slow call: %s", code)
	}
}
