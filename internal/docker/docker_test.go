package docker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/missing-container-metrics/missing-container-metrics/internal/store"
)

// certs writes a CA and, signed by it, a server certificate for 127.0.0.1
// and a client certificate, as DOCKER_CERT_PATH holds them (ca.pem,
// cert.pem, key.pem), and returns the server's TLS config that asks for a
// client certificate of that CA.
func certs(t *testing.T, dir string) *tls.Config {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	caKey := key()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	write("ca.pem", "CERTIFICATE", caDER)
	leaf := func(serial int64, usage x509.ExtKeyUsage) (*ecdsa.PrivateKey, []byte) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "test"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return k, der
	}
	clientKey, clientDER := leaf(2, x509.ExtKeyUsageClientAuth)
	write("cert.pem", "CERTIFICATE", clientDER)
	b, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	write("key.pem", "EC PRIVATE KEY", b)
	serverKey, serverDER := leaf(3, x509.ExtKeyUsageServerAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
}

// A dockerd on tcp:// with TLS, as DOCKER_HOST, DOCKER_TLS_VERIFY and
// DOCKER_CERT_PATH describe it to the docker CLI: the source connects with
// the client certificate and checks the daemon's against the CA.
func TestTCPHostWithTLSFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusForbidden)
			return
		}
		w.Header().Set("Api-Version", client.MaxAPIVersion)
		_, _ = io.WriteString(w, "OK")
	}))
	srv.TLS = certs(t, dir)
	srv.StartTLS()
	defer srv.Close()
	t.Setenv("DOCKER_CERT_PATH", dir)
	t.Setenv("DOCKER_TLS_VERIFY", "1")

	s, err := New("tcp://"+srv.Listener.Addr().String(), store.New(time.Minute), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.cli.Ping(ctx, client.PingOptions{}); err != nil {
		t.Fatalf("ping over TLS with the environment's certificates: %v", err)
	}

	// Verification on: a daemon whose certificate the CA did not sign is refused.
	other := httptest.NewTLSServer(http.NotFoundHandler())
	defer other.Close()
	s, err = New("tcp://"+other.Listener.Addr().String(), store.New(time.Minute), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.cli.Ping(ctx, client.PingOptions{}); err == nil {
		t.Fatal("a daemon with a certificate of another CA was accepted")
	}
}

// followRunning follows a fake dockerd with one running container, and
// returns the fake, the store and the container's id.
func followRunning(t *testing.T) (*fakeDockerd, *store.Store, string) {
	t.Helper()
	f := newFakeDockerd(t)
	const id = "c0ffee"
	started := time.Now()
	f.add(container.InspectResponse{ID: id, Name: "/web", State: &container.State{Status: "running", Running: true,
		StartedAt: started.UTC().Format(time.RFC3339Nano), FinishedAt: "0001-01-01T00:00:00Z"}, Config: &container.Config{}})
	st := store.New(time.Minute)
	s, err := New(f.host(), st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s.Run(ctx)
	return f, st, id
}

// A malformed event is logged, counted, and skipped, and the stream goes on:
// the events after it are applied, on the same stream, not after a
// reconnect.
func TestMalformedEventsAreCountedAndTheStreamGoesOn(t *testing.T) {
	f, st, id := followRunning(t)
	// Events after the listing: dockerd's clock is the host's.
	base := time.Now().Add(time.Hour).UnixNano()
	f.send(event(events.ActionDie, id, base, map[string]string{"exitCode": "not a number"}))
	f.send(`{"Type":"container","Action":"die","Actor":{"ID":"a/b"},"timeNano":1}`) // an id that is no id
	f.send(event(events.ActionDie, id, base+1e9, map[string]string{"exitCode": "3"}))
	var src store.SourceStatus
	waitFor(t, st, id, "2 malformed events and the exit after them applied", func(s store.SourceStatus, c store.Container) bool {
		src = s
		return s.Malformed == 2 && c.Exited && c.ExitCode == 3
	})
	if n := f.streamsOpened(); n != 1 || src.Reconnects != 0 {
		t.Fatalf("%d event streams opened, %d reconnects: the stream did not go on", n, src.Reconnects)
	}
}

// A Docker API that is not the runtime's is refused, and the error says
// what to run instead: Podman's behind --docker.host (podman-docker), or a
// dockerd behind --podman.host.
func TestDockerAPIOfTheOtherEngineIsRefused(t *testing.T) {
	for _, tc := range []struct {
		engine string
		podman bool
		why    string
	}{
		{podmanEngine, false, "is Podman's: follow it with --podman --podman.host=tcp://"},
		{"Engine", true, "is not Podman's"},
	} {
		f := newFakeDockerd(t)
		f.engine = tc.engine
		st := store.New(time.Minute)
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		newSource := New
		if tc.podman {
			newSource = NewPodman
		}
		s, err := newSource(f.host(), st, log)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go s.Run(ctx)
		deadline := time.Now().Add(10 * time.Second)
		for {
			src := st.Sources()[0]
			if !src.Up && strings.Contains(src.LastError, tc.why) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: source %+v, want down saying %q", tc.engine, src, tc.why)
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}
}

// dockerd is asked only for the events that change a count or a name: an
// exec's three events (a health check is an exec) and a health status are
// not sent, so not received, decoded or counted.
func TestOnlyEventsThatCountAreAskedFor(t *testing.T) {
	f, st, id := followRunning(t)
	base := time.Now().Add(time.Hour).UnixNano()
	for i, a := range []events.Action{events.ActionExecCreate, events.ActionExecStart, events.ActionExecDie,
		events.ActionHealthStatusHealthy, events.ActionKill, events.ActionStop} {
		f.send(event(a, id, base+int64(i), map[string]string{"exitCode": "0"}))
	}
	f.send(event(events.ActionDie, id, base+1e9, map[string]string{"exitCode": "3"}))
	waitFor(t, st, id, "the exit applied, and only its event received", func(s store.SourceStatus, c store.Container) bool {
		return c.Exited && c.ExitCode == 3 && s.Events == 1
	})
}

// Every action the source acts on is one it asks dockerd for.
func TestEveryActionTranslatedIsAskedFor(t *testing.T) {
	for _, a := range []events.Action{events.ActionCreate, events.ActionStart, events.ActionRestart, events.ActionStop,
		events.ActionCheckpoint, events.ActionPause, events.ActionUnPause, events.ActionAttach, events.ActionDetach,
		events.ActionResize, events.ActionUpdate, events.ActionRename, events.ActionKill, events.ActionDie,
		events.ActionOOM, events.ActionDestroy, events.ActionRemove, events.ActionCommit, events.ActionTop,
		events.ActionCopy, events.ActionArchivePath, events.ActionExtractToDir, events.ActionExport,
		events.ActionExecCreate, events.ActionExecStart, events.ActionExecDie, events.ActionExecDetach,
		events.ActionHealthStatus, events.ActionHealthStatusHealthy, events.ActionHealthStatusUnhealthy} {
		tr, err := translate(store.RuntimeDocker, event(a, "c0ffee", 1, map[string]string{"exitCode": "0"}))
		acts := err == nil && (tr.event != nil || tr.inspect || tr.refresh || tr.created)
		if asked := slices.Contains(dockerActions, string(a)); acts && !asked && a != actionRemove {
			t.Errorf("%s: translated, but not asked of dockerd", a)
		}
	}
}
