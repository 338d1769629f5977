package kernel

import (
	"path/filepath"
	"testing"
)

// BenchmarkParseKernelLog reads every record of the kernel logs in testdata
// as the reader reads /dev/kmsg: parse, then pair the lines of each kill
// (victims). The logs are mostly OOM reports, so this is the rate of a
// burst of kills; bytes are the records' sizes.
func BenchmarkParseKernelLog(b *testing.B) {
	files, err := filepath.Glob("testdata/*.kmsg")
	if err != nil || len(files) == 0 {
		b.Fatalf("testdata: %v %v", files, err)
	}
	var recs [][]byte
	size := 0
	for _, f := range files {
		for _, r := range readKmsgFile(b, f) {
			recs = append(recs, r)
			size += len(r)
		}
	}
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			for _, raw := range recs {
				_, _ = ParseRecord(raw)
			}
		}
		b.ReportMetric(float64(len(recs)), "records/op")
	})
	b.Run("victims", func(b *testing.B) {
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			var l oomLog
			for _, raw := range recs {
				if r, err := ParseRecord(raw); err == nil {
					l.add(r)
				}
			}
		}
		b.ReportMetric(float64(len(recs)), "records/op")
	})
}
