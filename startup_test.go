package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/tictac/tictac/internal/testenv"
)

// BenchmarkStartup times the built binary from exec to its first served page,
// embedded store in a fresh directory, as a player's first request would see
// it. Shutting it down is not timed.
//
//	go test -run '^$' -bench Startup -benchtime 20x .
func BenchmarkStartup(b *testing.B) {
	bin := binary(b)
	client := &http.Client{Timeout: time.Second}
	for b.Loop() {
		b.StopTimer()
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
		cmd := exec.Command(bin, "-addr", addr, "-data", b.TempDir(), "-log-level", "warn")
		b.StartTimer()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if resp, err := client.Get("http://" + addr + "/"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				b.Fatal("no page within 10s")
			}
		}
		b.StopTimer()
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("tictac exited with %v", err)
		}
		b.StartTimer()
	}
}
