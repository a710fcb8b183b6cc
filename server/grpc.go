package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/tessera/api/layout"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stele-dev/stele/internal/store"
	"github.com/stele-dev/stele/leaf"
	"github.com/stele-dev/stele/payload"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// maxReceiptWait bounds GetReceipt when the caller set no deadline.
const maxReceiptWait = 30 * time.Second

// streamParallelism is how many batches of one AppendStream are admitted at
// once.
const streamParallelism = 8

// RegisterGRPC registers the LogService on g.
// Append and AppendStream take the admission pipeline (admission.go), and
// every request is decoded strictly; register it on a server built with
// Server.GRPCOptions, whose tap authenticates callers before their
// requests are read.
func (s *Server) RegisterGRPC(g grpc.ServiceRegistrar) {
	l := &logService{s: s}
	g.RegisterService(s.readOnlyDesc(l.serviceDesc()), l)
}

type logService struct {
	stelev1.UnimplementedLogServiceServer
	s *Server
}

func (l *logService) latest() (*published, error) {
	cp := l.s.cps.latest()
	if cp == nil {
		return nil, status.Error(codes.Unavailable, "no checkpoint has been published yet; retry in a second")
	}
	return cp, nil
}

func (l *logService) GetCheckpoint(ctx context.Context, _ *stelev1.GetCheckpointRequest) (*stelev1.GetCheckpointResponse, error) {
	cp, err := l.latest()
	if err != nil {
		return nil, err
	}
	return &stelev1.GetCheckpointResponse{Checkpoint: cp.raw, Size: cp.size}, nil
}

// treeSize resolves a requested tree size against the latest checkpoint,
// which it returns too: proofs are checked against it before they leave.
func (l *logService) treeSize(want uint64) (uint64, *published, error) {
	cp, err := l.latest()
	if err != nil {
		return 0, nil, err
	}
	if want == 0 {
		return cp.size, cp, nil
	}
	if want > cp.size {
		return 0, nil, status.Errorf(codes.OutOfRange, "tree size %d is past the latest checkpoint's size %d", want, cp.size)
	}
	return want, cp, nil
}

// inclusion builds the inclusion proof of idx in a tree of size (≤ cp.size)
// and checks it against the signed checkpoint cp before it is handed out.
// leafHash is the leaf's hash where the caller has read the leaf, else nil.
func (s *Server) inclusion(ctx context.Context, idx, size uint64, cp *published, leafHash []byte) ([][]byte, error) {
	h, err := s.reader.inclusionProof(ctx, idx, size, cp.size)
	if err == nil {
		err = s.reader.checkInclusion(ctx, idx, size, leafHash, h, cp)
	}
	if err != nil {
		return nil, s.checked(fmt.Sprintf("inclusion proof for %d in %d", idx, size), err)
	}
	return h, nil
}

func (l *logService) GetInclusionProof(ctx context.Context, req *stelev1.GetInclusionProofRequest) (*stelev1.GetInclusionProofResponse, error) {
	size, cp, err := l.treeSize(req.TreeSize)
	if err != nil {
		return nil, err
	}
	var idx uint64
	switch x := req.Leaf.(type) {
	case *stelev1.GetInclusionProofRequest_Index:
		idx = x.Index
	case *stelev1.GetInclusionProofRequest_LeafHash:
		if len(x.LeafHash) != 32 {
			return nil, status.Errorf(codes.InvalidArgument, "leaf_hash is %d bytes, want 32", len(x.LeafHash))
		}
		i, ok, err := l.s.store.LookupLeafHash([32]byte(x.LeafHash))
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "leaf hash index: %v", err)
		}
		if !ok {
			return nil, status.Errorf(codes.NotFound, "no entry has leaf hash %x", x.LeafHash)
		}
		idx = i
	default:
		return nil, status.Error(codes.InvalidArgument, "name the leaf by index or leaf_hash")
	}
	if err := inTree(idx, size); err != nil {
		return nil, err
	}
	return l.inclusionProof(ctx, idx, size, cp)
}

// inTree refuses an index that is not in a tree of size.
func inTree(idx, size uint64) error {
	if idx >= size {
		return status.Errorf(codes.OutOfRange, "index %d is not in a tree of size %d", idx, size)
	}
	return nil
}

// inclusionProof is GetInclusionProof's answer for idx in a tree of size
// (resolved by treeSize, idx checked by inTree), shared by
// GetInclusionProofs.
func (l *logService) inclusionProof(ctx context.Context, idx, size uint64, cp *published) (*stelev1.GetInclusionProofResponse, error) {
	h, err := l.s.inclusion(ctx, idx, size, cp, nil)
	if err != nil {
		return nil, err
	}
	return &stelev1.GetInclusionProofResponse{Index: idx, TreeSize: size, Hashes: h}, nil
}

// MaxInclusionProofsPerCall is the most indexes one GetInclusionProofs call
// may name. 1,000 proofs of a 2^40-entry tree are about 1.4 MB, well under
// gRPC's default 4 MiB message limit.
const MaxInclusionProofsPerCall = 1000

func (l *logService) GetInclusionProofs(ctx context.Context, req *stelev1.GetInclusionProofsRequest) (*stelev1.GetInclusionProofsResponse, error) {
	n := len(req.Indexes)
	if n == 0 {
		return nil, status.Error(codes.InvalidArgument, "the request names no indexes")
	}
	if n > MaxInclusionProofsPerCall {
		return nil, status.Errorf(codes.InvalidArgument, "the request names %d indexes, over the limit of %d per call: split it into calls of at most %d", n, MaxInclusionProofsPerCall, MaxInclusionProofsPerCall)
	}
	size, cp, err := l.treeSize(req.TreeSize)
	if err != nil {
		return nil, err
	}
	// Every index is checked before any proof is built: one out of range
	// fails the call without wasted work.
	for _, idx := range req.Indexes {
		if err := inTree(idx, size); err != nil {
			return nil, err
		}
	}
	resp := &stelev1.GetInclusionProofsResponse{TreeSize: size, Proofs: make([]*stelev1.GetInclusionProofResponse, n)}
	for i, idx := range req.Indexes {
		if err := ctx.Err(); err != nil {
			return nil, status.FromContextError(err).Err()
		}
		p, err := l.inclusionProof(ctx, idx, size, cp)
		if err != nil {
			return nil, err
		}
		resp.Proofs[i] = p
	}
	return resp, nil
}

func (l *logService) GetConsistencyProof(ctx context.Context, req *stelev1.GetConsistencyProofRequest) (*stelev1.GetConsistencyProofResponse, error) {
	to, cp, err := l.treeSize(req.ToSize)
	if err != nil {
		return nil, err
	}
	if req.FromSize > to {
		return nil, status.Errorf(codes.InvalidArgument, "from_size %d is larger than to_size %d", req.FromSize, to)
	}
	h, err := l.s.reader.consistencyProof(ctx, req.FromSize, to, cp.size)
	if err == nil {
		err = l.s.reader.checkConsistency(ctx, req.FromSize, to, h, cp)
	}
	if err != nil {
		return nil, l.s.checked(fmt.Sprintf("consistency proof %d..%d", req.FromSize, to), err)
	}
	return &stelev1.GetConsistencyProofResponse{FromSize: req.FromSize, ToSize: to, Hashes: h}, nil
}

func (l *logService) GetEntries(req *stelev1.GetEntriesRequest, stream grpc.ServerStreamingServer[stelev1.GetEntriesResponse]) error {
	cp, err := l.latest()
	if err != nil {
		return err
	}
	if req.Start >= cp.size {
		return status.Errorf(codes.OutOfRange, "start %d is not below the latest checkpoint's size %d", req.Start, cp.size)
	}
	end := cp.size
	if req.Count > 0 && req.Count < cp.size-req.Start {
		end = req.Start + req.Count
	}
	var chunk *stelev1.GetEntriesResponse
	err = l.s.forEachLeaf(stream.Context(), req.Start, end, cp.size, func(idx uint64, d []byte) error {
		if chunk == nil {
			chunk = &stelev1.GetEntriesResponse{Start: idx}
		}
		chunk.Leaves = append(chunk.Leaves, d)
		if len(chunk.Leaves) == layout.EntryBundleWidth || idx+1 == end {
			if err := stream.Send(chunk); err != nil {
				return err
			}
			chunk = nil
		}
		return nil
	})
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Errorf(codes.Internal, "reading entries: %v", err)
	}
	return nil
}

// receipt builds a C2SP tlog-proof for idx under checkpoint cp.
func (s *Server) receipt(ctx context.Context, idx uint64, cp *published) ([]byte, []byte, error) {
	lf, err := s.readLeaf(ctx, idx, cp.size)
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "reading leaf %d: %v", idx, err)
	}
	h, err := s.inclusion(ctx, idx, cp.size, cp, leafHashOf(lf))
	if err != nil {
		return nil, nil, err
	}
	// The leaf rides in the proof's extra line, so a receipt is one
	// self-contained C2SP tlog-proof file.
	p := proof.TLogProof{Index: idx, Checkpoint: cp.raw, ExtraData: lf}
	for _, x := range h {
		p.Hashes = append(p.Hashes, [32]byte(x))
	}
	return p.Marshal(), lf, nil
}

// awaitCovered waits, bounded by ctx (or maxReceiptWait without a deadline),
// until a published checkpoint covers the entry at idx.
func (l *logService) awaitCovered(ctx context.Context, idx uint64) (*published, error) {
	size, err := l.s.reader.IntegratedSize(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading log size: %v", err)
	}
	if idx >= size {
		// Sequenced but not integrated yet (on aws, up to about a second):
		// wait for it like for its checkpoint.
		if next, err := l.s.reader.NextIndex(ctx); err != nil || idx >= next {
			return nil, status.Errorf(codes.NotFound, "no entry at index %d: the log holds %d entries", idx, size)
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxReceiptWait)
		defer cancel()
	}
	cp, err := l.s.cps.waitFor(ctx, idx+1)
	if err != nil {
		return nil, status.Errorf(codes.DeadlineExceeded, "entry %d is not yet covered by a published checkpoint: %v", idx, err)
	}
	return cp, nil
}

func (l *logService) GetReceipt(ctx context.Context, req *stelev1.GetReceiptRequest) (*stelev1.GetReceiptResponse, error) {
	cp, err := l.awaitCovered(ctx, req.Index)
	if err != nil {
		return nil, err
	}
	p, lf, err := l.s.receipt(ctx, req.Index, cp)
	if err != nil {
		return nil, err
	}
	return &stelev1.GetReceiptResponse{Proof: p, Leaf: lf}, nil
}

func (l *logService) GetEvent(ctx context.Context, req *stelev1.GetEventRequest) (*stelev1.GetEventResponse, error) {
	cp, err := l.awaitCovered(ctx, req.Index)
	if err != nil {
		return nil, err
	}
	p, lf, err := l.s.receipt(ctx, req.Index, cp)
	if err != nil {
		return nil, err
	}
	return l.s.event(ctx, req.Index, lf, p)
}

// event is GetEvent's answer for entry idx, whose leaf is lf, with proof p:
// the caller's read grant on the leaf's source is checked, then the payload
// (or, erased, its tombstone) read from the store. GetEvents answers with
// eventOf, reading the payloads of a run of entries at once.
func (s *Server) event(ctx context.Context, idx uint64, lf, p []byte) (*stelev1.GetEventResponse, error) {
	parsed, err := s.readableLeaf(ctx, idx, lf)
	if err != nil {
		return nil, err
	}
	salt, data, err := s.store.GetPayload(payloadRef(parsed))
	return s.eventOf(idx, lf, parsed, p, salt, data, err)
}

// readableLeaf parses entry idx's leaf lf and checks the caller may read
// its payload.
func (s *Server) readableLeaf(ctx context.Context, idx uint64, lf []byte) (*leaf.Leaf, error) {
	parsed, err := leaf.Unmarshal(lf)
	if err != nil {
		return nil, status.Errorf(codes.DataLoss, "leaf %d does not parse: %v", idx, err)
	}
	if err := s.mayRead(ctx, parsed.Source); err != nil {
		return nil, err
	}
	return parsed, nil
}

// eventOf is the answer for entry idx (leaf lf, parsed, proof p) given
// what the store answered for its payload.
func (s *Server) eventOf(idx uint64, lf []byte, parsed *leaf.Leaf, p, salt, data []byte, err error) (*stelev1.GetEventResponse, error) {
	if errors.Is(err, store.ErrErased) {
		tb, err := s.store.Tombstone(parsed.PayloadDigest)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "reading tombstone: %v", err)
		}
		t, err := parseTombstone(tb)
		if err != nil {
			return nil, status.Errorf(codes.DataLoss, "entry %d: %v", idx, err)
		}
		return &stelev1.GetEventResponse{Index: idx, Leaf: lf, Proof: p, Tombstone: t.proto()}, nil
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.DataLoss, "the payload of entry %d (digest %x) is missing from the store", idx, parsed.PayloadDigest)
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading payload: %v", err)
	}
	// data is the store's copy, ours: the decoded fields alias it.
	pl, err := payload.UnmarshalAliased(data)
	if err != nil {
		return nil, status.Errorf(codes.DataLoss, "the payload of entry %d does not parse: %v", idx, err)
	}
	return &stelev1.GetEventResponse{
		Index: idx, Leaf: lf, Payload: data, Salt: salt,
		Record: pl.Record, Format: pl.Format, Normalized: pl.Normalized, Proof: p,
	}, nil
}

// GRPCServerOptions are the options stele-server runs its gRPC server with:
// room for large batches and flow-control windows sized for them.
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(64 << 20),
		grpc.InitialWindowSize(4 << 20),
		grpc.InitialConnWindowSize(16 << 20),
	}
}
