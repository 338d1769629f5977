package store

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkApply applies a realistic mix of events (start, OOM kill, exit)
// to a store of 1,000 containers.
func BenchmarkApply(b *testing.B) {
	s := New(time.Minute)
	const n = 1000
	keys := make([]string, n)
	for i := range keys {
		m := Meta{Runtime: "docker", ID: fmt.Sprintf("%064x", i), Name: fmt.Sprint("c", i)}
		keys[i] = m.Key()
		s.Apply(Observed{Meta: m, State: State{StartedAt: t0, Running: true}})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := keys[i%n]
		when := t0.Add(time.Duration(i) * time.Second)
		switch i % 3 {
		case 0:
			s.Apply(OOMKilled{Key: k, At: when})
		case 1:
			s.Apply(Exited{Key: k, At: when, Code: 137})
		default:
			s.Apply(Started{Key: k, At: when})
		}
	}
}
