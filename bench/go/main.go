// Bifrost's Go core (github.com/maximhq/bifrost/core, pinned in go.mod)
// driven closed-loop against bifrost-mock, the same way bench/node and
// bench/python drive our gateway: N requests in flight for a fixed time,
// one OpenAI-compatible provider at http://127.0.0.1:PORT with key
// "mock-key", concurrency = N and buffer_size = 4 × N (as in bench/node).
//
//	go run . -base http://127.0.0.1:PORT -conc 64,256 -seconds 3
//
// Prints one JSON object per line and concurrency on stdout:
// {"client":"bifrost-go (maximhq/bifrost/core vX)","inflight":64,"req_s":…,
// "p50_us":…,"p99_us":…,"max_us":…,"cpu_us_per_req":…,"errors":…}
// cpu_us_per_req is the whole Go process (user + system, getrusage).
//
// Stream cells (issue 20), instead of -conc — see stream.go:
//
//	go run . -stream -base http://127.0.0.1:PORT -streams 256,1024 -chunk-delay-ms 0,10 -seconds 3
//
// Open loop (issue 8's fixed-rate scenario), instead of -conc:
//
//	go run . -base http://127.0.0.1:PORT -rates 1000,3000 -latency-ms 50 -seconds 5 -warmup 1
//
// A sender goroutine locked to its OS thread sleeps (nanosleep(2): Go's
// time.Sleep overshoots by ~0.5–1 ms on Linux) until each send time
// t0 + i/rate and starts request i in a new goroutine, whatever the
// completions do. Latency runs from the *scheduled* send time, minus the
// mock's configured latency (-latency-ms): "added" µs, as in
// core/examples/bench_openloop.rs, whose JSON fields this mode prints.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bifrost "github.com/maximhq/bifrost/core"
	"github.com/maximhq/bifrost/core/schemas"
)

type account struct {
	base string
	conc int
}

func (a *account) GetConfiguredProviders() ([]schemas.ModelProvider, error) {
	return []schemas.ModelProvider{schemas.OpenAI}, nil
}

func (a *account) GetKeysForProvider(_ context.Context, p schemas.ModelProvider) ([]schemas.Key, error) {
	if p != schemas.OpenAI {
		return nil, fmt.Errorf("provider %s not configured", p)
	}
	return []schemas.Key{{ID: "mock", Value: *schemas.NewSecretVar("mock-key"), Models: schemas.WhiteList{"*"}, Weight: 1.0}}, nil
}

func (a *account) GetConfigForProvider(p schemas.ModelProvider) (*schemas.ProviderConfig, error) {
	if p != schemas.OpenAI {
		return nil, fmt.Errorf("provider %s not configured", p)
	}
	return &schemas.ProviderConfig{
		NetworkConfig: schemas.NetworkConfig{
			BaseURL:                        a.base,
			DefaultRequestTimeoutInSeconds: 30,
			MaxRetries:                     0,
			AllowPrivateNetwork:            true,
		},
		ConcurrencyAndBufferSize: schemas.ConcurrencyAndBufferSize{Concurrency: a.conc, BufferSize: a.conc * 4},
	}, nil
}

var mockPid = flag.Int("mock-pid", 0, "bifrost-mock's pid: report its CPU per request too")

// mockCPUMicros: user + system CPU of the mock (-mock-pid), from /proc; -1 without.
func mockCPUMicros() float64 {
	if *mockPid == 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", *mockPid))
	if err != nil {
		return -1
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return -1
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) * 1e6 / 100
}

func perRequest(before, after float64, n int64) *float64 {
	if before < 0 || after < 0 || n == 0 {
		return nil
	}
	v := (after - before) / float64(n)
	return &v
}

func cpuMicros() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec)*1e6 + float64(ru.Utime.Usec+ru.Stime.Usec)
}

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/maximhq/bifrost/core" {
				return d.Version
			}
		}
	}
	return "unknown"
}

type result struct {
	Client     string   `json:"client"`
	Inflight   int      `json:"inflight"`
	Seconds    float64  `json:"seconds"`
	Requests   int64    `json:"requests"`
	Errors     int64    `json:"errors"`
	FirstError string   `json:"first_error,omitempty"`
	ReqS       float64  `json:"req_s"`
	P50Us      float64  `json:"p50_us"`
	P99Us      float64  `json:"p99_us"`
	MaxUs      float64  `json:"max_us"`
	CPUUsReq   float64  `json:"cpu_us_per_req"`
	MockCPU    *float64 `json:"mock_cpu_us_per_req,omitempty"`
	GoVersion  string   `json:"go_version"`
	Module     string   `json:"module"`
	GOMAXPROCS int      `json:"gomaxprocs"`
}

// viaBifrost: one ChatCompletionRequest through the embedded Bifrost core.
func viaBifrost(client *bifrost.Bifrost) func() string {
	content := "hello"
	return func() string {
		req := &schemas.BifrostChatRequest{
			Provider: schemas.OpenAI,
			Model:    "gpt-4o",
			Input:    []schemas.ChatMessage{{Role: schemas.ChatMessageRoleUser, Content: &schemas.ChatMessageContent{ContentStr: &content}}},
		}
		ctx := schemas.NewBifrostContext(context.Background(), schemas.NoDeadline)
		resp, berr := client.ChatCompletionRequest(ctx, req)
		if berr != nil {
			if berr.Error != nil {
				return berr.Error.Message
			}
			return "bifrost error"
		}
		if resp == nil || len(resp.Choices) == 0 {
			return "empty response"
		}
		return ""
	}
}

// viaNetHTTP: the Go floor — net/http keep-alive POST of the same JSON,
// response decoded into a minimal struct (the same work a plain client does).
func viaNetHTTP(base string, conc int) func() string {
	tr := &http.Transport{MaxIdleConns: conc, MaxIdleConnsPerHost: conc, MaxConnsPerHost: 0}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}`)
	url := base + "/v1/chat/completions"
	return func() string {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer mock-key")
		resp, err := hc.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return err.Error()
		}
		if resp.StatusCode != 200 {
			return resp.Status
		}
		var out struct {
			Choices []struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(data, &out); err != nil || len(out.Choices) == 0 {
			return "bad response body"
		}
		return ""
	}
}

func run(name string, call func() string, conc int, seconds float64, collect bool) result {
	var n, errs atomic.Int64
	var firstErr atomic.Value
	lats := make([][]int64, conc)
	end := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	cpu0, mock0 := cpuMicros(), mockCPUMicros()
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			local := make([]int64, 0, 4096)
			for time.Now().Before(end) {
				s := time.Now()
				msg := call()
				d := time.Since(s)
				if msg != "" {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, msg)
					continue
				}
				n.Add(1)
				if collect {
					local = append(local, d.Microseconds())
				}
			}
			lats[i] = local
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(t0).Seconds()
	cpu := cpuMicros() - cpu0
	var all []int64
	for _, l := range lats {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(float64(len(all)-1)*p)])
	}
	r := result{
		Client: name, Inflight: conc, Seconds: elapsed,
		Requests: n.Load(), Errors: errs.Load(),
		ReqS: float64(n.Load()) / elapsed, P50Us: pct(0.5), P99Us: pct(0.99), MaxUs: pct(1.0),
		GoVersion: runtime.Version(), Module: "github.com/maximhq/bifrost/core@" + moduleVersion(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	if n.Load() > 0 {
		r.CPUUsReq = cpu / float64(n.Load()+errs.Load())
	}
	r.MockCPU = perRequest(mock0, mockCPUMicros(), n.Load())
	if v, ok := firstErr.Load().(string); ok {
		r.FirstError = v
	}
	return r
}

type openResult struct {
	Mode        string   `json:"mode"`
	Client      string   `json:"client"`
	Lang        string   `json:"lang"`
	Rate        float64  `json:"rate"`
	LatencyMs   int      `json:"latency_ms"`
	Seconds     float64  `json:"seconds"`
	WarmupS     float64  `json:"warmup_s"`
	Scheduled   int      `json:"scheduled"`
	Completed   int      `json:"completed"`
	Errors      int      `json:"errors"`
	Unfinished  int      `json:"unfinished"`
	AchievedRps float64  `json:"achieved_rps"`
	KeptUp      bool     `json:"kept_up"`
	AddedP50    int64    `json:"added_p50_us"`
	AddedP99    int64    `json:"added_p99_us"`
	AddedMax    int64    `json:"added_max_us"`
	LagP50      int64    `json:"lag_p50_us"`
	LagP99      int64    `json:"lag_p99_us"`
	LagMax      int64    `json:"lag_max_us"`
	CPUUsReq    float64  `json:"cpu_us_per_req"`
	MockCPU     *float64 `json:"mock_cpu_us_per_req,omitempty"`
	FirstError  string   `json:"first_error,omitempty"`
	GoVersion   string   `json:"go_version"`
	Module      string   `json:"module"`
	GOMAXPROCS  int      `json:"gomaxprocs"`
}

func pctInt(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*p)]
}

// openLoop starts request i at t0 + i/rate for warmup+seconds, then waits up
// to 2 s + 2 × latency for stragglers; only requests scheduled after the
// warm-up are counted.
func openLoop(name string, call func() string, rate float64, latencyMs int, seconds, warmup float64) openResult {
	total := int((warmup + seconds) * rate)
	first := int(warmup * rate)
	interval := float64(time.Second) / rate
	const notYet = int64(-1)
	start := make([]atomic.Int64, total)
	done := make([]atomic.Int64, total)
	failed := make([]atomic.Bool, total)
	for i := range done {
		done[i].Store(notYet)
	}
	var firstErr atomic.Value
	t0 := time.Now().Add(20 * time.Millisecond)
	var cpu0, mock0 float64
	sent := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for i := 0; i < total; i++ {
			sched := t0.Add(time.Duration(float64(i) * interval))
			if d := time.Until(sched); d > 0 {
				ts := syscall.NsecToTimespec(int64(d))
				_ = syscall.Nanosleep(&ts, nil)
			}
			if i == first {
				cpu0, mock0 = cpuMicros(), mockCPUMicros()
			}
			go func(i int) {
				start[i].Store(int64(time.Since(t0)))
				if msg := call(); msg != "" {
					failed[i].Store(true)
					firstErr.CompareAndSwap(nil, msg)
				}
				done[i].Store(int64(time.Since(t0)))
			}(i)
		}
		close(sent)
	}()
	<-sent
	deadline := time.Now().Add(2*time.Second + 2*time.Duration(latencyMs)*time.Millisecond)
	for time.Now().Before(deadline) {
		pending := false
		for i := first; i < total; i++ {
			if done[i].Load() == notYet {
				pending = true
				break
			}
		}
		if !pending {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	cpu, mock1 := cpuMicros()-cpu0, mockCPUMicros()
	winLo := int64(float64(first) * interval)
	lastDone := winLo
	var added, lag []int64
	errs, unfinished := 0, 0
	for i := first; i < total; i++ {
		sched := int64(float64(i) * interval)
		d := done[i].Load()
		switch {
		case d == notYet:
			unfinished++
		case failed[i].Load():
			errs++
		default:
			lastDone = max(lastDone, d)
			a := (d-sched)/1000 - int64(latencyMs)*1000
			if a < 0 {
				a = 0
			}
			added = append(added, a)
			l := (start[i].Load() - sched) / 1000
			if l < 0 {
				l = 0
			}
			lag = append(lag, l)
		}
	}
	sort.Slice(added, func(a, b int) bool { return added[a] < added[b] })
	sort.Slice(lag, func(a, b int) bool { return lag[a] < lag[b] })
	// Rate achieved: measured requests completed, over the time from the window's start to
	// the last completion less the mock's latency (at least -seconds: a client that keeps
	// up shows the target rate).
	achieved := float64(len(added)) / max(float64(lastDone-winLo)/1e9-float64(latencyMs)/1e3, seconds)
	r := openResult{
		Mode: "open", Client: name, Lang: "Go", Rate: rate, LatencyMs: latencyMs, Seconds: seconds, WarmupS: warmup,
		Scheduled: total - first, Completed: len(added), Errors: errs, Unfinished: unfinished, AchievedRps: achieved,
		KeptUp:   unfinished == 0 && errs == 0 && achieved >= 0.95*rate,
		AddedP50: pctInt(added, 0.5), AddedP99: pctInt(added, 0.99), AddedMax: pctInt(added, 1),
		LagP50: pctInt(lag, 0.5), LagP99: pctInt(lag, 0.99), LagMax: pctInt(lag, 1),
		GoVersion: runtime.Version(), Module: "github.com/maximhq/bifrost/core@" + moduleVersion(), GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	if len(added) > 0 {
		r.CPUUsReq = cpu / float64(len(added))
	}
	r.MockCPU = perRequest(mock0, mock1, int64(len(added)))
	if v, ok := firstErr.Load().(string); ok {
		r.FirstError = v
	}
	return r
}

func newBifrost(base string, conc int) *bifrost.Bifrost {
	client, err := bifrost.Init(context.Background(), schemas.BifrostConfig{
		Account:         &account{base: base, conc: conc},
		Logger:          bifrost.NewDefaultLogger(schemas.LogLevelError),
		InitialPoolSize: conc * 4,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bifrost.Init:", err)
		os.Exit(1)
	}
	return client
}

func main() {
	base := flag.String("base", "", "bifrost-mock base URL, e.g. http://127.0.0.1:PORT")
	concs := flag.String("conc", "64,256", "requests in flight (comma separated)")
	seconds := flag.Float64("seconds", 3, "measured seconds per concurrency")
	warmup := flag.Float64("warmup", 0.5, "warm-up seconds per concurrency")
	plain := flag.Bool("plain", false, "plain net/http keep-alive client instead of Bifrost (the Go floor)")
	rates := flag.String("rates", "", "open loop: requests/s (comma separated); replaces -conc")
	latencyMs := flag.Int("latency-ms", 0, "open loop: the mock's configured latency, subtracted from the measured one")
	stream := flag.Bool("stream", false, "stream cells (stream.go) instead of unary calls")
	streams := flag.String("streams", "256,1024", "-stream: concurrent streams (comma separated)")
	delays := flag.String("chunk-delay-ms", "0,10", "-stream: ms between chunks (comma separated)")
	chunks := flag.Int("chunks", 200, "-stream: chunks per stream")
	flag.Parse()
	if *base == "" {
		fmt.Fprintln(os.Stderr, "-base is required")
		os.Exit(2)
	}
	if *stream {
		streamMain(*base, *streams, *delays, *chunks, *seconds)
		return
	}
	enc := json.NewEncoder(os.Stdout)
	if *rates != "" {
		for _, rs := range strings.Split(*rates, ",") {
			rate, err := strconv.ParseFloat(strings.TrimSpace(rs), 64)
			if err != nil || rate <= 0 {
				fmt.Fprintf(os.Stderr, "bad -rates value %q\n", rs)
				os.Exit(2)
			}
			// Enough workers / idle connections for every request the mock holds at this rate.
			const conc = 1024
			if *plain {
				_ = enc.Encode(openLoop("go: net/http keep-alive", viaNetHTTP(*base, conc), rate, *latencyMs, *seconds, *warmup))
				continue
			}
			client := newBifrost(*base, conc)
			_ = enc.Encode(openLoop("go: Bifrost core (embedded)", viaBifrost(client), rate, *latencyMs, *seconds, *warmup))
			client.Shutdown()
		}
		return
	}
	for _, cs := range strings.Split(*concs, ",") {
		conc, err := strconv.Atoi(strings.TrimSpace(cs))
		if err != nil || conc < 1 {
			fmt.Fprintf(os.Stderr, "bad -conc value %q\n", cs)
			os.Exit(2)
		}
		if *plain {
			call := viaNetHTTP(*base, conc)
			run("go net/http", call, conc, *warmup, false)
			r := run("go net/http", call, conc, *seconds, true)
			if r.Requests == 0 {
				fmt.Fprintf(os.Stderr, "no successful request at %d in flight: %d errors, first: %s\n", conc, r.Errors, r.FirstError)
				os.Exit(1)
			}
			_ = enc.Encode(r)
			continue
		}
		client := newBifrost(*base, conc)
		call := viaBifrost(client)
		run("bifrost-go", call, conc, *warmup, false)
		r := run("bifrost-go", call, conc, *seconds, true)
		client.Shutdown()
		if r.Requests == 0 {
			fmt.Fprintf(os.Stderr, "no successful request at %d in flight: %d errors, first: %s\n", conc, r.Errors, r.FirstError)
			os.Exit(1)
		}
		_ = enc.Encode(r)
	}
}
