package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// frame is one gRPC message, passed through undecoded.
type frame struct{ data []byte }

// rawCodec lets the proxy forward any method's messages without knowing
// their types.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T is not a frame", v)
	}
	return f.data, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("rawCodec: %T is not a frame", v)
	}
	f.data = append(f.data[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" } // what the client asked for; bytes pass through

// upstreamCodec is rawCodec towards the runtime, with no content subtype:
// CRI-O serves gRPC beside HTTP on its socket and tells them apart by the
// content type "application/grpc" exactly; "application/grpc+proto" gets
// the connection reset.
type upstreamCodec struct{ rawCodec }

func (upstreamCodec) Name() string { return "" }

// grpcRecorder sits on a unix socket between the exporter and containerd,
// forwards every call, and records each method's full name.
type grpcRecorder struct {
	mu      sync.Mutex
	methods []string
}

func (r *grpcRecorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.methods)
}

func startGRPCRecorder(t *testing.T, upstream string) (*grpcRecorder, string) {
	t.Helper()
	up, err := grpc.NewClient("unix://"+upstream, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	r := &grpcRecorder{}
	srv := grpc.NewServer(
		grpc.ForceServerCodec(rawCodec{}),
		grpc.UnknownServiceHandler(func(_ any, in grpc.ServerStream) error {
			method, _ := grpc.MethodFromServerStream(in)
			r.mu.Lock()
			r.methods = append(r.methods, method)
			r.mu.Unlock()
			md, _ := metadata.FromIncomingContext(in.Context()) // containerd's namespace travels here

			ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(in.Context(), md))
			defer cancel()
			out, err := up.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method,
				grpc.ForceCodec(upstreamCodec{}))
			if err != nil {
				return err
			}
			go func() { // client to containerd
				for {
					f := &frame{}
					if err := in.RecvMsg(f); err != nil {
						_ = out.CloseSend()
						return
					}
					if err := out.SendMsg(f); err != nil {
						return
					}
				}
			}()
			if h, err := out.Header(); err == nil {
				// CRI-O's answer carries content-type, which this
				// server sets itself: sent twice, it breaks the stream.
				delete(h, "content-type")
				_ = in.SendHeader(h)
			}
			for { // containerd to client
				f := &frame{}
				if err := out.RecvMsg(f); err != nil {
					in.SetTrailer(out.Trailer())
					if errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
				if err := in.SendMsg(f); err != nil {
					return err
				}
			}
		}))
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Stop()
		_ = up.Close()
	})
	return r, sock
}

// The containerd socket is root on the host too: prove the containerd
// source only ever reads. Every gRPC call it makes while containers of both
// kinds (plain containerd, and Kubernetes' through the CRI plugin) start,
// are OOM-killed, exit, and are removed goes through a recording proxy.
func TestContainerdSourceOnlyReads(t *testing.T) {
	t.Parallel()
	rec, sock := startGRPCRecorder(t, containerdAddress(t))
	e := startExporter(t, "--containerd.address="+sock, "--no-docker") // the kernel reader on: runtime oom events can outnumber kills

	c := containerdClient(t)
	id := "ro" + randomID(4)
	task := c.run(t, "e2e-readonly", id, "exec "+oomOnce)
	waitTaskExit(t, "e2e-readonly", task, 137)
	e.waitContainerdCounts(t, id, counts{OOMs: 1, Exited: true, ExitCode: 137})

	cri := criClient(t)
	p := runPod(t, cri, "readonly", "web-0")
	worker := p.start(t, criContainer{name: "app", script: oomOnce + "; exit 3"})
	p.waitExited(t, worker, 3)
	e.waitContainerdCounts(t, worker, counts{OOMs: 1, Exited: true, ExitCode: 3})
	// A second exporter lists what is there now: the CRI plugin has deleted
	// the exited Kubernetes container's task, so its state comes from the
	// CRI's ContainerStatus.
	again := startExporter(t, "--containerd.address="+sock, "--no-docker")
	again.waitContainerdCounts(t, worker, counts{OOMs: 1, Exited: true, ExitCode: 3})

	// Reads only: the method names of containerd's and the CRI's services
	// that change nothing. Anything else fails the test, also a new read,
	// which is then added here on purpose.
	reads := map[string]bool{
		"/containerd.services.version.v1.Version/Version":          true,
		"/containerd.services.events.v1.Events/Subscribe":          true,
		"/containerd.services.namespaces.v1.Namespaces/List":       true,
		"/containerd.services.namespaces.v1.Namespaces/Get":        true,
		"/containerd.services.containers.v1.Containers/List":       true,
		"/containerd.services.containers.v1.Containers/ListStream": true,
		"/containerd.services.containers.v1.Containers/Get":        true,
		"/containerd.services.tasks.v1.Tasks/List":                 true,
		"/containerd.services.tasks.v1.Tasks/Get":                  true,
		"/runtime.v1.RuntimeService/Version":                       true,
		"/runtime.v1.RuntimeService/ContainerStatus":               true,
		"/runtime.v1.RuntimeService/ListContainers":                true,
	}
	methods := rec.seen()
	counted := map[string]int{}
	for _, m := range methods {
		counted[m]++
		if !reads[m] {
			t.Errorf("call that is not a known read: %s", m)
		}
	}
	for _, must := range []string{"Events/Subscribe", "Tasks/List", "RuntimeService/ContainerStatus"} {
		if !slices.ContainsFunc(methods, func(m string) bool { return strings.HasSuffix(m, must) }) {
			t.Errorf("no %s went through the proxy: the exporter did not use it (calls: %v)", must, counted)
		}
	}
	t.Logf("%d calls, all reads: %v", len(methods), counted)
}
