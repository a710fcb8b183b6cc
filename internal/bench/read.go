package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sync/errgroup"

	"github.com/stele-dev/stele/client"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// readDuration is how long each read measurement runs.
const readDuration = 3 * time.Second

// readSide measures verified inclusion proofs/s (one per call, and
// ProofsPerCall per GetInclusionProofs call) and entry-bundle MB/s on
// the server's log.
func readSide(ctx context.Context, cfg Config, srv *serverProc) (Read, error) {
	c, err := client.Dial(srv.grpcAddr)
	if err != nil {
		return Read{}, err
	}
	defer c.Close()
	v, err := note.NewVerifier(srv.vkey)
	if err != nil {
		return Read{}, err
	}
	// Wait for a checkpoint covering the whole ingest.
	var cp *client.Checkpoint
	for {
		raw, err := c.Checkpoint(ctx)
		if err != nil {
			return Read{}, err
		}
		if cp, err = client.ParseCheckpoint(raw, v); err != nil {
			return Read{}, err
		}
		if cp.Size >= uint64(cfg.Events) {
			break
		}
		select {
		case <-ctx.Done():
			return Read{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Leaf hashes for the indexes we will ask about.
	leaves, err := c.Log.GetEntries(ctx, &stelev1.GetEntriesRequest{Start: 0, Count: cp.Size})
	if err != nil {
		return Read{}, err
	}
	var hashes [][]byte
	for {
		chunk, err := leaves.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Read{}, err
		}
		for _, l := range chunk.Leaves {
			hashes = append(hashes, rfc6962.DefaultHasher.HashLeaf(l))
		}
	}
	if uint64(len(hashes)) != cp.Size {
		return Read{}, fmt.Errorf("GetEntries gave %d leaves for a tree of %d", len(hashes), cp.Size)
	}

	// One proof per call, as a client checking one event at a time would.
	proofRate, srvPerProof, cliPerProof, err := timedProofs(cfg, srv, func() (int, error) {
		idx := rand.Uint64N(cp.Size)
		p, err := c.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_Index{Index: idx}, TreeSize: cp.Size})
		if err == nil {
			err = proof.VerifyInclusion(rfc6962.DefaultHasher, idx, cp.Size, hashes[idx], p.Hashes, cp.Root[:])
		}
		if err != nil {
			return 0, fmt.Errorf("inclusion proof for %d: %w", idx, err)
		}
		return 1, nil
	})
	if err != nil {
		return Read{}, err
	}
	// ProofsPerCall random indexes per GetInclusionProofs call, as an
	// auditor checking many events would; every proof verified the same way.
	batchRate, srvPerBatched, cliPerBatched, err := timedProofs(cfg, srv, func() (int, error) {
		req := &stelev1.GetInclusionProofsRequest{Indexes: make([]uint64, ProofsPerCall), TreeSize: cp.Size}
		for i := range req.Indexes {
			req.Indexes[i] = rand.Uint64N(cp.Size)
		}
		resp, err := c.Log.GetInclusionProofs(ctx, req)
		if err != nil {
			return 0, fmt.Errorf("inclusion proofs for %d indexes: %w", len(req.Indexes), err)
		}
		if len(resp.Proofs) != len(req.Indexes) || resp.TreeSize != cp.Size {
			return 0, fmt.Errorf("inclusion proofs: %d answers in a tree of %d for %d indexes in %d", len(resp.Proofs), resp.TreeSize, len(req.Indexes), cp.Size)
		}
		for i, p := range resp.Proofs {
			idx := req.Indexes[i]
			if p.Index != idx {
				return 0, fmt.Errorf("inclusion proofs: answer %d is for index %d, asked %d", i, p.Index, idx)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, cp.Size, hashes[idx], p.Hashes, cp.Root[:]); err != nil {
				return 0, fmt.Errorf("inclusion proof for %d (batched): %w", idx, err)
			}
		}
		return len(resp.Proofs), nil
	})
	if err != nil {
		return Read{}, err
	}

	// Entry bundles over HTTP, uncompressed, round-robin over the log.
	bundles := (cp.Size + layout.EntryBundleWidth - 1) / layout.EntryBundleWidth
	var (
		bytesRead atomic.Int64
		g         errgroup.Group
	)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Producers, DisableCompression: true}}
	deadline := time.Now().Add(readDuration)
	for w := range cfg.Producers {
		g.Go(func() error {
			for i := uint64(w); time.Now().Before(deadline); i += uint64(cfg.Producers) {
				b := i % bundles
				url := fmt.Sprintf("http://%s/%s", srv.httpAddr, layout.EntriesPath(b, layout.PartialTileSize(0, b, cp.Size)))
				resp, err := hc.Get(url)
				if err != nil {
					return err
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("GET %s: %s", url, resp.Status)
				}
				bytesRead.Add(n)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Read{}, err
	}
	return Read{
		InclusionProofsPerSec:      proofRate,
		ServerCPUPerProofUS:        srvPerProof,
		ClientCPUPerProofUS:        cliPerProof,
		ProofsPerCall:              ProofsPerCall,
		BatchedProofsPerSec:        batchRate,
		BatchedServerCPUPerProofUS: srvPerBatched,
		BatchedClientCPUPerProofUS: cliPerBatched,
		EntriesMBPerSec:            float64(bytesRead.Load()) / 1e6 / readDuration.Seconds(),
	}, nil
}

// ProofsPerCall is how many random indexes the batched proof measurement
// asks for in each GetInclusionProofs call.
const ProofsPerCall = 100

// timedProofs runs work from cfg.Producers goroutines for readDuration
// (each call fetches and verifies some proofs and says how many) and
// returns proofs/s and the CPU microseconds per proof of the server
// process and of this one. The first error stops it.
func timedProofs(cfg Config, srv *serverProc, work func() (int, error)) (rate, srvUS, cliUS float64, err error) {
	var (
		proofs atomic.Int64
		g      errgroup.Group
	)
	srvCPU0, err := procCPU(srv.pid())
	if err != nil {
		return 0, 0, 0, err
	}
	cliCPU0 := selfCPU()
	start := time.Now()
	deadline := start.Add(readDuration)
	for range cfg.Producers {
		g.Go(func() error {
			for time.Now().Before(deadline) {
				n, err := work()
				if err != nil {
					return err
				}
				proofs.Add(int64(n))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, 0, err
	}
	elapsed := time.Since(start).Seconds()
	srvCPU1, err := procCPU(srv.pid())
	if err != nil {
		return 0, 0, 0, err
	}
	n := float64(max(proofs.Load(), 1))
	return float64(proofs.Load()) / elapsed, (srvCPU1 - srvCPU0) * 1e6 / n, (selfCPU() - cliCPU0) * 1e6 / n, nil
}
