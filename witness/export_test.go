package witness

// UseEd25519OnlyForBenchmark makes w cosign with its Ed25519 key alone,
// as before ML-DSA-44, so a benchmark can compare both in one run.
func (w *Witness) UseEd25519OnlyForBenchmark() { w.key.mldsa = nil }
