package main

// Stream cells of issue 20 (-stream): N concurrent streams of -chunks chunks
// each through the embedded Bifrost core's ChatCompletionStreamRequest,
// back to back for -seconds, against a running bifrost-mock — the same
// cells, fields and method as core/examples/bench_stream.rs (warm-up of
// min(N, 64) streams, then every stream started runs to its end; CPU is
// the whole process per content chunk; ttfc from starting a stream to its
// first content chunk; gaps between consecutive content chunks).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	bifrost "github.com/maximhq/bifrost/core"
	"github.com/maximhq/bifrost/core/schemas"
)

type streamResult struct {
	Mode         string   `json:"mode"`
	Client       string   `json:"client"`
	Lang         string   `json:"lang"`
	Streams      int      `json:"streams"`
	ChunkDelayMs int      `json:"chunk_delay_ms"`
	Chunks       int      `json:"chunks"`
	ChunksPerS   float64  `json:"chunks_per_s"`
	CPUUsChunk   *float64 `json:"cpu_us_per_chunk"`
	TtfcP50Ms    *float64 `json:"ttfc_p50_ms"`
	GapP99Ms     *float64 `json:"gap_p99_ms"`
	Complete     bool     `json:"complete"`
	FirstError   *string  `json:"first_error"`
	Module       string   `json:"module"`
	GoVersion    string   `json:"go_version"`
}

func streamPrompt(chunks int) string {
	words := make([]string, chunks)
	for i := range words {
		words[i] = fmt.Sprintf("w%03d", i)
	}
	return strings.Join(words, " ")
}

// oneStream runs one stream to its end, appending the time of every chunk
// with content to marks.
func oneStream(client *bifrost.Bifrost, chunks, delayMs int, marks *[]time.Time) error {
	prompt := streamPrompt(chunks)
	req := &schemas.BifrostChatRequest{
		Provider: schemas.OpenAI,
		Model:    fmt.Sprintf("gpt~chunks=%d&chunk_delay_ms=%d", chunks, delayMs),
		Input:    []schemas.ChatMessage{{Role: schemas.ChatMessageRoleUser, Content: &schemas.ChatMessageContent{ContentStr: &prompt}}},
	}
	ctx := schemas.NewBifrostContext(context.Background(), schemas.NoDeadline)
	ch, berr := client.ChatCompletionStreamRequest(ctx, req)
	if berr != nil {
		if berr.Error != nil {
			return fmt.Errorf("%s", berr.Error.Message)
		}
		return fmt.Errorf("bifrost error")
	}
	var failed error
	for c := range ch { // drained to the end even after an error
		if c == nil {
			continue
		}
		if c.BifrostError != nil && failed == nil {
			failed = fmt.Errorf("stream error")
			if c.BifrostError.Error != nil {
				failed = fmt.Errorf("%s", c.BifrostError.Error.Message)
			}
		}
		r := c.BifrostChatResponse
		if r == nil || len(r.Choices) == 0 {
			continue
		}
		s := r.Choices[0].ChatStreamResponseChoice
		if s != nil && s.Delta != nil && s.Delta.Content != nil && *s.Delta.Content != "" {
			*marks = append(*marks, time.Now())
		}
	}
	return failed
}

func at(v []float64, p float64) *float64 {
	if len(v) == 0 {
		return nil
	}
	x := v[int(float64(len(v)-1)*p)]
	return &x
}

func streamCell(client *bifrost.Bifrost, streams, chunks, delayMs int, seconds float64) streamResult {
	var wg sync.WaitGroup
	for i := 0; i < min(streams, 64); i++ { // warm-up, unmeasured
		wg.Add(1)
		go func() { defer wg.Done(); var m []time.Time; _ = oneStream(client, chunks, delayMs, &m) }()
	}
	wg.Wait()
	cpu0 := cpuMicros()
	t0 := time.Now()
	stop := t0.Add(time.Duration(seconds * float64(time.Second)))
	var mu sync.Mutex
	var ttfc, gaps []float64
	var counts []int
	var firstError *string
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lt, lg []float64
			var lc []int
			var le *string
			marks := make([]time.Time, 0, chunks+1)
			for time.Now().Before(stop) {
				marks = marks[:0]
				started := time.Now()
				if err := oneStream(client, chunks, delayMs, &marks); err != nil {
					if le == nil {
						s := err.Error()
						le = &s
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if len(marks) > 0 {
					lt = append(lt, float64(marks[0].Sub(started).Microseconds())/1e3)
				}
				for j := 1; j < len(marks); j++ {
					lg = append(lg, float64(marks[j].Sub(marks[j-1]).Microseconds())/1e3)
				}
				lc = append(lc, len(marks))
			}
			mu.Lock()
			ttfc, gaps, counts = append(ttfc, lt...), append(gaps, lg...), append(counts, lc...)
			if firstError == nil {
				firstError = le
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	wall := time.Since(t0).Seconds()
	cpu := cpuMicros() - cpu0
	n := 0
	complete := true
	for i, c := range counts {
		n += c
		if i > 0 && c != counts[0] {
			complete = false
		}
	}
	sort.Float64s(ttfc)
	sort.Float64s(gaps)
	r := streamResult{
		Mode: "stream", Client: "go: Bifrost core stream", Lang: "Go", Streams: streams, ChunkDelayMs: delayMs,
		Chunks: n, ChunksPerS: float64(n) / wall, TtfcP50Ms: at(ttfc, 0.5), GapP99Ms: at(gaps, 0.99),
		Complete: complete, FirstError: firstError, Module: "github.com/maximhq/bifrost/core@" + moduleVersion(), GoVersion: runtime.Version(),
	}
	if n > 0 {
		v := cpu / float64(n)
		r.CPUUsChunk = &v
	}
	return r
}

// streamMain: the -stream mode (see the top of this file).
func streamMain(base string, streamsList, delays string, chunks int, seconds float64) {
	client := newBifrost(base, 4096)
	defer client.Shutdown()
	enc := json.NewEncoder(os.Stdout)
	for _, ds := range strings.Split(delays, ",") {
		var d int
		if _, err := fmt.Sscan(strings.TrimSpace(ds), &d); err != nil || d < 0 {
			fmt.Fprintf(os.Stderr, "bad -chunk-delay-ms value %q\n", ds)
			os.Exit(2)
		}
		for _, ns := range strings.Split(streamsList, ",") {
			var n int
			if _, err := fmt.Sscan(strings.TrimSpace(ns), &n); err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "bad -streams value %q\n", ns)
				os.Exit(2)
			}
			r := streamCell(client, n, chunks, d, seconds)
			_ = enc.Encode(r)
			cpu := 0.0
			if r.CPUUsChunk != nil {
				cpu = *r.CPUUsChunk
			}
			fmt.Fprintf(os.Stderr, "# %s: %d streams @ %d ms: %.0f chunks/s, %.1f µs CPU/chunk, complete %v\n",
				r.Client, n, d, r.ChunksPerS, cpu, r.Complete)
		}
	}
}
