package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"

	"github.com/stele-dev/stele/client"
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// readDuration is how long each read measurement runs.
const readDuration = 3 * time.Second

// readSide measures verified inclusion proofs/s and entry-bundle MB/s on
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

	var proofs atomic.Int64
	var firstErr error
	srvCPU0, err := procCPU(srv.pid())
	if err != nil {
		return Read{}, err
	}
	cliCPU0 := selfCPU()
	var mu sync.Mutex
	deadline := time.Now().Add(readDuration)
	var wg sync.WaitGroup
	for range cfg.Producers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				idx := rand.Uint64N(cp.Size)
				p, err := c.Log.GetInclusionProof(ctx, &stelev1.GetInclusionProofRequest{Leaf: &stelev1.GetInclusionProofRequest_Index{Index: idx}, TreeSize: cp.Size})
				if err == nil {
					err = proof.VerifyInclusion(rfc6962.DefaultHasher, idx, cp.Size, hashes[idx], p.Hashes, cp.Root[:])
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("inclusion proof for %d: %w", idx, err)
					}
					mu.Unlock()
					return
				}
				proofs.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return Read{}, firstErr
	}
	proofRate := float64(proofs.Load()) / readDuration.Seconds()
	srvCPU1, err := procCPU(srv.pid())
	if err != nil {
		return Read{}, err
	}
	n := float64(max(proofs.Load(), 1))
	srvPerProof, cliPerProof := (srvCPU1-srvCPU0)*1e6/n, (selfCPU()-cliCPU0)*1e6/n

	// Entry bundles over HTTP, uncompressed, round-robin over the log.
	bundles := (cp.Size + layout.EntryBundleWidth - 1) / layout.EntryBundleWidth
	var bytesRead atomic.Int64
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Producers, DisableCompression: true}}
	deadline = time.Now().Add(readDuration)
	for w := range cfg.Producers {
		wg.Go(func() {
			for i := uint64(w); time.Now().Before(deadline); i += uint64(cfg.Producers) {
				b := i % bundles
				url := fmt.Sprintf("http://%s/%s", srv.httpAddr, layout.EntriesPath(b, layout.PartialTileSize(0, b, cp.Size)))
				resp, err := hc.Get(url)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("GET %s: %s", url, resp.Status)
					}
					mu.Unlock()
					return
				}
				bytesRead.Add(n)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return Read{}, firstErr
	}
	return Read{
		InclusionProofsPerSec: proofRate,
		ServerCPUPerProofUS:   srvPerProof,
		ClientCPUPerProofUS:   cliPerProof,
		EntriesMBPerSec:       float64(bytesRead.Load()) / 1e6 / readDuration.Seconds(),
	}, nil
}
