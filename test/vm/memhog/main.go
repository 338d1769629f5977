// Command memhog makes memory pressure in its cgroup for test/vm: it holds
// -anon MiB of anonymous memory, growing by -grow MiB a second, and reads
// every page of -mapped, a file it maps, again and again until -for has
// passed. With the two above its cgroup's limit, the kernel reclaims the
// mapped pages and the program faults them back in all the time: the
// thrashing that PSI counts as stall. Grown past the limit, it is
// OOM-killed.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	anon := flag.Int("anon", 0, "MiB of anonymous memory held")
	grow := flag.Int("grow", 0, "MiB a second by which the anonymous memory grows")
	mapped := flag.String("mapped", "", "a file whose pages are read again and again")
	d := flag.Duration("for", time.Minute, "how long")
	flag.Parse()
	var file []byte
	if *mapped != "" {
		f, err := os.Open(*mapped)
		if err != nil {
			fail(err)
		}
		st, err := f.Stat()
		if err != nil {
			fail(err)
		}
		if file, err = unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED); err != nil {
			fail(err)
		}
	}
	var held [][]byte
	hold := func(mib int) {
		for range mib {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			held = append(held, b)
		}
	}
	hold(*anon)
	end := time.Now().Add(*d)
	next := time.Now().Add(time.Second)
	var sum byte
	for time.Now().Before(end) {
		for i := 0; i < len(file); i += 4096 {
			sum += file[i]
		}
		if *grow > 0 && time.Now().After(next) {
			hold(*grow)
			next = next.Add(time.Second)
		}
		if len(file) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	fmt.Println("memhog: done", sum, len(held))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "memhog:", err)
	os.Exit(1)
}
