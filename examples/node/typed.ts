// A typed tour of the API; `tsc --noEmit -p examples/node` checks it
// against index.d.ts (npm test runs it). Runs with no API keys:
//   node --experimental-strip-types examples/node/typed.ts   (Node >= 22.6)
import { Gateway, BifrostError, optimalConcurrency } from 'bifrost'
import type { Config, ChatRequest, ChatResponse, Chunk, Stats, JobStats, ErrorCode, ShutdownReport } from 'bifrost'

const config: Config = {
  providers: {
    local: { kind: 'mock', mock: { latency_ms: 5 }, queue: { policy: 'error' } },
  },
}

async function main (): Promise<void> {
  const gw = new Gateway(config)
  const req: ChatRequest = { model: 'local/echo-1', messages: [{ role: 'user', content: 'hello' }] }

  const resp: ChatResponse = await gw.chat(req)
  const text: string | null = resp.choices[0].message.content
  const latency: number = resp.extra_fields.latency_ms
  console.log(text, latency)

  const job = await gw.submit(req, { signal: AbortSignal.timeout(5000) })
  const id: number = job.id
  const cancelled: boolean = job.cancel()
  await job.result().catch((e: unknown) => {
    if (e instanceof BifrostError) {
      const code: ErrorCode = e.code
      console.log(id, cancelled, code)
    }
  })

  for await (const chunk of gw.stream(req)) {
    const c: Chunk = chunk
    process.stdout.write(c.choices[0]?.delta.content ?? '')
  }
  console.log()

  const emb = await gw.embed({ model: 'local/e', input: ['a', 'b'] })
  const dims: number = emb.data[0].embedding.length
  console.log(dims)

  try {
    await gw.chat({ model: 'local/x', messages: [{ role: 'user', content: 'boom' }], mock: { failure_rate: 1, failure_status: 503 } })
  } catch (e) {
    if (e instanceof BifrostError && e.code === 'PROVIDER') console.log(e.status, e.body)
  }

  const stats: Stats = gw.stats()
  const jobs: JobStats = stats.providers.local.jobs
  const sum = jobs.queued + jobs.running + jobs.completed + jobs.failed + jobs.dropped + jobs.rejected + jobs.timed_out + jobs.cancelled
  console.log(jobs.submitted === sum, stats.providers.local.queue.policy, gw.health().status)
  console.log(gw.prometheus().split('\n').length, optimalConcurrency(50, 2, 0.1).buffer_size)

  const report: ShutdownReport = await gw.shutdown(1000)
  console.log(report.elapsed_ms)
}

void main()
