package grpcunix

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	versionapi "github.com/containerd/containerd/api/services/version/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// versionServer answers with a version string of the given size.
type versionServer struct {
	versionapi.UnimplementedVersionServer
	size int
}

func (v versionServer) Version(context.Context, *emptypb.Empty) (*versionapi.VersionResponse, error) {
	return &versionapi.VersionResponse{Version: strings.Repeat("v", v.size)}, nil
}

// An answer larger than gRPC's default limit of 4 MiB, as a runtime's list of
// thousands of tasks can be, arrives whole over the socket.
func TestDialReceivesLargeAnswers(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "runtime.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	const size = 6 << 20
	versionapi.RegisterVersionServer(srv, versionServer{size: size})
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cc, err := Dial(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	res, err := versionapi.NewVersionClient(cc).Version(ctx, &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.GetVersion()) != size {
		t.Fatalf("version of %d bytes, want %d", len(res.GetVersion()), size)
	}
}

// A socket that is not there is said at once, with its path and why.
func TestDialSaysWhyASocketIsMissing(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "missing.sock")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := Dial(ctx, sock)
	if err == nil || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "no such file or directory") {
		t.Fatalf("Dial(%s): %v, want an error naming it and saying it is missing", sock, err)
	}
}
