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
	Client     string  `json:"client"`
	Inflight   int     `json:"inflight"`
	Seconds    float64 `json:"seconds"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	ReqS       float64 `json:"req_s"`
	P50Us      float64 `json:"p50_us"`
	P99Us      float64 `json:"p99_us"`
	MaxUs      float64 `json:"max_us"`
	CPUUsReq   float64 `json:"cpu_us_per_req"`
	GoVersion  string  `json:"go_version"`
	Module     string  `json:"module"`
	GOMAXPROCS int     `json:"gomaxprocs"`
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
	cpu0 := cpuMicros()
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
	if v, ok := firstErr.Load().(string); ok {
		r.FirstError = v
	}
	return r
}

func main() {
	base := flag.String("base", "", "bifrost-mock base URL, e.g. http://127.0.0.1:PORT")
	concs := flag.String("conc", "64,256", "requests in flight (comma separated)")
	seconds := flag.Float64("seconds", 3, "measured seconds per concurrency")
	warmup := flag.Float64("warmup", 0.5, "warm-up seconds per concurrency")
	plain := flag.Bool("plain", false, "plain net/http keep-alive client instead of Bifrost (the Go floor)")
	flag.Parse()
	if *base == "" {
		fmt.Fprintln(os.Stderr, "-base is required")
		os.Exit(2)
	}
	enc := json.NewEncoder(os.Stdout)
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
		client, err := bifrost.Init(context.Background(), schemas.BifrostConfig{
			Account:         &account{base: *base, conc: conc},
			Logger:          bifrost.NewDefaultLogger(schemas.LogLevelError),
			InitialPoolSize: conc * 4,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bifrost.Init:", err)
			os.Exit(1)
		}
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
