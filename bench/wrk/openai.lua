-- wrk script: POST the OpenAI chat JSON to bifrost-mock, then print one JSON
-- line with requests/s and latency percentiles (µs) when done.
--   wrk -t2 -c64 -d3s -s bench/wrk/openai.lua http://127.0.0.1:PORT/v1/chat/completions
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer mock-key"

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    '{"client":"wrk","requests":%d,"seconds":%.3f,"req_s":%.1f,"p50_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, secs, summary.requests / secs, latency:percentile(50), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
