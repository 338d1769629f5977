// Package grpcunix connects to a container runtime's gRPC API on its unix
// socket: containerd's, and the CRI's of any runtime that serves it. It is
// the gRPC sources' shared plumbing; what to call, and how to reconnect, stay
// with each source (internal/source keeps it connected with back-off).
package grpcunix

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// dialTimeout bounds the probe of the socket, so that a runtime that accepts
// no connection cannot hang a source.
const dialTimeout = 30 * time.Second

// maxRecvMsgSize is the largest answer accepted: a runtime's list of
// thousands of tasks or containers is larger than gRPC's default of 4 MiB.
const maxRecvMsgSize = 16 << 20

// Dial returns a client connection to the gRPC server on the unix socket at
// path. It connects once first, because gRPC would retry a missing or
// forbidden socket until its own timeout and then say only "timeout": the
// error says why instead ("dial unix PATH: connect: no such file or
// directory", or "permission denied"). The connection is without TLS, as a
// runtime's local socket is served.
func Dial(ctx context.Context, path string) (*grpc.ClientConn, error) {
	probe, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	probe.Close()
	cc, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)))
	if err != nil {
		return nil, fmt.Errorf("gRPC client for %q: %w", path, err)
	}
	return cc, nil
}
